package main

import (
	"sync"
	"time"
)

// Counter is the workload's whole state: a value incremented on each tick. Safe for
// concurrent use.
type Counter struct {
	mu       sync.Mutex
	value    int64
	lastTick time.Time
}

// Tick increments the counter, records when, and returns the new value.
func (c *Counter) Tick(now time.Time) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.value++
	c.lastTick = now
	return c.value
}

// Snapshot returns the value and the time of the last tick.
func (c *Counter) Snapshot() (int64, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.value, c.lastTick
}
