package stack

import (
	"context"
	"maps"
	"sync"
)

// FakeLabels is an in-memory source of service labels (what Docker.ServiceLabels and
// Docker.WatchServices give), for tests.
type FakeLabels struct {
	mu       sync.Mutex
	services map[[2]string]map[string]string // {stack, service} -> labels
	watchers map[int]func()
	nextW    int
	// Err, when set, is returned by ServiceLabels.
	Err error
}

// Set sets (replaces) the labels of service of stack and notifies the watchers, as a
// service create or update does.
func (f *FakeLabels) Set(stack, service string, labels map[string]string) {
	f.mu.Lock()
	if f.services == nil {
		f.services = map[[2]string]map[string]string{}
	}
	l := maps.Clone(labels)
	if l == nil {
		l = map[string]string{}
	}
	l[NamespaceLabel] = stack
	f.services[[2]string{stack, service}] = l
	f.mu.Unlock()
	f.notify()
}

// Remove removes a service and notifies the watchers.
func (f *FakeLabels) Remove(stack, service string) {
	f.mu.Lock()
	delete(f.services, [2]string{stack, service})
	f.mu.Unlock()
	f.notify()
}

func (f *FakeLabels) notify() {
	f.mu.Lock()
	ws := make([]func(), 0, len(f.watchers))
	for _, w := range f.watchers {
		ws = append(ws, w)
	}
	f.mu.Unlock()
	for _, w := range ws {
		w()
	}
}

// ServiceLabels implements the labels source.
func (f *FakeLabels) ServiceLabels(context.Context) ([]ServiceLabels, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	out := make([]ServiceLabels, 0, len(f.services))
	for k, l := range f.services {
		out = append(out, ServiceLabels{Stack: k[0], Service: k[1], Labels: maps.Clone(l)})
	}
	sortLabels(out)
	return out, nil
}

// WatchServices implements the labels source: changed is called on every Set and
// Remove until ctx ends.
func (f *FakeLabels) WatchServices(ctx context.Context, changed func()) error {
	f.mu.Lock()
	if f.watchers == nil {
		f.watchers = map[int]func(){}
	}
	id := f.nextW
	f.nextW++
	f.watchers[id] = changed
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	delete(f.watchers, id)
	f.mu.Unlock()
	return nil
}
