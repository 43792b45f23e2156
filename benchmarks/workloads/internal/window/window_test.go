package window

import (
	"testing"
	"time"
)

func TestWindowStatsAndStall(t *testing.T) {
	r := New(100)
	t0 := time.Unix(1000, 0)
	// events every 10 ms with 1..5 ms latency, then a 500 ms silence, then more.
	at := t0
	for i := range 20 {
		at = t0.Add(time.Duration(i) * 10 * time.Millisecond)
		r.Add(at, time.Duration(1+i%5)*time.Millisecond)
	}
	resume := at.Add(500 * time.Millisecond)
	r.Add(resume, 300*time.Millisecond)
	r.Add(resume.Add(10*time.Millisecond), time.Millisecond)

	s := r.Window(at.Add(-time.Millisecond), resume.Add(time.Millisecond), resume.Add(time.Second))
	if s.Events != 2 {
		t.Fatalf("events in window = %d, want 2 (the last before the stall and the first after)", s.Events)
	}
	if s.StallMS != 500 {
		t.Fatalf("stall = %v ms, want 500", s.StallMS)
	}
	if s.MaxMS != 300 {
		t.Fatalf("max latency = %v ms, want 300", s.MaxMS)
	}
	// A window entirely before the silence sees only 10 ms gaps.
	s = r.Window(t0.Add(5*time.Millisecond), t0.Add(95*time.Millisecond), resume.Add(time.Second))
	if s.StallMS != 10 || s.Events != 9 {
		t.Fatalf("early window: stall %v events %d, want 10 ms and 9", s.StallMS, s.Events)
	}
	if s.P50MS != 3 || s.P99MS != 5 {
		t.Fatalf("early window p50/p99 = %v/%v, want 3/5", s.P50MS, s.P99MS)
	}
}

func TestWindowOpenGapCountsUpToNow(t *testing.T) {
	r := New(10)
	t0 := time.Unix(1000, 0)
	r.Add(t0, 0)
	s := r.Window(t0.Add(time.Second), t0.Add(2*time.Second), t0.Add(3*time.Second))
	if s.StallMS != 3000 || s.Events != 0 {
		t.Fatalf("stall %v events %d, want 3000 ms (no event since t0) and 0", s.StallMS, s.Events)
	}
}

func TestWindowRingWrapsAndSaysTruncated(t *testing.T) {
	r := New(4)
	t0 := time.Unix(1000, 0)
	for i := range 10 {
		r.Add(t0.Add(time.Duration(i)*time.Second), time.Duration(i)*time.Millisecond)
	}
	s := r.Window(t0, t0.Add(20*time.Second), t0.Add(20*time.Second))
	if !s.Truncated || s.Events != 4 || s.MaxMS != 9 {
		t.Fatalf("got %+v, want truncated with the last 4 events (max 9 ms)", s)
	}
}
