package worker

import (
	"context"
	"net/http"

	"github.com/swarmckpt/swarmckpt/worker/restore"
)

// PreflightRequest is what a restore needs of this node, checked before anything is
// stopped: sets complete, images present, names and addresses free.
type PreflightRequest struct {
	restore.Check
	// Sets must be on this node with every listed file at its size.
	Sets []PreflightSet `json:"sets,omitempty"`
	// Prepare: the restore goes ahead (node.PreflightRequest.Prepare); nothing is
	// checked.
	Prepare bool `json:"prepare,omitempty"`
	// Ready, with Prepare: answer once what Prepare started is ready (the network
	// keepers run, or could not be started), or ctx ended (an error then).
	Ready bool `json:"ready,omitempty"`
	// Release: what an earlier Prepare of the Containers (by name) started is no
	// longer needed (node.PreflightRequest.Release); nothing is checked.
	Release bool `json:"release,omitempty"`
}

// PreflightSet is an image set and the files (relative to the set's directory, e.g.
// "images/pages-1.img") a snapshot recorded for it.
type PreflightSet struct {
	Set   string          `json:"set"`
	Files []PreflightFile `json:"files"`
	// Target is the node the set is to be restored on ("": not said, not checked). A
	// set whose container mounts a local named volume is refused for any node but the
	// one it ran on (localVolumeProblems): that node's volume is not carried.
	Target string `json:"target,omitempty"`
	// Key names the container in messages (SERVICE.SLOT; "": the set's container name).
	Key string `json:"key,omitempty"`
}

// PreflightFile is a file name and its size.
type PreflightFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// PreflightReport answers a PreflightRequest.
type PreflightReport struct {
	// Missing are the sets not on this node at all.
	Missing []string `json:"missing,omitempty"`
	// Problems say what would make a restore fail here, each with its fix.
	Problems []string `json:"problems,omitempty"`
}

// Preflight implements Restorer: POST /v1/preflight.
func (c *Client) Preflight(ctx context.Context, req PreflightRequest) (PreflightReport, error) {
	var out PreflightReport
	err := c.call(ctx, http.MethodPost, "/v1/preflight", apiRequest{Preflight: &req}, &out)
	return out, err
}
