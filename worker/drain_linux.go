package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
)

// drainRecord is what Arm recorded of a container, next to its arm file
// (<data-root>/swarmckpt/drain/rec-<ID>): a held container is dumped from it, since
// docker inspect blocks while dockerd holds the container's lock for the held kill.
type drainRecord struct {
	Ref  container.Ref  `json:"ref"`
	Spec container.Spec `json:"spec"`
	Arm  ArmOptions     `json:"arm"`
}

// RuncState is what `runc state` says of a container (the fields the drain needs).
type RuncState struct {
	Pid    int    `json:"pid"`
	Status string `json:"status"`
	Bundle string `json:"bundle"`
}

// runcState runs `runc --root root state id`.
func runcState(ctx context.Context, root, id string) (RuncState, error) {
	var st RuncState
	out, err := exec.CommandContext(ctx, "runc", "--root", root, "state", id).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return st, fmt.Errorf("runc --root %s state %s: %w", root, id, err)
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("runc state %s: %w", id, err)
	}
	return st, nil
}

// drainDir is <data-root>/swarmckpt/drain, shared with the runtime wrapper.
func (w *Worker) drainDir() string {
	return filepath.Join(w.cfg.DataRoot, ociwrap.AreaDir, ociwrap.DrainDir)
}

func recFile(id string) string { return "rec-" + id }

// ckptFile records that a held container was checkpointed (JSON: the set ID).
func ckptFile(id string) string { return "ckpt-" + id }

// intoFile records where a held container checkpointed straight into another node
// went (JSON: that worker's address; CheckpointHeld with into).
func intoFile(id string) string { return "into-" + id }

// release writes the verdict for a held stop of id: checkpointed when CheckpointHeld
// dumped it, release otherwise.
func (w *Worker) release(id, reason string) error {
	outcome := ociwrap.VerdictRelease
	var set string
	if err := w.readJSON(ckptFile(id), &set); err == nil {
		outcome = ociwrap.VerdictCheckpointed
		if reason == "" {
			reason = "set " + set
		}
	}
	err := w.verdict(id, outcome, reason)
	return errors.Join(err, rmMissingOK(filepath.Join(w.drainDir(), ckptFile(id))), rmMissingOK(filepath.Join(w.drainDir(), intoFile(id))))
}

// Arm implements Drainer.
func (w *Worker) Arm(ctx context.Context, name string, o ArmOptions) error {
	if o.Budget <= 0 {
		return fmt.Errorf("worker %s: arm %s: a hold budget > 0 is required", w.cfg.Node, name)
	}
	c, err := w.resolveDumpable(ctx, name)
	if err != nil {
		return err
	}
	spec, err := w.p.Inspector.Spec(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	dir := w.drainDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("worker %s: arm %s: %w", w.cfg.Node, c, err)
	}
	// The record first: an arm file always has its record.
	if err := ociwrap.WriteJSONFile(dir, recFile(c.ID), drainRecord{Ref: c, Spec: spec, Arm: o}); err != nil {
		return fmt.Errorf("worker %s: arm %s: %w", w.cfg.Node, c, err)
	}
	arm := ociwrap.Arm{BudgetMS: min(o.Budget, ociwrap.MaxHold).Milliseconds(), GraceMS: o.Grace.Milliseconds(), Policy: o.Policy}
	if err := ociwrap.WriteJSONFile(dir, ociwrap.ArmFile(c.ID), arm); err != nil {
		return fmt.Errorf("worker %s: arm %s: %w", w.cfg.Node, c, err)
	}
	w.log.Info("container armed for drain", "container", c.Name, "id", c.ID, "budget", o.Budget, "policy", o.Policy)
	w.pruneArmed(ctx, c.ID)
	return nil
}

// pruneArmed removes the arming of containers that no longer run (tasks that ended or
// were replaced), whose files would otherwise stay. A container whose stop is held is
// left alone (docker inspect blocks then).
func (w *Worker) pruneArmed(ctx context.Context, keep string) {
	dir := w.drainDir()
	recs, _ := filepath.Glob(filepath.Join(dir, recFile("*")))
	for _, p := range recs {
		id := strings.TrimPrefix(filepath.Base(p), recFile(""))
		if id == keep {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, ociwrap.StopFile(id))); err == nil {
			continue
		}
		_, err := w.p.Inspector.Resolve(ctx, id)
		if !errors.Is(err, container.ErrNotFound) && !errors.Is(err, container.ErrNotRunning) {
			continue
		}
		if err := errors.Join(rmMissingOK(filepath.Join(dir, ociwrap.ArmFile(id))), rmMissingOK(p),
			rmMissingOK(filepath.Join(dir, ckptFile(id))), rmMissingOK(filepath.Join(dir, intoFile(id)))); err != nil {
			w.log.Warn("cannot remove the drain arming of a container that is gone", "id", id, "err", err)
		}
	}
}

