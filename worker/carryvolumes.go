package worker

import (
	"context"
	"fmt"
	"net/http"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// DumpOptions are the options of DumpWith.
type DumpOptions struct {
	// LeaveRunning keeps the container running after its dump.
	LeaveRunning bool `json:"leaveRunning,omitempty"`
	// StreamTo, when set (host:port), streams the images to the worker there while
	// they are written, as DumpTo does.
	StreamTo string `json:"streamTo,omitempty"`
	// Into, when set (host:port), dumps as DumpInto does: the memory pages go straight
	// to a page server of the worker there, the other images follow, and no set stays
	// on this node. With LeaveRunning the container is left as its caller holds it
	// (frozen and network-locked: a migration's parked container, worker/agent
	// park.go), not killed: the caller ends it once the migration committed, or
	// releases it. Without LeaveRunning it is DumpInto (its own hold, killed once the
	// target holds the set). Overrides StreamTo.
	Into string `json:"into,omitempty"`
	// Lazy, when set (HOST:PORT, port 0: any free one), dumps post-copy as DumpLazy
	// does: no memory page is written, CRIU serves them on that address until a
	// restore fetched them all (WaitLazy). With LeaveRunning the container is left as
	// its caller holds it (a migration's parked container, frozen and locked) after
	// the last page, not ended: the caller ends it. Without LeaveRunning it is
	// DumpLazy. Overrides Into and StreamTo; not with CarryVolumes.
	Lazy string `json:"lazy,omitempty"`
	// CarryVolumes packs the content of the container's local named volumes into the
	// set (images/volume-NAME.tar, imageset.Manifest.Volumes), while it is frozen, so
	// that a restore on another node recreates them with that content
	// (`snapshot --carry-volumes`). Volumes of other drivers are not touched.
	CarryVolumes bool `json:"carryVolumes,omitempty"`
	// PreCopied: the dump takes the pre-dumps PreCopy kept on this node for setID
	// (migrate --copy pre-copy) into the set and writes only the pages dirtied since
	// the last one (imageset.Manifest.PreDumps). Refused if PreCopy kept none. Only
	// for a plain or streamed (StreamTo) dump.
	PreCopied bool `json:"preCopied,omitempty"`
}

// DumpWith implements Dumper: POST /v1/containers/{name}/dump, dumpto with
// StreamTo, or dumpinto with Into. A worker that does not know carryVolumes ignores it: its set then carries
// no volume, and a restore elsewhere is refused as for any set without them.
func (c *Client) DumpWith(ctx context.Context, name, setID string, o DumpOptions) (*imageset.Manifest, error) {
	var m imageset.Manifest
	req := apiRequest{Set: setID, LeaveRunning: o.LeaveRunning, CarryVolumes: o.CarryVolumes, PreCopied: o.PreCopied}
	route := "dump"
	if o.StreamTo != "" {
		route, req.Addr = "dumpto", o.StreamTo
	}
	if o.Into != "" {
		route, req.Addr = "dumpinto", o.Into
	}
	if o.Lazy != "" {
		route, req.Addr = "dumplazy", o.Lazy
	}
	if err := c.call(ctx, http.MethodPost, cpath(name, route), req, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// carriedVolumesNote describes what a set carries of its container's volumes, for logs.
func carriedVolumesNote(m *imageset.Manifest) string {
	s := ""
	for i, v := range m.Volumes {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s (%d bytes, %d entries)", v.Name, v.Bytes, v.Entries)
	}
	return s
}
