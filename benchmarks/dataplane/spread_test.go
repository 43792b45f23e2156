package main

import (
	"slices"
	"testing"
	"time"
)

func TestSpread(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		in          []time.Duration
		lo, med, hi time.Duration
	}{
		{[]time.Duration{3 * s}, 3 * s, 3 * s, 3 * s},
		{[]time.Duration{5 * s, 1 * s, 3 * s}, 1 * s, 3 * s, 5 * s},
		{[]time.Duration{4 * s, 1 * s, 2 * s, 8 * s}, 1 * s, 3 * s, 8 * s},
	} {
		in := slices.Clone(c.in)
		lo, med, hi := spread(c.in)
		if lo != c.lo || med != c.med || hi != c.hi {
			t.Errorf("spread(%v) = %v %v %v, want %v %v %v", c.in, lo, med, hi, c.lo, c.med, c.hi)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("spread reordered its argument: %v, was %v", c.in, in)
		}
	}
	// Ratios (float64): an even count's median is the mean of the middle two.
	if lo, med, hi := spread([]float64{6.5, 4.5, 5.0, 3.9}); lo != 3.9 || med != 4.75 || hi != 6.5 {
		t.Errorf("spread of ratios = %v %v %v, want 3.9 4.75 6.5", lo, med, hi)
	}
}
