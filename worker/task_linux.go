package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/pendingconn"
	"github.com/swarmckpt/swarmckpt/worker/restore"
	"github.com/swarmckpt/swarmckpt/worker/rewrite"
)

// taskPlacer is restore.Docker's swarm-task side.
type taskPlacer interface {
	PlaceTask(v imageset.Verified, service string, slot int, opts restore.TaskOptions) (restore.Placement, error)
	SetAddressMap(service string, slot int, m rewrite.Map) error
	UnplaceTask(service string, slot int, backTo string) (bool, error)
	ClaimedBy(service string, slot int) []string
}

// taskWatches remembers, per placed service slot, the container that claimed it and
// how to stop the watch that journals its lock.
type taskWatches struct {
	mu sync.Mutex
	m  map[string]*taskWatch
}

type taskWatch struct {
	claimed string
	stop    context.CancelFunc
}

func (t *taskWatches) get(key string) *taskWatch {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[key]
}

func (t *taskWatches) put(key string, w *taskWatch) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*taskWatch{}
	}
	if old := t.m[key]; old != nil && old.stop != nil {
		old.stop()
	}
	t.m[key] = w
}

func (t *taskWatches) setClaimed(key string, w *taskWatch, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w.claimed = id
}

func (t *taskWatches) claimedOf(key string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.m[key]; w != nil {
		return w.claimed
	}
	return ""
}

func (w *Worker) placer() (taskPlacer, error) {
	p, ok := w.p.Placer.(taskPlacer)
	if !ok {
		return nil, fmt.Errorf("worker %s: %w: no placer for swarm tasks", w.cfg.Node, ErrConfig)
	}
	return p, nil
}

// verifiedSet checks every file of set setID (the stat-only recheck for a set hashed as
// it arrived), as Restore does.
func (w *Worker) verifiedSet(ctx context.Context, setID string) (imageset.Verified, error) {
	set, err := w.setPath(setID)
	if err != nil {
		return imageset.Verified{}, err
	}
	if _, err := os.Stat(set); err != nil {
		return imageset.Verified{}, fmt.Errorf("worker %s: set %s: %w", w.cfg.Node, setID, ErrNoSet)
	}
	if !w.holdsReceived(setID) {
		if err := w.awaitHash(ctx, setID); err != nil {
			return imageset.Verified{}, fmt.Errorf("worker %s: refusing to place set %s: %w", w.cfg.Node, setID, err)
		}
	}
	w.recvMu.Lock()
	cached, ok := w.verified[setID]
	w.recvMu.Unlock()
	var v imageset.Verified
	if ok && cached.Dir() == set {
		v, err = imageset.Recheck(cached)
	} else {
		v, err = imageset.Check(set)
	}
	if err != nil {
		return v, fmt.Errorf("worker %s: refusing to place set %s: %w", w.cfg.Node, setID, err)
	}
	return v, nil
}

