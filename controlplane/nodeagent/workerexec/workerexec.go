package workerexec

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// Exec drives a worker.Service.
type Exec struct {
	W    worker.Service
	Info worker.NodeInfo
	// Hold is how long a lock or freeze may last before the worker's watchdog
	// releases it (the coordinator's snapshot timeout plus a margin).
	Hold time.Duration
	// Log; default slog.Default().
	Log *slog.Logger
}

var (
	_ nodeagent.Executor = (*Exec)(nil)
	_ nodeagent.Restorer = (*Exec)(nil)
)

// New asks the worker for its node info and returns an Exec.
func New(ctx context.Context, w worker.Service, hold time.Duration) (*Exec, error) {
	info, err := w.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("workerexec: worker info: %w (is 'swarmckpt worker' running on this node?)", err)
	}
	if hold <= 0 {
		hold = 2 * time.Minute
	}
	return &Exec{W: w, Info: info, Hold: hold}, nil
}

func key(t nodeagent.Target) string {
	if t.Service != "" {
		return fmt.Sprintf("%s.%d", t.Service, t.Slot)
	}
	return t.ID
}

func addrs(peers []nodeagent.Target) []netip.Addr {
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

// Lock implements nodeagent.Executor. nil peers lock every connection; peers whose
// addresses are unknown are skipped (locking them all would lock too much).
func (e *Exec) Lock(ctx context.Context, c nodeagent.Target, peers []nodeagent.Target) ([]protocol.ConnCounter, error) {
	return nil, e.W.Lock(ctx, c.ID, addrs(peers), e.deadline(c))
}

// deadline is the coordinator's deadline for c, capped at now+Hold.
func (e *Exec) deadline(c nodeagent.Target) time.Time {
	max := time.Now().Add(e.Hold)
	if c.Deadline.IsZero() || c.Deadline.After(max) {
		return max
	}
	return c.Deadline
}

// Unlock implements nodeagent.Executor.
func (e *Exec) Unlock(ctx context.Context, c nodeagent.Target, peers []nodeagent.Target) error {
	return e.W.Unlock(ctx, c.ID, addrs(peers))
}

// Freeze implements nodeagent.Executor.
func (e *Exec) Freeze(ctx context.Context, c nodeagent.Target) error {
	return e.W.Freeze(ctx, c.ID, e.deadline(c))
}

// Thaw implements nodeagent.Executor.
func (e *Exec) Thaw(ctx context.Context, c nodeagent.Target) error { return e.W.Thaw(ctx, c.ID) }

// Stop implements nodeagent.Stopper.
func (e *Exec) Stop(ctx context.Context, c nodeagent.Target) error { return e.W.Stop(ctx, c.ID) }

var _ nodeagent.Stopper = (*Exec)(nil)

// Dump implements nodeagent.Executor.
func (e *Exec) Dump(ctx context.Context, snapshot string, c nodeagent.Target, leaveRunning bool, reuseFrom string) (*nodeagent.DumpResult, error) {
	if reuseFrom != "" {
		// The container did not change since reuseFrom: its image set there stands for
		// this snapshot too. The set is verified (every sha256) before it is reused.
		prev := nodeagent.SetID(reuseFrom, key(c))
		m, err := imageset.Verify(e.Info.SetDir(prev))
		if err != nil {
			return nil, fmt.Errorf("workerexec: reuse images of %s for %s: %w", reuseFrom, key(c), err)
		}
		is := ImageSet(e.Info, prev, m)
		return &nodeagent.DumpResult{Stats: protocol.DumpStats{ImageBytes: uint64(m.TotalBytes()), ReusedFrom: reuseFrom}, Images: is}, nil
	}
	set := nodeagent.SetID(snapshot, key(c))
	if c.CarryVolumes { // carryvolumes.go
		return e.dumpCarrying(ctx, c, set, leaveRunning)
	}
	if c.StreamTo != "" {
		return e.dumpTo(ctx, c, set, leaveRunning)
	}
	m, err := e.W.Dump(ctx, c.ID, set, leaveRunning)
	if err != nil {
		return nil, err
	}
	return &nodeagent.DumpResult{Stats: protocol.DumpStats{ImageBytes: uint64(m.TotalBytes())}, Images: ImageSet(e.Info, set, m)}, nil
}

// dumpTo is a migration's dump: the images stream to the target's worker (c.StreamTo)
// while CRIU writes them, and the set is kept here as a plain dump keeps it. If only
// the stream failed, the dump stands: the set here is verified (every sha256) and the
// restore sends it as it would have without streaming.
func (e *Exec) dumpTo(ctx context.Context, c nodeagent.Target, set string, leaveRunning bool) (*nodeagent.DumpResult, error) {
	m, err := e.W.DumpTo(ctx, c.ID, set, c.StreamTo, leaveRunning)
	if err != nil {
		local, verr := imageset.Verify(e.Info.SetDir(set))
		if verr != nil {
			return nil, err // the dump itself failed: no set here
		}
		e.log().Warn("streaming a migration's images to its target failed; the set is intact here and the restore will send it",
			"container", key(c), "set", set, "to", c.StreamTo, "err", err)
		m = local
	}
	return &nodeagent.DumpResult{Stats: protocol.DumpStats{ImageBytes: uint64(m.TotalBytes())}, Images: ImageSet(e.Info, set, m)}, nil
}

func (e *Exec) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.Default()
}

