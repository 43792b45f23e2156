package stack

import (
	"context"
	"fmt"
	"maps"
	"sort"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// ServiceLabels is one service of a stack with its service labels (a compose file's
// deploy.labels).
type ServiceLabels struct {
	Stack   string
	Service string
	Labels  map[string]string
}

// ServiceLabels lists every service that belongs to a stack (carries the
// NamespaceLabel) with its labels, sorted by stack and service.
func (d *Docker) ServiceLabels(ctx context.Context) ([]ServiceLabels, error) {
	services, err := d.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", NamespaceLabel))})
	if err != nil {
		return nil, fmt.Errorf("stack: list services on %s: %w (is --docker a swarm manager's socket?)", d.host, err)
	}
	out := make([]ServiceLabels, 0, len(services))
	for _, s := range services {
		out = append(out, ServiceLabels{Stack: s.Spec.Labels[NamespaceLabel], Service: s.Spec.Name, Labels: maps.Clone(s.Spec.Labels)})
	}
	sortLabels(out)
	return out, nil
}

// WatchServices calls changed on every service event (create, update, remove) of the
// manager until ctx ends (nil) or the event stream fails (its error; call again).
func (d *Docker) WatchServices(ctx context.Context, changed func()) error {
	msgs, errs := d.cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", string(events.ServiceEventType)))})
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("stack: service events of %s: %w", d.host, err)
		case <-msgs:
			changed()
		}
	}
}

func sortLabels(s []ServiceLabels) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Stack != s[j].Stack {
			return s[i].Stack < s[j].Stack
		}
		return s[i].Service < s[j].Service
	})
}
