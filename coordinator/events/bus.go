package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

// Bus publishes events as JSON on Subject.
type Bus struct {
	T bus.Transport
}

var _ Publisher = Bus{}

// Publish implements Publisher.
func (p Bus) Publish(ctx context.Context, e Event) error {
	b, err := json.Marshal(stamp(e))
	if err != nil {
		return fmt.Errorf("events: encode %s: %w", e.Kind, err)
	}
	if err := p.T.Publish(ctx, Subject, b); err != nil {
		return fmt.Errorf("events: publish %s: %w", e.Kind, err)
	}
	return nil
}

// Logged writes every event to Log (warnings for hold timeouts, label errors,
// aborts, node losses, rollbacks and lost pages; info for the rest), then passes it to Next (if any).
type Logged struct {
	Log  *slog.Logger
	Next Publisher
}

var _ Publisher = Logged{}

// Publish implements Publisher.
func (p Logged) Publish(ctx context.Context, e Event) error {
	e = stamp(e)
	level := slog.LevelInfo
	switch e.Kind {
	case HoldTimedOut, LabelError, SnapshotAborted, NodeLost, RolledBack, NodeLossFailed, PagesLost:
		level = slog.LevelWarn
	}
	p.Log.Log(ctx, level, "event: "+e.String(), "event", e.Kind)
	if p.Next == nil {
		return nil
	}
	return p.Next.Publish(ctx, e)
}

// Follow calls fn for every event published on Subject from now on, until the
// returned subscription is ended; a message that is not an event is passed to bad
// (may be nil).
func Follow(t bus.Transport, fn func(Event), bad func(error)) (bus.Subscription, error) {
	sub, err := t.Subscribe(Subject, func(m *bus.Msg) {
		var e Event
		if err := json.Unmarshal(m.Data, &e); err != nil || e.Kind == "" {
			if bad != nil {
				bad(fmt.Errorf("events: undecodable event on %s: %q", m.Subject, m.Data))
			}
			return
		}
		fn(e)
	})
	if err != nil {
		return nil, fmt.Errorf("events: follow %s: %w", Subject, err)
	}
	return sub, nil
}
