package worker

import (
	"context"
	"fmt"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// The Fake's page digests after the restore (as the worker's, latehash_linux.go): a
// set received by a held DumpInto (ReceiveDirect) on a Fake with LateDigests lists its
// page file without a digest (PagesUnhashed) until its hash ran: started by its
// restore, or by any other use (Sockets, Send, SetDigests), which waits for it;
// RecheckSockets answers it as received. HashGate, when set, holds every hash until
// it is closed. Restart stands for a worker restart: a hash not finished is resumed
// (resume) or the set left unhashed for good.

// fakeHash is the pending hash of one set received by a Fake with LateDigests.
type fakeHash struct {
	started bool
	lost    bool          // its worker "restarted" without resuming: never hashed
	done    chan struct{} // closed when hashed or lost
}

// ReceiveDirect records set as received here from a held DumpInto and returns its
// manifest as this node holds it (the fake's IntoTo): its pages hashed here, now, or
// with LateDigests after its restore (listed without a digest until then).
func (f *Fake) ReceiveDirect(set string) *imageset.Manifest {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets[set] = true
	m := fakeManifest("")
	m.PagesReceivedBy = f.Node
	if !f.LateDigests {
		return m
	}
	if f.late == nil {
		f.late = map[string]*fakeHash{}
	}
	f.late[set] = &fakeHash{done: make(chan struct{})}
	return unhashed(m)
}

// unhashed is m with its page file's digest left out, as a late-hashing receiver lists it.
func unhashed(m *imageset.Manifest) *imageset.Manifest {
	for i := range m.Files {
		m.Files[i].SHA256 = ""
	}
	m.PagesUnhashed = true
	return m
}

// startHashLocked starts the pending hash of set, if any (f.mu held).
func (f *Fake) startHashLocked(set string) {
	h := f.late[set]
	if h == nil || h.started {
		return
	}
	h.started = true
	gate := f.HashGate
	go func() {
		if gate != nil {
			<-gate
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if h.lost {
			return
		}
		if f.late[set] == h {
			delete(f.late, set) // hashed: from now on like any set here
		}
		f.hashed = append(f.hashed, set)
		close(h.done)
	}()
}

// awaitLate waits for the pending hash of set, if any, starting it; a set left
// unhashed is ErrUnhashed.
func (f *Fake) awaitLate(ctx context.Context, set string) error {
	f.mu.Lock()
	h := f.late[set]
	f.startHashLocked(set)
	f.mu.Unlock()
	if h == nil {
		return nil
	}
	select {
	case <-h.done:
	case <-ctx.Done():
		return fmt.Errorf("fake worker %s: set %s: waiting for its received pages to be hashed: %w", f.Node, set, ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if h.lost {
		return fmt.Errorf("fake worker %s: set %s: %w (%w)", f.Node, set, ErrUnhashed, imageset.ErrUnhashed)
	}
	return nil
}

// pendingLocked says whether set waits for its hash (f.mu held).
func (f *Fake) pendingLocked(set string) bool { return f.late[set] != nil }

var _ DigestWaiter = (*Fake)(nil)

// SetDigests implements DigestWaiter.
func (f *Fake) SetDigests(ctx context.Context, set string) (*imageset.Manifest, error) {
	if err := validSet(set); err != nil {
		return nil, err
	}
	if !f.HasSet(set) {
		return nil, fmt.Errorf("fake worker %s: set %s: %w", f.Node, set, ErrNoSet)
	}
	if err := f.awaitLate(ctx, set); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.digestAsks++
	m := fakeManifest("")
	if f.into[set] == "" { // not dumped into another node from here: received, or dumped here
		m.PagesReceivedBy = f.Node
	}
	return m, nil
}

// Restart stands for a restart of this node's worker: each set whose pages were not
// hashed yet has its hash resumed at once (resume: as the worker does from the stamps
// its files had when they arrived), or stays unhashed for good.
func (f *Fake) Restart(resume bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for set, h := range f.late {
		if resume {
			if !h.started {
				f.startHashLocked(set)
			}
			continue
		}
		h.lost = true
		select {
		case <-h.done:
		default:
			close(h.done)
		}
	}
}

// Hashed lists the sets whose received pages this Fake hashed (LateDigests), in order.
func (f *Fake) Hashed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.hashed...)
}

// DigestAsks counts the SetDigests calls answered.
func (f *Fake) DigestAsks() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.digestAsks
}