// PlaceTask implements Tasks.
func (w *Worker) PlaceTask(ctx context.Context, setID string, o TaskOptions) (TaskPlacement, error) {
	if o.Service == "" || o.Slot <= 0 {
		return TaskPlacement{}, fmt.Errorf("worker %s: place set %s: need a service and a slot > 0 (got %q, %d)", w.cfg.Node, setID, o.Service, o.Slot)
	}
	p, err := w.placer()
	if err != nil {
		return TaskPlacement{}, err
	}
	v, err := w.verifiedSet(ctx, setID)
	if err != nil {
		return TaskPlacement{}, err
	}
	if m := v.Manifest(); len(m.Volumes) > 0 && m.Node != "" && m.Node != w.cfg.Node {
		// Swarm creates a task's volumes itself, empty, on whichever node it picks.
		return TaskPlacement{}, fmt.Errorf("worker %s: place set %s: it carries volumes (%s), which a swarm-mode restore does not recreate on another node yet: restore with --mode exact",
			w.cfg.Node, setID, carriedVolumesNote(m))
	}
	until := o.LockUntil
	if until.IsZero() {
		until = o.AddressMapUntil
	}
	if until.IsZero() {
		until = time.Now().Add(2 * time.Minute)
	}
	// A placement nobody took back (the coordinator died) goes stale a minute after
	// the restore's own deadline: a later task of the slot then starts normally.
	pl, err := p.PlaceTask(v, o.Service, o.Slot, restore.TaskOptions{NetworkLock: !o.LockUntil.IsZero(), AddressMapUntil: o.AddressMapUntil,
		Keep: true, Expires: until.Add(time.Minute)})
	if err != nil {
		return TaskPlacement{}, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	key := fmt.Sprintf("%s.%d", o.Service, o.Slot)
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	tw := &taskWatch{stop: stop}
	w.tasks.put(key, tw)
	var pending []pendingconn.Ports
	if o.LockUntil.IsZero() && w.p.EndPendingConnects {
		pending = pendingConnects(v.Dir()) // restored without our lock: ended once it runs
	}
	go w.watchTask(wctx, key, tw, p, o, w.deadline(until), pending)
	out := TaskPlacement{}
	for _, c := range pl.Connections {
		out.Connections = append(out.Connections, c.String())
	}
	for _, c := range pl.Closed {
		out.Closed = append(out.Closed, c.String())
	}
	w.log.Info("set placed for a swarm task", "set", setID, "service", o.Service, "slot", o.Slot,
		"locked", !o.LockUntil.IsZero(), "addressMapUntil", o.AddressMapUntil, "connections", len(out.Connections), "closed", len(out.Closed))
	return out, nil
}

// watchTask learns which container claims the placed set (until deadline) and, for a
// locked restore, journals the lock of that container once it runs: the watchdog then
// unlocks it at the deadline if the coordinator does not (it died, a node failed).
func (w *Worker) watchTask(ctx context.Context, key string, tw *taskWatch, p taskPlacer, o TaskOptions, deadline time.Time, pending []pendingconn.Ports) {
	defer tw.stop()
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		ids := p.ClaimedBy(o.Service, o.Slot)
		if len(ids) > 0 {
			id := ids[0]
			w.tasks.setClaimed(key, tw, id)
			if o.LockUntil.IsZero() {
				w.endPendingOfTask(ctx, id, pending) // pending_task_linux.go
				return
			}
			// Restored network-locked, as an exact restore's container: the
			// coordinator's Unlock ends the connects pending then (pending_linux.go).
			w.markRestored(id)
			if w.holdRestoredTask(ctx, id, deadline) {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// holdRestoredTask waits until container id runs (or its claim ends) and journals its
// network lock; it reports whether it is done with id.
func (w *Worker) holdRestoredTask(ctx context.Context, id string, deadline time.Time) bool {
	for {
		ref, err := w.p.Inspector.Resolve(ctx, id)
		if err == nil && ref.Pid > 0 {
			st, serr := w.p.Locker.State(ctx, ref)
			if serr == nil && !st.Locked() {
				return true // already unlocked (the coordinator was quick)
			}
			if err := w.hold(ref, true, false, nil, deadline); err != nil {
				w.log.Error("journal the lock of a restored swarm task (the coordinator's unlock still releases it)", "container", id, "err", err)
			} else {
				w.log.Info("lock of a restored swarm task journaled", "container", id, "deadline", deadline)
			}
			return true
		}
		select {
		case <-ctx.Done():
			return true
		case <-time.After(50 * time.Millisecond):
		}
		if err != nil && errors.Is(err, container.ErrNotFound) {
			return false // the create failed and the container is gone: watch the next claim
		}
	}
}

// SetAddressMap implements Tasks.
func (w *Worker) SetAddressMap(ctx context.Context, service string, slot int, addresses map[string]string) error {
	p, err := w.placer()
	if err != nil {
		return err
	}
	pairs := map[netip.Addr]netip.Addr{}
	for o, n := range addresses {
		a, err1 := netip.ParseAddr(o)
		b, err2 := netip.ParseAddr(n)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("worker %s: address map for %s slot %d: %w", w.cfg.Node, service, slot, err)
		}
		pairs[a] = b
	}
	m, err := rewrite.NewMap(pairs)
	if err != nil {
		return fmt.Errorf("worker %s: address map for %s slot %d: %w", w.cfg.Node, service, slot, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.SetAddressMap(service, slot, m); err != nil {
		return fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	return nil
}

// UnplaceTask implements Tasks.
func (w *Worker) UnplaceTask(ctx context.Context, service string, slot int, setID string) (TaskRelease, error) {
	p, err := w.placer()
	if err != nil {
		return TaskRelease{}, err
	}
	back := ""
	if setID != "" {
		if back, err = w.setPath(setID); err != nil {
			return TaskRelease{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return TaskRelease{}, err
	}
	key := fmt.Sprintf("%s.%d", service, slot)
	removed, err := p.UnplaceTask(service, slot, back)
	rel := TaskRelease{Removed: removed, Claimed: w.tasks.claimedOf(key)}
	if ids := p.ClaimedBy(service, slot); rel.Claimed == "" && len(ids) > 0 {
		rel.Claimed = ids[0]
	}
	if removed {
		if tw := w.tasks.get(key); tw != nil && rel.Claimed == "" {
			tw.stop()
		}
	}
	if err != nil {
		return rel, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	return rel, nil
}

// taskAPI serves Tasks over HTTP (see httpapi.go).
func (w *Worker) taskAPI(handle func(pattern string, f func(ctx context.Context, r *http.Request, req apiRequest) (any, error))) {
	handle("POST /v1/sets/{id}/place", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.PlaceTask(ctx, r.PathValue("id"), q.Task.Options)
	})
	slot := func(r *http.Request) (string, int, error) {
		n, err := strconv.Atoi(r.PathValue("slot"))
		return r.PathValue("service"), n, err
	}
	handle("PUT /v1/tasks/{service}/{slot}/address-map", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		s, n, err := slot(r)
		if err != nil {
			return nil, err
		}
		return struct{}{}, w.SetAddressMap(ctx, s, n, q.Task.Addresses)
	})
	handle("DELETE /v1/tasks/{service}/{slot}", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		s, n, err := slot(r)
		if err != nil {
			return nil, err
		}
		return w.UnplaceTask(ctx, s, n, q.Task.Set)
	})
}
