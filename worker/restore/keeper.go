package restore

import (
	"context"
	"sync"
	"time"
)

// LabelKeeper marks a network keeper container (value: the network it holds).
const LabelKeeper = "io.swarmckpt.keeper"

// keepers shares, per network, one keeper container among the restores running on a
// node at the same time; the last of them to finish removes it.
//
// Why keepers: a node removes its instance of a swarm overlay asynchronously after the
// last container on it stopped (here 2.5-3 s after the stack's tasks were killed, more
// under load; a node also removes it when a late assignment update says it has no
// task on it any more). A restored container that joins the network with its fixed
// address while the node removes the network fails with "network ... not found", and
// dockerd then keeps the failed start's swarm attachment with that address for
// minutes: every later attempt with the address waits out the manager's 20 s
// ("attaching to network failed ... context deadline exceeded"). A container running
// on the network (the keeper: no fixed address, no program of the image) makes the
// node keep its instance: a network with an active endpoint is not removed. See
// docs/restore.md, "Network attachments on worker nodes".
type keepers struct {
	mu  sync.Mutex
	m   map[string]*keeper
	pre map[string]*preparedHold // by restored container name
}

// preparedHold is Prepare's hold on the keepers of a container about to be restored.
// It is registered at once (prepare) and holds once Prepare's keepers were started
// (set): an end that comes first (the restore's, or a release: Unprepare) releases
// them as soon as they are.
type preparedHold struct {
	timer *time.Timer
	mu    sync.Mutex
	// release is the hold on the keepers; nil until set.
	release func()
	ended   bool
	// prev is the hold this one replaced: it holds the same keepers, and is ended
	// only once this one holds them (the keepers never stop in between).
	prev *preparedHold
}

// prepare registers a new prepared hold of container name, replacing any earlier one:
// the end of its restore (endPrepared) or ttl ends it, whichever comes first; set
// gives it its keepers.
func (k *keepers) prepare(name string, ttl time.Duration) *preparedHold {
	h := &preparedHold{}
	k.mu.Lock()
	if k.pre == nil {
		k.pre = map[string]*preparedHold{}
	}
	h.prev = k.pre[name]
	k.pre[name] = h
	h.timer = time.AfterFunc(ttl, func() { k.endPrepared(name, h) })
	k.mu.Unlock()
	return h
}

// prepared records release as the prepared hold of container name (prepare, then set).
func (k *keepers) prepared(name string, release func(), ttl time.Duration) {
	k.prepare(name, ttl).set(release)
}

// set gives h the hold on its keepers (released at once when h has ended already),
// then ends the hold h replaced.
func (h *preparedHold) set(release func()) {
	h.mu.Lock()
	ended := h.ended
	if !ended {
		h.release = release
	}
	prev := h.prev
	h.prev = nil
	h.mu.Unlock()
	if ended {
		release()
	}
	if prev != nil {
		prev.end()
	}
}

// end releases h's keepers (once set) and the hold it replaced.
func (h *preparedHold) end() {
	h.mu.Lock()
	h.ended = true
	r, prev := h.release, h.prev
	h.release, h.prev = nil, nil
	h.mu.Unlock()
	if h.timer != nil {
		h.timer.Stop()
	}
	if r != nil {
		r()
	}
	if prev != nil {
		prev.end()
	}
}

// endPrepared releases the prepared hold of container name (only h, when h is set),
// and says whether there was one.
func (k *keepers) endPrepared(name string, h *preparedHold) bool {
	k.mu.Lock()
	cur := k.pre[name]
	if cur == nil || h != nil && cur != h {
		k.mu.Unlock()
		return false
	}
	delete(k.pre, name)
	k.mu.Unlock()
	cur.end()
	return true
}

type keeper struct {
	ready chan struct{} // closed once the start returned
	id    string        // "" when no keeper could be started
	refs  int
}

// hold returns once a keeper of network runs (start started it, or another restore's
// start did), or start failed, or ctx ended; release, called once the restore is over,
// has the last holder stop the keeper (stop gets the id start returned).
func (k *keepers) hold(ctx context.Context, network string, start func() (string, error), stop func(id string)) (release func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keeper{}
	}
	kp := k.m[network]
	first := kp == nil
	if first {
		kp = &keeper{ready: make(chan struct{})}
		k.m[network] = kp
	}
	kp.refs++
	k.mu.Unlock()
	if first {
		kp.id, _ = start()
		close(kp.ready)
	} else {
		select {
		case <-kp.ready:
		case <-ctx.Done():
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			k.mu.Lock()
			kp.refs--
			last := kp.refs == 0
			if last {
				delete(k.m, network)
			}
			k.mu.Unlock()
			if last {
				<-kp.ready
				if kp.id != "" {
					stop(kp.id)
				}
			}
		})
	}
}
