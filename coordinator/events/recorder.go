package events

import (
	"context"
	"slices"
	"sync"
)

// Recorder is the in-memory Publisher: it keeps every event, in order.
type Recorder struct {
	mu     sync.Mutex
	events []Event
	ch     chan struct{}
}

var _ Publisher = (*Recorder)(nil)

// Publish implements Publisher.
func (r *Recorder) Publish(_ context.Context, e Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, stamp(e))
	if r.ch != nil {
		close(r.ch)
		r.ch = nil
	}
	return nil
}

// Events returns a copy of the events so far.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Wait returns the first event for which match is true, waiting for it until ctx
// ends (then ok is false).
func (r *Recorder) Wait(ctx context.Context, match func(Event) bool) (Event, bool) {
	seen := 0
	for {
		r.mu.Lock()
		for ; seen < len(r.events); seen++ {
			if match(r.events[seen]) {
				e := r.events[seen]
				r.mu.Unlock()
				return e, true
			}
		}
		if r.ch == nil {
			r.ch = make(chan struct{})
		}
		ch := r.ch
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Event{}, false
		}
	}
}
