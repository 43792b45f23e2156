package main

import (
	"testing"
	"time"
)

// TestMigrationParsesMigrateOutput: the product case reads migrate's text output: the
// time its `restored` event arrived, the snapshot, the copy mode and the steps.
func TestMigrationParsesMigrateOutput(t *testing.T) {
	lines := []string{
		"[  0.01s] planning  memhog_hog.1 -> lab-1",
		"[  0.80s] streaming  1 containers are dumped post-copy (--copy post-copy: ...)",
		"[  0.95s] memhog_hog.1             lab-2      restored 120ms",
		"[  1.20s] restored 400ms  1 moved containers run on their targets; 0 others ran on untouched",
		"[  3.40s] post-copy-done 2600ms  memhog_hog.1: the last page of its memory arrived from node lab-2 2.6s after the stop began; ending the source",
		"CONTAINER     NODE   FROZEN  DUMP   IMAGES",
		"memhog_hog.1  lab-2  5ms     700ms  150.0 KiB",
		"snapshot memhog-20261206-093000 of stack memhog: committed, algorithm blocking, 1 containers, 150.0 KiB of images, total 900ms",
		"restored in 400ms (copy: post-copy)",
		"steps: plan 8ms, prepare 700ms, snapshot 895ms (dump 834ms), preflight 2ms, stop 60ms, restore 212ms, record 21ms",
	}
	var m migration
	for i, l := range lines {
		m.parseLine(l, time.Duration(i+1)*time.Second)
	}
	if m.running != 4*time.Second {
		t.Errorf("running = %v, want 4s (the fourth line, the stack's restored event; not a container's)", m.running)
	}
	if m.snapshot != "memhog-20261206-093000" {
		t.Errorf("snapshot = %q", m.snapshot)
	}
	if m.copy != "post-copy" {
		t.Errorf("copy = %q, want post-copy", m.copy)
	}
	if want := "plan:8,prepare:700,snapshot:895,dump:834,preflight:2,stop:60,restore:212,record:21"; m.steps != want {
		t.Errorf("steps = %q, want %q", m.steps, want)
	}
	// Nothing is frozen during plan and prepare: not downtime.
	if got, want := m.downtime(), 4*time.Second-708*time.Millisecond; got != want {
		t.Errorf("downtime = %v, want %v (until restored less plan and prepare)", got, want)
	}
	var none migration
	none.parseLine("restored in 400ms (copy: direct)", time.Second)
	if none.running != 0 || none.copy != "direct" || none.downtime() != 0 {
		t.Errorf("the result line alone: running %v copy %q, want 0 and direct", none.running, none.copy)
	}
}
