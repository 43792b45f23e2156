package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/restore"
)

// The container actions and node operations in terms of the worker's roles: what a
// Target, a deadline or a request of the wire contract means to the worker.

// addrs are the addresses of peers; peers whose addresses are unknown are skipped
// (locking all of a container's connections for them would lock too much). nil peers:
// every connection.
func addrs(peers []node.Target) []netip.Addr {
	var out []netip.Addr
	for _, p := range peers {
		for _, ip := range p.IPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				out = append(out, a)
			}
		}
	}
	return out
}

// holdUntil is the coordinator's deadline for c, capped at now+Hold.
func (a *Agent) holdUntil(c node.Target) time.Time {
	limit := time.Now().Add(a.cfg.Hold)
	if c.Deadline.IsZero() || c.Deadline.After(limit) {
		return limit
	}
	return c.Deadline
}

func (a *Agent) lock(ctx context.Context, c node.Target, peers []node.Target) error {
	return a.cfg.Worker.Holder.Lock(ctx, c.ID, addrs(peers), a.holdUntil(c))
}

func (a *Agent) unlock(ctx context.Context, c node.Target, peers []node.Target) error {
	return a.cfg.Worker.Holder.Unlock(ctx, c.ID, addrs(peers))
}

func (a *Agent) freeze(ctx context.Context, c node.Target) error {
	return a.cfg.Worker.Holder.Freeze(ctx, c.ID, a.holdUntil(c))
}

func (a *Agent) thaw(ctx context.Context, c node.Target) error {
	return a.cfg.Worker.Holder.Thaw(ctx, c.ID)
}

// dump checkpoints c into its image set of snapshot and returns what its dump-done
// reports: the durable image set and its size.
func (a *Agent) dump(ctx context.Context, snapshot string, c node.Target, leaveRunning bool, reuseFrom string) (protocol.DumpStats, error) {
	if reuseFrom != "" {
		// The container did not change since reuseFrom: its image set there stands for
		// this snapshot too. The set is verified (every sha256) before it is reused.
		prev := node.SetID(reuseFrom, c.SetKey())
		m, err := a.verified(ctx, prev, c.SetKey())
		if err == nil {
			return a.stats(prev, m, reuseFrom), nil
		}
		if ctx.Err() != nil {
			return protocol.DumpStats{}, fmt.Errorf("agent: reuse images of %s for %s: %w", reuseFrom, c.SetKey(), err)
		}
		// Gone or damaged: dump afresh (the container is still locked, as for any
		// dump of minimal), which the dump-done reports as not reused; the
		// coordinator then takes the new images as the container's base.
		a.log.Warn("the images to reuse cannot be used: dumping afresh", "container", c.SetKey(), "reuse_from", reuseFrom, "err", err)
	}
	set := node.SetID(snapshot, c.SetKey())
	if c.PostCopy {
		return a.dumpLazy(ctx, c, set, leaveRunning)
	}
	if c.Direct && c.StreamTo != "" {
		return a.dumpInto(ctx, c, set, leaveRunning)
	}
	if c.CarryVolumes { // carryvolumes.go
		return a.dumpCarrying(ctx, c, set, leaveRunning)
	}
	if c.PreCopy && c.StreamTo != "" {
		return a.dumpPreCopied(ctx, c, set, leaveRunning) // precopy.go
	}
	if c.StreamTo != "" {
		return a.dumpTo(ctx, c, set, leaveRunning)
	}
	m, err := a.cfg.Worker.Dumper.Dump(ctx, c.ID, set, leaveRunning)
	if err != nil {
		return protocol.DumpStats{}, err
	}
	return a.stats(set, m, ""), nil
}

// dumpTo is a migration's dump: the images stream to the target's worker (c.StreamTo)
// while CRIU writes them, and the set is kept here as a plain dump keeps it. If only
// the stream failed, the dump stands: the set here is verified (every sha256) and the
// restore sends it as it would have without streaming.
func (a *Agent) dumpTo(ctx context.Context, c node.Target, set string, leaveRunning bool) (protocol.DumpStats, error) {
	m, err := a.cfg.Worker.Dumper.DumpTo(ctx, c.ID, set, c.StreamTo, leaveRunning)
	return a.streamed(ctx, c, set, m, err)
}

