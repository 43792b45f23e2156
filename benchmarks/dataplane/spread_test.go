package main

import (
	"testing"
	"time"
)

func TestSpread(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		in          []time.Duration
		lo, med, hi float64
	}{
		{[]time.Duration{3 * s}, 3, 3, 3},
		{[]time.Duration{5 * s, 1 * s, 3 * s}, 1, 3, 5},
		{[]time.Duration{4 * s, 1 * s, 2 * s, 8 * s}, 1, 3, 8},
	} {
		in := append([]time.Duration(nil), c.in...)
		lo, med, hi := spread(c.in)
		if lo != c.lo || med != c.med || hi != c.hi {
			t.Errorf("spread(%v) = %v %v %v, want %v %v %v", c.in, lo, med, hi, c.lo, c.med, c.hi)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Errorf("spread reordered its argument: %v, was %v", c.in, in)
			}
		}
	}
}
