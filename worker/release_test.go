package worker_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

// cutLocker and cutFreezer end the caller's request (cancel) as their release starts,
// and fail as a command run with that context does when it ends (exec.CommandContext
// kills nft).
type cutLocker struct {
	netlock.Locker
	cancel context.CancelFunc
}

func (l cutLocker) Unlock(ctx context.Context, c container.Ref, peers []netip.Addr) error {
	l.cancel()
	if err := ctx.Err(); err != nil {
		return err
	}
	return l.Locker.Unlock(ctx, c, peers)
}

type cutFreezer struct {
	freezer.Freezer
	cancel context.CancelFunc
}

func (f cutFreezer) Thaw(ctx context.Context, c container.Ref) error {
	f.cancel()
	if err := ctx.Err(); err != nil {
		return err
	}
	return f.Freezer.Thaw(ctx, c)
}

// TestReleaseOutlivesItsRequest: an unlock or thaw whose request ends while it runs
// (the agent's call cancelled or cut off) still runs to its end: the container is
// released and its hold leaves the journal, instead of the release being killed
// half-way and the container left held with nobody to know.
func TestReleaseOutlivesItsRequest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lock *netlock.Fake
	var fz *freezer.Fake
	n := newFakeNodeParts(t, "n1", nil, nil, func(p *worker.Parts) {
		lock, fz = p.Locker.(*netlock.Fake), p.Freezer.(*freezer.Fake)
		p.Locker, p.Freezer = cutLocker{Locker: lock, cancel: cancel}, cutFreezer{Freezer: fz, cancel: cancel}
	})
	c := n.add("web", 42)
	bg := context.Background()
	until := time.Now().Add(time.Minute)
	if err := n.w.Lock(bg, "web", nil, until); err != nil {
		t.Fatal(err)
	}
	if err := n.w.Freeze(bg, "web", until); err != nil {
		t.Fatal(err)
	}
	if err := n.w.Thaw(ctx, "web"); err != nil {
		t.Fatalf("thaw whose request ended as it ran: %v", err)
	}
	if err := n.w.Unlock(ctx, "web", nil); err != nil {
		t.Fatalf("unlock whose request ended as it ran: %v", err)
	}
	if st, _ := lock.State(bg, c); st.Locked() {
		t.Fatalf("still locked: %+v", st)
	}
	if frozen, _ := fz.Frozen(bg, c); frozen {
		t.Fatal("still frozen")
	}
	if _, ok, _ := (watchdog.Journal{Dir: n.journal}).Get(c.ID); ok {
		t.Fatal("hold still journaled after the release")
	}
}

// TestReleaseOfAStoppedContainerIsGone: the unlock and thaw of a container whose
// process ended (stopped by its dump, exited: no network namespace, no freezer cgroup)
// answer node.ErrNotFound, which the agent counts as released (nothing is held, nothing
// to repeat), and its hold leaves the journal.
func TestReleaseOfAStoppedContainerIsGone(t *testing.T) {
	n := newFakeNode(t, "n1")
	c := n.add("web", 42)
	ctx := context.Background()
	until := time.Now().Add(time.Minute)
	if err := n.w.Lock(ctx, "web", nil, until); err != nil {
		t.Fatal(err)
	}
	if err := n.w.Freeze(ctx, "web", until); err != nil {
		t.Fatal(err)
	}
	stopped := c
	stopped.Pid = 0
	n.insp.Add(stopped, container.Spec{Name: "web", Image: "img"})
	if err := n.w.Thaw(ctx, "web"); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("thaw of a stopped container: %v, want node.ErrNotFound", err)
	}
	if err := n.w.Unlock(ctx, "web", nil); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("unlock of a stopped container: %v, want node.ErrNotFound", err)
	}
	if _, ok, _ := (watchdog.Journal{Dir: n.journal}).Get(c.ID); ok {
		t.Fatal("hold of a stopped container still journaled after its release")
	}
}