// streamed is the outcome of a dump that streamed set to c.StreamTo (m, err): when
// only the stream failed, the set here is verified (every sha256) and stands, and the
// restore sends it as it would have without streaming; when the dump itself failed
// there is no set here and the dump fails.
func (a *Agent) streamed(ctx context.Context, c node.Target, set string, m *imageset.Manifest, err error) (protocol.DumpStats, error) {
	if err != nil {
		if c.StreamTo == "" {
			return protocol.DumpStats{}, err
		}
		local, verr := a.verified(ctx, set, c.SetKey())
		if verr != nil {
			return protocol.DumpStats{}, err // the dump itself failed: no set here
		}
		a.log.Warn("streaming a migration's images to its target failed; the set is intact here and the restore will send it",
			"container", c.SetKey(), "set", set, "to", c.StreamTo, "err", err)
		m = local
	}
	return a.stats(set, m, ""), nil
}

// dumpInto is a direct migration's dump (c.Direct): the memory pages go straight to
// the target's worker (c.StreamTo), which verifies the set; no set stays here. Parked
// (leaveRunning), the container is left frozen and locked for the migration's outcome;
// otherwise the worker ends it once the target holds the set. A failure fails the dump:
// there is no copy here to fall back on, and the target keeps nothing. The image set
// reported names this node: the coordinator records it as living on the target
// (store.Container.Direct).
func (a *Agent) dumpInto(ctx context.Context, c node.Target, set string, leaveRunning bool) (protocol.DumpStats, error) {
	m, err := a.cfg.Worker.Dumper.DumpWith(ctx, c.ID, set, worker.DumpOptions{LeaveRunning: leaveRunning, Into: c.StreamTo, CarryVolumes: c.CarryVolumes})
	if err != nil {
		return protocol.DumpStats{}, err
	}
	return a.stats(set, m, ""), nil
}

// dumpLazy is a post-copy migration's dump (c.PostCopy): the worker's held lazy dump,
// whose page server listens on this node's transfer host (a free port) and serves the
// memory pages to the restore; the set here holds every image but the pages, and the
// restore sends it as for a plain dump. Only a parked container (leaveRunning: frozen
// and locked for the migration's outcome) can be dumped so: it stays frozen after the
// last page, for the coordinator to end once WaitLazy says every page was fetched.
func (a *Agent) dumpLazy(ctx context.Context, c node.Target, set string, leaveRunning bool) (protocol.DumpStats, error) {
	if !leaveRunning {
		return protocol.DumpStats{}, fmt.Errorf("agent %s: post-copy dump of %s: only a migration's parked container can be dumped post-copy (the snapshot does not stop its containers): migrate with --copy direct or streamed",
			a.cfg.Node, c.SetKey())
	}
	host, _, err := net.SplitHostPort(a.info.Addr)
	if err != nil || host == "" {
		return protocol.DumpStats{}, fmt.Errorf("agent %s: post-copy dump of %s: the worker's transfer address %q names no host for the page server: %w (check the worker's --addr)",
			a.cfg.Node, c.SetKey(), a.info.Addr, node.ErrUnavailable)
	}
	m, err := a.cfg.Worker.Dumper.DumpWith(ctx, c.ID, set, worker.DumpOptions{LeaveRunning: true, Lazy: net.JoinHostPort(host, "0")})
	if err != nil {
		return protocol.DumpStats{}, err
	}
	return a.stats(set, m, ""), nil
}

// verified is the manifest of set on this node once every file was re-hashed.
func (a *Agent) verified(ctx context.Context, set, label string) (*imageset.Manifest, error) {
	if a.cfg.Worker.Sets == nil {
		return nil, node.Mark(fmt.Errorf("the agent of node %s cannot verify image sets (its worker has no sets role)", a.cfg.Node), node.ErrNoWorker)
	}
	res, err := a.cfg.Worker.Sets.Sockets(ctx, set, label)
	if err != nil {
		return nil, err
	}
	return res.Manifest, nil
}

func (a *Agent) stats(set string, m *imageset.Manifest, reusedFrom string) protocol.DumpStats {
	is := ImageSet(a.info, set, m)
	return protocol.DumpStats{ImageBytes: uint64(m.TotalBytes()), ReusedFrom: reusedFrom, Images: &is}
}

// ImageSet is the wire form of a worker's set manifest.
func ImageSet(info worker.NodeInfo, set string, m *imageset.Manifest) protocol.ImageSet {
	is := protocol.ImageSet{Node: info.Node, Dir: info.SetDir(set), Durable: true, CRIUVersion: m.CRIUVersion, PagesHashedBy: m.PagesReceivedBy, PagesPending: m.PagesUnhashed}
	for _, f := range m.Files {
		is.Files = append(is.Files, node.File{Name: imageset.ImagesDir + "/" + f.Name, Size: f.Size, SHA256: f.SHA256})
	}
	return is
}

