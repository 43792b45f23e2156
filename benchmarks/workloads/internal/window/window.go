package window

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// DefaultSize is the ring's default capacity: 10 minutes of events at 50 per second
// (the workloads' default rates), 480 KiB.
const DefaultSize = 30_000

// Ring records events; safe for concurrent use. The zero value is not usable: New.
type Ring struct {
	mu   sync.Mutex
	at   []int64 // Unix nanoseconds
	lat  []time.Duration
	next int
	full bool
}

// New returns a ring holding the last size events (DefaultSize if size <= 0). Its
// memory is written once here, so that the process's memory (and a checkpoint's image
// size) does not grow while the ring fills.
func New(size int) *Ring {
	if size <= 0 {
		size = DefaultSize
	}
	r := &Ring{at: make([]int64, size), lat: make([]time.Duration, size)}
	for i := range r.at {
		r.at[i], r.lat[i] = -1, -1
	}
	return r
}

// Add records an event at t that measured latency lat (0 when it measures none).
func (r *Ring) Add(t time.Time, lat time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at[r.next], r.lat[r.next] = t.UnixNano(), lat
	r.next++
	if r.next == len(r.at) {
		r.next, r.full = 0, true
	}
}

// Stats is what the application saw in a window [From, To].
type Stats struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Events int       `json:"events"`
	// Latency percentiles over the events inside the window, in milliseconds.
	P50MS float64 `json:"latency_p50_ms"`
	P99MS float64 `json:"latency_p99_ms"`
	MaxMS float64 `json:"latency_max_ms"`
	// StallMS is the longest time without an event among the gaps that overlap the
	// window (the gap from the last event before From to the first one after it
	// counts; a gap still open counts up to now).
	StallMS float64 `json:"stall_ms"`
	// Truncated: the ring no longer holds the window's start.
	Truncated bool `json:"truncated,omitempty"`
}

// Window computes the stats of [from, to], now being the current time. It walks the
// ring in place (oldest first) under the lock: no copy of the ring, so asking does not
// grow the process's heap (and so a checkpoint's images).
func (r *Ring) Window(from, to, now time.Time) Stats {
	r.mu.Lock()
	n, start := r.next, 0
	if r.full {
		n, start = len(r.at), r.next
	}
	s := Stats{From: from, To: to}
	if r.full && time.Unix(0, r.at[start]).After(from) {
		s.Truncated = true
	}
	var in []time.Duration
	var stall time.Duration
	prev := time.Time{}
	for k := range n {
		i := (start + k) % len(r.at)
		t := time.Unix(0, r.at[i])
		if !prev.IsZero() && t.After(from) && !prev.After(to) {
			stall = max(stall, t.Sub(prev))
		}
		if !t.Before(from) && !t.After(to) {
			in = append(in, r.lat[i])
		}
		prev = t
	}
	r.mu.Unlock()
	// The gap still open at now (no event since the last one).
	if !prev.IsZero() && !prev.After(to) {
		stall = max(stall, now.Sub(prev))
	} else if prev.IsZero() {
		stall = now.Sub(from)
	}
	s.StallMS = ms(stall)
	s.Events = len(in)
	if len(in) > 0 {
		slices.Sort(in)
		s.P50MS, s.P99MS, s.MaxMS = ms(pct(in, 0.50)), ms(pct(in, 0.99)), ms(in[len(in)-1])
	}
	return s
}

// pct is the nearest-rank percentile of sorted d.
func pct(d []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(d))+0.999999) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Handler serves GET /window?from=T&to=T (T: Unix time in nanoseconds or RFC 3339; to
// defaults to now) as the JSON of Stats.
func (r *Ring) Handler(write func(w http.ResponseWriter, code int, v any)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		now := time.Now()
		from, err := parseTime(req.URL.Query().Get("from"), time.Time{})
		if err != nil || from.IsZero() {
			http.Error(w, "give ?from= as Unix nanoseconds or RFC 3339 (and optionally &to=)", http.StatusBadRequest)
			return
		}
		to, err := parseTime(req.URL.Query().Get("to"), now)
		if err != nil {
			http.Error(w, "bad ?to=: "+err.Error()+" (Unix nanoseconds or RFC 3339)", http.StatusBadRequest)
			return
		}
		write(w, http.StatusOK, r.Window(from, to, now))
	}
}

func parseTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(0, n), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("window: bad time %q: %w", s, err)
	}
	return t, nil
}
