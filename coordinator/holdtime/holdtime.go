package holdtime

import (
	"fmt"
	"time"
)

// Budget turns work into a duration: Base + Containers*PerContainer + Bytes/Floor,
// capped at Max (docs/operations.md, "How long holds last").
type Budget struct {
	// Base covers the fixed costs of one operation. Default 30s.
	Base time.Duration
	// PerContainer is added for each container on the busiest node. Default 2s.
	PerContainer time.Duration
	// Floor is the slowest rate, in bytes per second, the images are assumed to be
	// written, streamed or read at. Default 16 MiB/s.
	Floor int64
	// Max caps the result. Default 10m.
	Max time.Duration
}

// Default returns the default budget.
func Default() Budget {
	return Budget{Base: 30 * time.Second, PerContainer: 2 * time.Second, Floor: 16 << 20, Max: 10 * time.Minute}
}

// WithDefaults fills in the zero fields of b from Default.
func (b Budget) WithDefaults() Budget {
	d := Default()
	if b.Base <= 0 {
		b.Base = d.Base
	}
	if b.PerContainer <= 0 {
		b.PerContainer = d.PerContainer
	}
	if b.Floor <= 0 {
		b.Floor = d.Floor
	}
	if b.Max <= 0 {
		b.Max = d.Max
	}
	return b
}

// String describes the budget's formula.
func (b Budget) String() string {
	b = b.WithDefaults()
	return fmt.Sprintf("%v + %v per container + bytes at %d MiB/s, at most %v", b.Base, b.PerContainer, b.Floor>>20, b.Max)
}

// Work is what one node does in an operation.
type Work struct {
	Containers int
	Bytes      int64
}

// Add returns w plus o.
func (w Work) Add(o Work) Work { return Work{w.Containers + o.Containers, w.Bytes + o.Bytes} }

// For returns the budget of w: Base + w.Containers*PerContainer + w.Bytes/Floor,
// capped at Max. Zero fields of b take their defaults; negative work counts as none.
func (b Budget) For(w Work) time.Duration {
	b = b.WithDefaults()
	d := b.Base
	if w.Containers > 0 {
		d += time.Duration(w.Containers) * b.PerContainer
	}
	if w.Bytes > 0 {
		// Seconds as a float: bytes*1e9 overflows int64 past 9 GB.
		d += time.Duration(float64(w.Bytes) / float64(b.Floor) * float64(time.Second))
	}
	if d > b.Max || d < 0 {
		return b.Max
	}
	return d
}

// Stack returns the budget of work spread over nodes (node -> its work): nodes work
// in parallel, so it is the budget of the busiest node, and Base alone for no work.
func (b Budget) Stack(nodes map[string]Work) time.Duration {
	d := b.For(Work{})
	for _, w := range nodes {
		d = max(d, b.For(w))
	}
	return d
}