// verify re-hashes set on this node (the worker checks every file against its own
// manifest), checks that the manifest lists exactly the snapshot's files (want) and
// returns the set's TCP sockets, labelled label, as JSON ([]cut.Socket). recheck
// (node.VerifyRequest.Recheck): a set the worker hashed as it wrote it and that did
// not change since is not re-read (worker.SetRechecker; a worker without it re-hashes).
func (a *Agent) verify(ctx context.Context, set, label string, want []node.File, recheck bool) (json.RawMessage, error) {
	sockets := a.cfg.Worker.Sets.Sockets
	if rc, ok := a.cfg.Worker.Sets.(worker.SetRechecker); ok && recheck {
		sockets = rc.RecheckSockets
	}
	res, err := sockets(ctx, set, label)
	if err != nil {
		return nil, err
	}
	if err := SameFiles(ImageSet(a.info, set, res.Manifest).Files, want); err != nil {
		return nil, fmt.Errorf("image set %s on node %s: %w", set, a.cfg.Node, err)
	}
	return json.Marshal(res.Sockets)
}

// digests answers a node.VerifyRequest with Digests: the files of set as the worker
// recorded them once its received pages are hashed (worker.DigestWaiter).
func (a *Agent) digests(ctx context.Context, set string) ([]node.File, error) {
	dw, ok := a.cfg.Worker.Sets.(worker.DigestWaiter)
	if !ok {
		return nil, node.Mark(fmt.Errorf("the worker of node %s cannot report the digests of received pages (an older version): upgrade it", a.cfg.Node), node.ErrNoWorker)
	}
	m, err := dw.SetDigests(ctx, set)
	if err != nil {
		return nil, err
	}
	return ImageSet(a.info, set, m).Files, nil
}

// SameFiles compares the files of a set on a node with the snapshot's record of them.
// A memory page file the record lists without a digest (its pages were pending at the
// commit: protocol.ImageSet.PagesPending) is compared by its size only: the node's
// worker checks its content against its own manifest.
func SameFiles(got, want []node.File) error {
	byName := make(map[string]node.File, len(got))
	for _, f := range got {
		byName[f.Name] = f
	}
	for _, w := range want {
		g, ok := byName[w.Name]
		switch {
		case !ok:
			return fmt.Errorf("file %s of the snapshot is missing: the set is incomplete; take a new snapshot", w.Name)
		case g.Size != w.Size || !strings.EqualFold(g.SHA256, w.SHA256) && !(w.SHA256 == "" && protocol.PendingPageFile(w.Name)):
			return fmt.Errorf("file %s differs from the snapshot's manifest (size %d sha256 %.12s, manifest says size %d sha256 %.12s): the images were changed; take a new snapshot",
				w.Name, g.Size, g.SHA256, w.Size, w.SHA256)
		}
		delete(byName, w.Name)
	}
	if len(byName) > 0 {
		extra := slices.Sorted(maps.Keys(byName))
		return fmt.Errorf("file %s is not in the snapshot's manifest: the set was changed; take a new snapshot", extra[0])
	}
	return nil
}

// restoreOptions is what a restore request asks of the worker.
func restoreOptions(o node.RestoreOptions) worker.RestoreOptions {
	ro := worker.RestoreOptions{Name: o.Name, Service: o.Service, Slot: o.Slot, Aliases: o.Aliases, Keep: o.Keep}
	if o.Locked {
		// Locked from before CRIU restores its sockets; the coordinator unlocks every
		// container of the set together (OpUnlock), the watchdog at this deadline.
		ro.LockUntil = time.Now().Add(max(o.LockFor, time.Minute))
	}
	return ro
}

// taskOptions is what a place request asks of the worker.
func taskOptions(req node.PlaceRequest) worker.TaskOptions {
	o := worker.TaskOptions{Service: req.Service, Slot: req.Slot}
	now := time.Now()
	if req.LockFor > 0 {
		o.LockUntil = now.Add(req.LockFor)
	}
	if req.AddressMapFor > 0 {
		o.AddressMapUntil = now.Add(req.AddressMapFor)
	}
	return o
}

// preflightRequest is what a pre-flight request asks of the worker.
func preflightRequest(req node.PreflightRequest) worker.PreflightRequest {
	wr := worker.PreflightRequest{Check: restore.Check{Stack: req.Stack, Containers: req.Containers, Addresses: req.Addresses},
		Prepare: req.Prepare, Ready: req.Ready, Release: req.Release}
	for _, s := range req.Sets {
		ps := worker.PreflightSet{Set: s.Set, Target: s.Target, Key: s.Key}
		for _, f := range s.Files {
			ps.Files = append(ps.Files, worker.PreflightFile{Name: f.Name, Size: f.Size})
		}
		wr.Sets = append(wr.Sets, ps)
	}
	return wr
}
