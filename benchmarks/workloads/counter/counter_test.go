package main

import (
	"testing"
	"time"
)

func TestCounterTicks(t *testing.T) {
	c := &Counter{value: 41}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if v := c.Tick(at); v != 42 {
		t.Fatalf("Tick from 41 = %d, want 42", v)
	}
	c.Tick(at.Add(time.Second))
	v, last := c.Snapshot()
	if v != 43 || !last.Equal(at.Add(time.Second)) {
		t.Fatalf("Snapshot = %d at %v, want 43 at %v", v, last, at.Add(time.Second))
	}
}