// ImageSet converts a worker manifest to the store's form.
func ImageSet(info worker.NodeInfo, set string, m *imageset.Manifest) store.ImageSet {
	is := store.ImageSet{Node: info.Node, Dir: info.SetDir(set), Durable: true,
		CRIUVersion: m.CRIUVersion}
	for _, f := range m.Files {
		is.Files = append(is.Files, store.File{Name: imageset.ImagesDir + "/" + f.Name, Size: f.Size, SHA256: f.SHA256})
	}
	return is
}

// Verify implements nodeagent.Restorer: the worker re-hashes the set against its own
// manifest, and that manifest must list exactly the snapshot's files.
func (e *Exec) Verify(ctx context.Context, set, label string, want []store.File) (json.RawMessage, error) {
	res, err := e.W.Sockets(ctx, set, label)
	if err != nil {
		return nil, err
	}
	if err := SameFiles(ImageSet(e.Info, set, res.Manifest).Files, want); err != nil {
		return nil, fmt.Errorf("image set %s on node %s: %w", set, e.Info.Node, err)
	}
	return json.Marshal(res.Sockets)
}

// SameFiles compares the files of a set on a node with the snapshot's record of them.
func SameFiles(got, want []store.File) error {
	byName := make(map[string]store.File, len(got))
	for _, f := range got {
		byName[f.Name] = f
	}
	for _, w := range want {
		g, ok := byName[w.Name]
		switch {
		case !ok:
			return fmt.Errorf("file %s of the snapshot is missing: the set is incomplete; take a new snapshot", w.Name)
		case g.Size != w.Size || !strings.EqualFold(g.SHA256, w.SHA256):
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

// Addr implements nodeagent.Restorer: this worker's transfer endpoint.
func (e *Exec) Addr() string { return e.Info.Addr }

// Send implements nodeagent.Restorer.
func (e *Exec) Send(ctx context.Context, set, toAddr string) (alreadyThere bool, err error) {
	res, err := e.W.Send(ctx, set, toAddr)
	return res.AlreadyThere, err
}

// Restore implements nodeagent.Restorer.
func (e *Exec) Restore(ctx context.Context, set string, o nodeagent.RestoreOptions) (string, error) {
	ro := worker.RestoreOptions{Name: o.Name, Service: o.Service, Slot: o.Slot, Aliases: o.Aliases, Keep: o.Keep}
	if o.Locked {
		// Locked from before CRIU restores its sockets; the coordinator unlocks every
		// container of the set together (Unlock), the watchdog at this deadline.
		ro.LockUntil = time.Now().Add(max(o.LockFor, time.Minute))
	}
	ref, err := e.W.Restore(ctx, set, ro)
	if err != nil {
		return "", err
	}
	return ref.ID, nil
}

// DropSet implements nodeagent.Restorer.
func (e *Exec) DropSet(ctx context.Context, set string) error { return e.W.DropSet(ctx, set) }

// Remove implements nodeagent.Restorer.
func (e *Exec) Remove(ctx context.Context, c string) error { return e.W.RemoveContainer(ctx, c) }

var _ nodeagent.TaskRestorer = (*Exec)(nil)

func (e *Exec) tasks() (worker.TaskService, error) {
	t, ok := e.W.(worker.TaskService)
	if !ok {
		return nil, fmt.Errorf("workerexec: the worker of node %s cannot place sets for swarm tasks (update it)", e.Info.Node)
	}
	return t, nil
}

// PlaceTask implements nodeagent.TaskRestorer.
func (e *Exec) PlaceTask(ctx context.Context, req nodeagent.PlaceRequest) (connections, closed []string, err error) {
	t, err := e.tasks()
	if err != nil {
		return nil, nil, err
	}
	o := worker.TaskOptions{Service: req.Service, Slot: req.Slot}
	now := time.Now()
	if req.LockFor > 0 {
		o.LockUntil = now.Add(req.LockFor)
	}
	if req.AddressMapFor > 0 {
		o.AddressMapUntil = now.Add(req.AddressMapFor)
	}
	p, err := t.PlaceTask(ctx, req.Set, o)
	return p.Connections, p.Closed, err
}

// SetAddressMap implements nodeagent.TaskRestorer.
func (e *Exec) SetAddressMap(ctx context.Context, service string, slot int, addresses map[string]string) error {
	t, err := e.tasks()
	if err != nil {
		return err
	}
	return t.SetAddressMap(ctx, service, slot, addresses)
}

// UnplaceTask implements nodeagent.TaskRestorer.
func (e *Exec) UnplaceTask(ctx context.Context, service string, slot int, set string) (bool, string, error) {
	t, err := e.tasks()
	if err != nil {
		return false, "", err
	}
	r, err := t.UnplaceTask(ctx, service, slot, set)
	return r.Removed, r.Claimed, err
}
