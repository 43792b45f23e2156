package worker

import (
	"context"
	"net/http"
)

// ContainerStater is an optional role of a Holder: what a container is now, read
// without touching it. The node agent asks it of a container a stop names that it
// does not hold since its dump (released since: by a restarted agent, or at its hold's
// deadline), to tell the coordinator whether it ran on (never to be ended or replaced:
// its state is newer than the snapshot's) or is gone (node.StopOutcome).
type ContainerStater interface {
	// ContainerState returns the state of the container (id or name) on this node.
	ContainerState(ctx context.Context, containerName string) (ContainerState, error)
}

// ContainerState is a container's state as ContainerStater reads it.
type ContainerState string

// The container states.
const (
	ContainerRunning ContainerState = "running" // it runs (not frozen)
	ContainerFrozen  ContainerState = "frozen"  // it runs, frozen
	ContainerExited  ContainerState = "exited"  // it exists, no process runs
	ContainerGone    ContainerState = "gone"    // no such container on this node
)

var (
	_ ContainerStater = (*Client)(nil)
	_ ContainerStater = (*Fake)(nil)
)

// ContainerState implements ContainerStater: GET /v1/containers/{name}/state.
func (c *Client) ContainerState(ctx context.Context, name string) (ContainerState, error) {
	var out struct {
		State ContainerState `json:"state"`
	}
	if err := c.call(ctx, http.MethodGet, cpath(name, "state"), apiRequest{}, &out); err != nil {
		return "", err
	}
	return out.State, nil
}

// ContainerState implements ContainerStater: a container Stop ended is exited, one
// RemoveContainer removed (or Gone named) is gone, a frozen one frozen; any other
// name is a running container of the node.
func (f *Fake) ContainerState(_ context.Context, name string) (ContainerState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.gone[name]:
		return ContainerGone, nil
	case f.stopped[name]:
		return ContainerExited, nil
	case f.frozen[name]:
		return ContainerFrozen, nil
	}
	return ContainerRunning, nil
}

// Gone makes container c gone from the fake's node (as if removed by hand).
func (f *Fake) Gone(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone == nil {
		f.gone = map[string]bool{}
	}
	f.gone[c] = true
}

// Removed tells whether RemoveContainer removed container c (a restored one, or an
// original: the stop of a migration removes its moved containers).
func (f *Fake) Removed(c string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gone[c]
}
