package worker

import (
	"bytes"
	"context"
	"encoding/json"
)

// SpaceChecker is a Dumper that tells, before anything is locked or frozen, whether
// the file system of this node's image sets holds the sets of the dumps a plan asks
// of it (package space: each container's memory in use plus a margin against the
// free space). The node agent asks it with the containers of a snapshot plan (or a
// migration's) whose dumps write their set here; a Dumper without it is not asked.
type SpaceChecker interface {
	// CheckSpace refuses dumps whose estimated sets do not fit in the free space, with
	// an error matching syscall.ENOSPC (node.ErrNoSpace over the wire, reason
	// "no_space") that names the node, the file system, the free and the needed bytes
	// and what to do. No dump: nil.
	CheckSpace(ctx context.Context, dumps []SpaceDump) error
}

// SpaceDump is one dump a plan asks of this node that writes its set here.
type SpaceDump struct {
	// Container is the container's name or ID on this node.
	Container string `json:"container"`
	// Label names it in messages (SERVICE.SLOT; "": Container).
	Label string `json:"label,omitempty"`
}

func (d SpaceDump) label() string {
	if d.Label != "" {
		return d.Label
	}
	return d.Container
}

// CheckSpace implements SpaceChecker: POST /v1/space. A worker that does not know the
// route (an older version) cannot tell: nil (its dump still fails with no_space if
// the disk fills).
func (c *Client) CheckSpace(ctx context.Context, dumps []SpaceDump) error {
	b, _ := json.Marshal(apiRequest{Space: dumps})
	return c.check(ctx, "/v1/space", bytes.NewReader(b), "check space")
}

var _ SpaceChecker = (*Client)(nil)
