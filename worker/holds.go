package worker

import (
	"context"
	"net/http"
	"time"
)

// HoldsService lists what a node's worker holds: the containers its journal records
// locked or frozen (docs/dataplane.md "Deadlines"). *Worker and *Client implement it.
type HoldsService interface {
	// Holds returns every hold of the node's journal.
	Holds(ctx context.Context) ([]Held, error)
}

// Held is one container held locked or frozen on a node, and until when.
type Held struct {
	ContainerID string    `json:"containerID"`
	Name        string    `json:"name,omitempty"`
	Locked      bool      `json:"locked"`
	Frozen      bool      `json:"frozen"`
	Deadline    time.Time `json:"deadline"`
	// OwnerPid is the worker process that holds it (0: unknown); OwnerAlive false means
	// that process ended and the watchdog releases the container at once.
	OwnerPid   int  `json:"ownerPid,omitempty"`
	OwnerAlive bool `json:"ownerAlive"`
}

var _ HoldsService = (*Client)(nil)

// Holds implements HoldsService.
func (c *Client) Holds(ctx context.Context) ([]Held, error) {
	var out []Held
	err := c.call(ctx, http.MethodGet, "/v1/holds", apiRequest{}, &out)
	return out, err
}
