package restore

import (
	"context"
	"fmt"
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
	// replacing is open while replace starts a keeper in place of id (k.mu).
	replacing chan struct{}
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
				if id := k.settled(kp); id != "" {
					stop(id)
				}
			}
		})
	}
}

// settled returns kp's keeper once no replace of it is under way.
func (k *keepers) settled(kp *keeper) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	for kp.replacing != nil {
		ch := kp.replacing
		k.mu.Unlock()
		<-ch
		k.mu.Lock()
	}
	return kp.id
}

// replace swaps the running keeper of network, when it is id, for a new one, and
// returns once id is no longer this node's keeper of network (the caller then removes
// it): start runs while id still does, so the node keeps the network throughout and
// the new keeper cannot be given id's address. A keeper that is not this node's keeper
// of network (left by an earlier worker process) is nobody's: nothing to replace.
// Concurrent calls for one keeper start one replacement. A failed start leaves the
// network without a keeper (the error says so); id must go all the same.
func (k *keepers) replace(network, id string, start func() (string, error)) error {
	k.mu.Lock()
	kp := k.m[network]
	k.mu.Unlock()
	if kp == nil {
		return nil
	}
	<-kp.ready
	if k.settled(kp) != id {
		return nil
	}
	k.mu.Lock()
	if kp.id != id || kp.replacing != nil {
		k.mu.Unlock()
		return k.replace(network, id, start) // another replace began meanwhile
	}
	kp.replacing = make(chan struct{})
	k.mu.Unlock()
	nid, err := start()
	k.mu.Lock()
	kp.id = nid // "" when the start failed: nothing left to stop
	close(kp.replacing)
	kp.replacing = nil
	k.mu.Unlock()
	if err != nil {
		return fmt.Errorf("replace keeper %.12s of network %s: %w", id, network, err)
	}
	return nil
}

// wanted counts the addresses the restores running on a node take (network/IPv4):
// a keeper given one is not kept (startKeeper).
type wanted struct {
	mu sync.Mutex
	m  map[string]int
}

// add records the fixed IPv4 addresses of nets (network name -> address) until the
// returned func is called.
func (w *wanted) add(nets map[string]string) (done func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]int{}
	}
	var keys []string
	for n, ip := range nets {
		if ip != "" {
			keys = append(keys, n+"/"+ip)
			w.m[n+"/"+ip]++
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			for _, k := range keys {
				if w.m[k]--; w.m[k] <= 0 {
					delete(w.m, k)
				}
			}
		})
	}
}

// has tells whether a restore running here takes ip on network.
func (w *wanted) has(network, ip string) bool {
	if ip == "" {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.m[network+"/"+ip] > 0 || w.m["/"+ip] > 0
}
