package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/deploy/lab"
)

// TestLabStatusFailsForAStaleLab: a lab whose engines are gone (a reboot, an ended
// session) is printed, and status exits 1 naming the nodes and the fix, in both outputs.
func TestLabStatusFailsForAStaleLab(t *testing.T) {
	runDir := t.TempDir()
	cfg := lab.DefaultConfig()
	cfg.Name, cfg.Nodes, cfg.RunDir, cfg.DataDir = "stale", 2, runDir, t.TempDir()
	p := lab.NewPlan(cfg, 7)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(p.RunDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.StateFile(), b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, output := range []string{"text", "json"} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"lab", "status", "--name", "stale", "--run-dir", runDir, "--output", output}, &stdout, &stderr)
		if code != exitFailure {
			t.Fatalf("%s: exit %d, want %d\n%s%s", output, code, exitFailure, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), "stale-1") || !strings.Contains(stdout.String(), "stale-2") {
			t.Fatalf("%s: the nodes are not printed:\n%s", output, stdout.String())
		}
		if e := stderr.String(); !strings.Contains(e, "stale-1, stale-2 not running") || !strings.Contains(e, "swarmckpt lab down --name stale") {
			t.Fatalf("%s: stderr %q, want the down nodes and the fix", output, e)
		}
	}
	if _, err := os.Stat(filepath.Join(p.RunDir, "lab.json")); err != nil {
		t.Fatalf("status changed the lab's state: %v", err)
	}
}
