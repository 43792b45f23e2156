package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/registry"
	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
)

// lookup finds algorithms by name as the binaries do.
func lookup(name string) (algorithms.Algorithm, error) { return registry.Lookup(name) }

// A restarted agent finds the records its predecessor (killed with -9) persisted and
// releases those containers at once, without waiting for any deadline.
func TestRestartedAgentReleasesWhatItsPredecessorHeld(t *testing.T) {
	dir := t.TempDir()
	rec := algorithms.ContainerRecord{Epoch: 3, Snapshot: "snap-3"}.Encode()
	if err := os.MkdirAll(filepath.Join(dir, "blocking"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blocking", "ctr1.rec"), rec, 0o600); err != nil {
		t.Fatal(err)
	}
	ex := worker.NewFake("n1")
	ex.Hold("ctr1")
	restartUntilReleased(t, ex, bus.NewNetwork().Connect(), dir)
	deadline := time.Now().Add(5 * time.Second)
	// Released: the record goes, so that the next restart does not release it again.
	for {
		if _, err := os.Stat(filepath.Join(dir, "blocking", "ctr1.rec")); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the record of a released container is still there")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A restarted agent removes records older than RecordTTL unread: it does not try to
// release containers of snapshots that ended long ago (a node that took many
// snapshots had a restarted agent retry ~30 unlocks of containers long gone).
func TestRestartedAgentPrunesStaleRecords(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "blocking"), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(c string, age time.Duration) string {
		p := filepath.Join(dir, "blocking", c+".rec")
		if err := os.WriteFile(p, algorithms.ContainerRecord{Epoch: 3, Snapshot: "snap-3"}.Encode(), 0o600); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-age)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := write("old", time.Hour)
	recent := write("recent", time.Second)
	ex := worker.NewFake("n1")
	ex.Hold("old")    // held by someone else now: must not be touched by a stale record
	ex.Hold("recent") // held by the killed predecessor
	a, err := agent.New(agent.Config{Node: "n1", Bus: bus.NewNetwork().Connect(), Worker: ex.Roles(), Algorithms: lookup,
		StateDir: dir, RecordTTL: 10 * time.Minute, TickPeriod: 10 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, errRecent := os.Stat(recent)
		if len(ex.Held()) == 2 && os.IsNotExist(errRecent) { // old's lock and freeze
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("held %v, recent record: %v; want only old's holds and the recent record gone", ex.Held(), errRecent)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, h := range ex.Held() {
		if h != "locked:old" && h != "frozen:old" {
			t.Fatalf("held %v: want old's lock and freeze only", ex.Held())
		}
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("stale record still there: %v", err)
	}
}

// goneHolder is a Holder whose container gone no longer exists: its release is
// refused with node.ErrNotFound, as the worker refuses it.
type goneHolder struct {
	worker.Holder
	gone string
}

func (g goneHolder) Thaw(ctx context.Context, name string) error {
	if name == g.gone {
		return node.Mark(errors.New("container "+name+": not found on this node"), node.ErrNotFound)
	}
	return g.Holder.Thaw(ctx, name)
}

func (g goneHolder) Unlock(ctx context.Context, name string, peers []netip.Addr) error {
	if name == g.gone {
		return node.Mark(errors.New("container "+name+": not found on this node"), node.ErrNotFound)
	}
	return g.Holder.Unlock(ctx, name, peers)
}

// A restarted agent's record of a container that no longer exists (moved or restored
// again since) counts as released: nothing of it is held, so the record goes and the
// next restart does not try again (issue 21: stale records piled up, each restart
// retrying their unlocks in vain).
func TestRestartedAgentDropsTheRecordOfAGoneContainer(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "blocking"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "blocking", "gone.rec")
	if err := os.WriteFile(p, algorithms.ContainerRecord{Epoch: 3, Snapshot: "snap-3"}.Encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	roles := worker.NewFake("n1").Roles()
	roles.Holder = goneHolder{Holder: roles.Holder, gone: "gone"}
	a, err := agent.New(agent.Config{Node: "n1", Bus: bus.NewNetwork().Connect(), Worker: roles, Algorithms: lookup,
		StateDir: dir, TickPeriod: 10 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the record of a container that no longer exists is still there 5 s after the restart")
		}
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := agent.New(agent.Config{}); err == nil {
		t.Fatal("empty config accepted")
	}
	if _, err := agent.New(agent.Config{Node: "a.b", Bus: bus.NewNetwork().Connect(), Worker: worker.NewFake("x").Roles(), Algorithms: lookup}); err == nil {
		t.Fatal("node name with a dot accepted (it is a subject token)")
	}
}

// The holds subject answers with what the node's executor holds.
func TestHoldsSubjectListsHeldContainers(t *testing.T) {
	ex := worker.NewFake("n1")
	ex.Hold("ctr1")
	conn := bus.NewNetwork().Connect()
	a, err := agent.New(agent.Config{Node: "n1", Bus: conn, Worker: ex.Roles(), Algorithms: lookup,
		TickPeriod: 10 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var rep node.HoldsReply
	deadline := time.Now().Add(5 * time.Second)
	for {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		out, err := conn.Request(rctx, node.HoldsSubject("n1"), []byte("{}"))
		rcancel()
		if err == nil {
			if err := json.Unmarshal(out, &rep); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer on %s: %v", node.HoldsSubject("n1"), err)
		}
		time.Sleep(10 * time.Millisecond) // the agent subscribes as it starts
	}
	if rep.Error != "" || rep.Node != "n1" || len(rep.Holds) != 1 {
		t.Fatalf("reply %+v, want ctr1 held on n1", rep)
	}
	if h := rep.Holds[0]; h.ContainerID != "ctr1" || !h.Locked || !h.Frozen || !h.OwnerAlive {
		t.Fatalf("hold %+v, want ctr1 locked and frozen", h)
	}
}

// busyHolder refuses the release of container c with an error that is not
// node.ErrNotFound until gone is closed (a put-back is stopping c), and with
// node.ErrNotFound after (the put-back removed it).
type busyHolder struct {
	worker.Holder
	c       string
	gone    chan struct{}
	refused chan struct{} // closed at the first refusal
	once    *sync.Once
}

func (b busyHolder) release(name string, next func() error) error {
	if name != b.c {
		return next()
	}
	select {
	case <-b.gone:
		return node.Mark(errors.New("container "+name+": not found on this node"), node.ErrNotFound)
	default:
		b.once.Do(func() { close(b.refused) })
		return errors.New("container " + name + " is being stopped")
	}
}

func (b busyHolder) Thaw(ctx context.Context, name string) error {
	return b.release(name, func() error { return b.Holder.Thaw(ctx, name) })
}

func (b busyHolder) Unlock(ctx context.Context, name string, peers []netip.Addr) error {
	return b.release(name, func() error { return b.Holder.Unlock(ctx, name, peers) })
}

// A restarted agent whose release of a predecessor's container fails for a reason
// other than the container being gone tries again until it is released or gone, and
// then removes the record (issue 21, fault seed 109: the records stayed until the
// agent's next restart).
func TestRestartedAgentRetriesAFailedRelease(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "blocking"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "blocking", "busy.rec")
	if err := os.WriteFile(p, algorithms.ContainerRecord{Epoch: 3, Snapshot: "snap-3"}.Encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	roles := worker.NewFake("n1").Roles()
	b := busyHolder{Holder: roles.Holder, c: "busy", gone: make(chan struct{}), refused: make(chan struct{}), once: &sync.Once{}}
	roles.Holder = b
	a, err := agent.New(agent.Config{Node: "n1", Bus: bus.NewNetwork().Connect(), Worker: roles, Algorithms: lookup,
		StateDir: dir, ReleaseRetry: 20 * time.Millisecond, TickPeriod: 10 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-b.refused:
	case <-time.After(5 * time.Second):
		t.Fatal("the restarted agent never tried to release its predecessor's container")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the record went although the release failed: %v", err)
	}
	close(b.gone)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the record of a container whose release failed once is still there 5 s after the container went")
		}
	}
}

// restartUntilReleased starts an agent of node n1 over ex on b with the records a
// previous agent left in dir (it runs until the test ends), and waits until it has
// released everything ex holds (at most 5 s).
func restartUntilReleased(t *testing.T, ex *worker.Fake, b bus.Transport, dir string) {
	t.Helper()
	a, err := agent.New(agent.Config{Node: "n1", Bus: b, Worker: ex.Roles(), Algorithms: lookup,
		StateDir: dir, TickPeriod: 10 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(5 * time.Second)
	for len(ex.Held()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still held after restart: %v", ex.Held())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