// findArmed returns the ID of the armed container named (or identified by) name
// without asking Docker, from the records.
func (w *Worker) findArmed(name string) (string, bool) {
	if _, err := os.Stat(filepath.Join(w.drainDir(), recFile(name))); err == nil {
		return name, true
	}
	recs, _ := filepath.Glob(filepath.Join(w.drainDir(), recFile("*")))
	for _, p := range recs {
		var r drainRecord
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &r) == nil && (r.Ref.Name == name || strings.HasPrefix(r.Ref.ID, name)) {
			return r.Ref.ID, true
		}
	}
	return "", false
}

// Disarm implements Drainer.
func (w *Worker) Disarm(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id, ok := w.findArmed(name)
	if !ok {
		return nil
	}
	dir := w.drainDir()
	err := errors.Join(rmMissingOK(filepath.Join(dir, ociwrap.ArmFile(id))), rmMissingOK(filepath.Join(dir, recFile(id))))
	if _, serr := os.Stat(filepath.Join(dir, ociwrap.StopFile(id))); serr == nil {
		err = errors.Join(err, w.release(id, "disarmed"))
	}
	if err != nil {
		return fmt.Errorf("worker %s: disarm %.12s: %w", w.cfg.Node, id, err)
	}
	return nil
}

func rmMissingOK(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (w *Worker) verdict(id, outcome, reason string) error {
	return ociwrap.WriteJSONFile(w.drainDir(), ociwrap.VerdictFile(id), ociwrap.Verdict{Outcome: outcome, Reason: reason})
}

func (w *Worker) readJSON(name string, v any) error {
	b, err := os.ReadFile(filepath.Join(w.drainDir(), name))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// HeldStops implements Drainer: the stop requests without a verdict yet.
func (w *Worker) HeldStops(ctx context.Context) ([]HeldStop, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stops, err := filepath.Glob(filepath.Join(w.drainDir(), ociwrap.StopFile("*")))
	if err != nil {
		return nil, err
	}
	var out []HeldStop
	for _, p := range stops {
		id := strings.TrimPrefix(filepath.Base(p), ociwrap.StopFile(""))
		if _, err := os.Stat(filepath.Join(w.drainDir(), ociwrap.VerdictFile(id))); err == nil {
			continue // decided; the wrapper is on its way
		}
		var req ociwrap.StopRequest
		if err := w.readJSON(filepath.Base(p), &req); err != nil {
			continue // being written, or gone
		}
		h := HeldStop{ContainerID: id, Signal: req.Signal, Deadline: req.Deadline}
		var rec drainRecord
		if err := w.readJSON(recFile(id), &rec); err == nil {
			h.Name, h.Armed = rec.Ref.Name, rec.Arm
		}
		_ = w.readJSON(ckptFile(id), &h.Set)
		_ = w.readJSON(intoFile(id), &h.Into)
		out = append(out, h)
	}
	return out, nil
}

// minCheckpointTime is the least time left before a held stop's deadline for
// CheckpointHeld to start: a dump still running when the wrapper passes the stop on
// would record the stop signal as pending, and the restored copy would receive it.
const minCheckpointTime = time.Second

// CheckpointHeld implements Drainer.
func (w *Worker) CheckpointHeld(ctx context.Context, id, setID, into string) (m *imageset.Manifest, err error) {
	req, err := w.heldStop(id)
	if err != nil {
		return nil, err
	}
	// Once this checkpoint is done, off its path: the node's drain sets past their
	// retention go (drainsets.go).
	defer func() { go w.pruneDrainSets(context.WithoutCancel(ctx), time.Now()) }()
	if _, err := os.Stat(filepath.Join(w.drainDir(), ckptFile(id))); err == nil {
		return nil, fmt.Errorf("worker %s: held container %.12s was checkpointed already: %w", w.cfg.Node, id, ErrCheckpointed)
	}
	var rec drainRecord
	if err := w.readJSON(recFile(id), &rec); err != nil {
		rerr := w.verdict(id, ociwrap.VerdictRelease, "no arming record")
		return nil, errors.Join(fmt.Errorf("%w: container %.12s on %s (%v)", ErrNotArmed, id, w.cfg.Node, err), rerr)
	}
	c := rec.Ref
	// From here on, every failure releases the stop with its reason.
	defer func() {
		if err != nil {
			err = fmt.Errorf("worker %s: checkpoint of held %s: %w; its stop proceeds (a fresh start, as without swarmckpt)", w.cfg.Node, c, err)
			err = errors.Join(err, w.verdict(id, ociwrap.VerdictRelease, err.Error()))
			w.log.Warn("held container not checkpointed", "container", c.Name, "err", err)
		}
	}()
	left := time.Until(req.Deadline)
	if left < minCheckpointTime {
		return nil, fmt.Errorf("%w: %s left", ErrHoldTooShort, left.Round(time.Millisecond))
	}
	ctx, cancel := context.WithDeadline(ctx, req.Deadline.Add(-minCheckpointTime/2))
	defer cancel()
	root := req.Root
	if root == "" {
		root = w.cfg.RuncRoot()
	}
	state := w.p.RuncState
	if state == nil {
		state = runcState
	}
	st, err := state(ctx, root, id)
	if err != nil {
		return nil, err
	}
	if st.Status != "running" || st.Pid != c.Pid {
		return nil, fmt.Errorf("runc reports %s with pid %d, armed with pid %d: not the container that was armed", st.Status, st.Pid, c.Pid)
	}
	set, err := w.setPath(setID)
	if err != nil {
		return nil, err
	}
	if into != "" {
		return w.checkpointHeldInto(ctx, id, setID, set, into, c, rec.Spec, req.Deadline)
	}
	t0 := time.Now()
	w.harden(ctx, c)
	if err := w.hold(c, true, false, nil, w.deadline(req.Deadline)); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := w.p.Locker.Lock(ctx, c, nil); err != nil {
		return nil, errors.Join(fmt.Errorf("lock: %w", err), w.p.Locker.Unlock(context.WithoutCancel(ctx), c, nil), w.unhold(c, true, false))
	}
	m, err = w.p.Dumper.Dump(ctx, c, rec.Spec, set, dump.Options{Node: w.cfg.Node})
	if err != nil {
		// CRIU resumes the processes of a failed dump: unlock them.
		return nil, errors.Join(err, w.p.Locker.Unlock(context.WithoutCancel(ctx), c, nil), w.unhold(c, true, false))
	}
	_ = w.unhold(c, true, true) // the processes are gone, and their lock with them
	if err := w.p.Sync(set); err != nil {
		// The container is gone: its set is all that is left of it, so it stays.
		w.log.Error("checkpointed held container, but its set could not be synced to disk", "container", c.Name, "set", setID, "err", err)
	}
	if v, err := imageset.Sealed(set, m); err == nil {
		w.remember(setID, v)
	}
	// The stop stays held until ReleaseHeld (the set is placed for swarm's
	// replacement first): swarm must not see the old task end before.
	if err := ociwrap.WriteJSONFile(w.drainDir(), ckptFile(id), setID); err != nil {
		w.log.Warn("could not record the checkpoint of a held container; its release will say release", "container", c.Name, "err", err)
	}
	w.log.Info("held container checkpointed", "container", c.Name, "set", setID, "bytes", m.TotalBytes(), "seconds", time.Since(t0).Seconds(),
		"left_of_hold", time.Until(req.Deadline).Seconds())
	return m, nil
}

// checkpointHeldInto is CheckpointHeld's direct transfer (into: the worker of the
// node where swarm placed the replacement): CRIU sends the memory pages straight to a
// page server there (hashed on arrival: the set is placed at once), the other images
// follow in a live stream, and no copy is written here. The container is
// network-locked and frozen (journaled until the hold's deadline) and dumped with
// --leave-running; it is ended only once the target verified and holds the whole set,
// which is then its only copy. If anything fails before that, it is thawed and
// unlocked and its stop proceeds (the caller's verdict), and the target keeps nothing.
func (w *Worker) checkpointHeldInto(ctx context.Context, id, setID, set, into string, c container.Ref, spec container.Spec, deadline time.Time) (*imageset.Manifest, error) {
	k, ok := w.p.Dumper.(killer)
	if !ok {
		return nil, fmt.Errorf("this node's dumper cannot dump into another node")
	}
	t0 := time.Now()
	psAddr, err := openPages(ctx, w.peer, into, setID, PageDigestsOnArrival)
	if err != nil {
		return nil, fmt.Errorf("open a page server on %s: %w (nothing was done to the container)", into, err)
	}
	w.harden(ctx, c)
	until := w.deadline(deadline)
	if err := w.hold(c, true, true, nil, until); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	release := func() error {
		ctx := context.WithoutCancel(ctx)
		return errors.Join(w.p.Freezer.Thaw(ctx, c), w.p.Locker.Unlock(ctx, c, nil), w.unhold(c, true, true))
	}
	if err := w.p.Locker.Lock(ctx, c, nil); err != nil {
		return nil, errors.Join(fmt.Errorf("lock: %w", err), release())
	}
	if err := w.p.Freezer.Freeze(ctx, c); err != nil {
		return nil, errors.Join(fmt.Errorf("freeze: %w", err), release())
	}
	opts := dump.Options{Node: w.cfg.Node, LeaveRunning: true, SendPages: psAddr}
	m, derr, serr := w.dumpStreamedWith(ctx, setID, into, opts,
		func(m *imageset.Manifest) { m.LeaveRunning = false }, // ended below once the target holds the set
		func(o dump.Options) (*imageset.Manifest, error) { return w.p.Dumper.Dump(ctx, c, spec, set, o) })
	_ = w.DropSet(context.WithoutCancel(ctx), setID) // without its pages it restores nowhere
	if err := errors.Join(derr, serr); err != nil {
		return nil, errors.Join(fmt.Errorf("dump into %s (the target keeps nothing; the container runs on here): %w", into, err), release())
	}
	if err := w.end(context.WithoutCancel(ctx), c, k); err != nil {
		// Thawing it would run it next to its replacement: it stays frozen and locked
		// until the hold's deadline; the set on the target is its state.
		return m, fmt.Errorf("dumped into %s (set %s holds its state there), but ending it here failed: %w (it stays frozen until %s: remove it with docker rm -f)",
			into, setID, err, until.Format(time.RFC3339))
	}
	// The stop stays held until ReleaseHeld, as for a checkpoint here.
	if err := errors.Join(ociwrap.WriteJSONFile(w.drainDir(), intoFile(id), into), ociwrap.WriteJSONFile(w.drainDir(), ckptFile(id), setID)); err != nil {
		w.log.Warn("could not record the checkpoint of a held container; its release will say release", "container", c.Name, "err", err)
	}
	w.log.Info("held container checkpointed straight into another node", "container", c.Name, "set", setID, "to", into,
		"bytes", m.TotalBytes(), "dump_seconds", m.DumpSeconds, "seconds", time.Since(t0).Seconds(), "left_of_hold", time.Until(deadline).Seconds())
	return m, nil
}

// ReleaseHeld implements Drainer.
func (w *Worker) ReleaseHeld(ctx context.Context, id, reason string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := w.heldStop(id); err != nil {
		return err
	}
	return w.release(id, reason)
}

// heldStop returns the stop request of id when it is held and undecided.
func (w *Worker) heldStop(id string) (ociwrap.StopRequest, error) {
	var req ociwrap.StopRequest
	if strings.ContainsRune(id, '/') {
		return req, fmt.Errorf("%w: bad container ID %q", ErrNotHeld, id)
	}
	if err := w.readJSON(ociwrap.StopFile(id), &req); err != nil {
		return req, fmt.Errorf("%w: container %.12s on %s (%v)", ErrNotHeld, id, w.cfg.Node, err)
	}
	if _, err := os.Stat(filepath.Join(w.drainDir(), ociwrap.VerdictFile(id))); err == nil {
		return req, fmt.Errorf("%w: container %.12s on %s: its stop was decided already", ErrNotHeld, id, w.cfg.Node)
	}
	return req, nil
}

func (w *Worker) drainAPI(handle func(pattern string, f func(ctx context.Context, r *http.Request, req apiRequest) (any, error))) {
	handle("PUT /v1/drain/{name}", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.Arm(ctx, r.PathValue("name"), q.Drain.Arm)
	})
	handle("DELETE /v1/drain/{name}", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.Disarm(ctx, r.PathValue("name"))
	})
	handle("GET /v1/drain", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.HeldStops(ctx)
	})
	handle("POST /v1/drain/{name}/checkpoint", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.CheckpointHeld(ctx, r.PathValue("name"), q.Set, q.Addr)
	})
	handle("POST /v1/drain/{name}/release", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.ReleaseHeld(ctx, r.PathValue("name"), q.Drain.Reason)
	})
}

var _ Drainer = (*Worker)(nil)
