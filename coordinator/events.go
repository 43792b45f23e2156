package coordinator

import (
	"context"
	"log/slog"

	"github.com/swarmckpt/swarmckpt/coordinator/events"
)

// The coordinator's event stream (coordinator/events, `swarmckpt events`): every event
// goes to the log (events.Logged), then on the bus (events.Subject), then to
// Config.Events when set.

// fanout publishes to each publisher in turn; the first error is returned after all
// were tried.
type fanout []events.Publisher

func (f fanout) Publish(ctx context.Context, e events.Event) error {
	var first error
	for _, p := range f {
		if err := p.Publish(ctx, e); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func newEvents(cfg Config, log *slog.Logger) events.Publisher {
	next := fanout{events.Bus{T: cfg.Bus}}
	if cfg.Events != nil {
		next = append(next, cfg.Events)
	}
	return events.Logged{Log: log.With("component", "events"), Next: next}
}

// emit publishes e on the event stream; a failure to publish is logged at debug level
// (the log line is written first, by events.Logged, whatever happens to the bus).
func (s *Service) emit(ctx context.Context, e events.Event) {
	if s.ev == nil {
		return // a Service built without New (unit tests)
	}
	if err := s.ev.Publish(context.WithoutCancel(ctx), e); err != nil {
		s.log.Debug("event not published on the bus", "event", e.Kind, "err", err)
	}
}

// Events is the coordinator's event publisher, for controllers outside this package
// (node loss) that emit into the same stream.
func (s *Service) Events() events.Publisher { return s.ev }
