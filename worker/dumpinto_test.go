package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

// killRecorder is the fake dumper recording which containers DumpInto ended.
type killRecorder struct {
	dump.Fake
	mu     sync.Mutex
	killed []string
}

func (k *killRecorder) Kill(_ context.Context, c container.Ref) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.killed = append(k.killed, c.Name)
	return nil
}

func (k *killRecorder) names() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return strings.Join(k.killed, ",")
}

// released fails unless c on n is neither frozen nor locked and nothing is journaled.
func released(t *testing.T, n *fakeNode, c container.Ref) {
	t.Helper()
	ctx := context.Background()
	if f, _ := n.freeze.Frozen(ctx, c); f {
		t.Errorf("%s left frozen", c.Name)
	}
	if st, _ := n.lock.State(ctx, c); st.Locked() {
		t.Errorf("%s left locked: %+v", c.Name, st)
	}
	if hs, _ := (watchdog.Journal{Dir: n.journal}).List(); len(hs) != 0 {
		t.Errorf("holds left in the journal: %+v", hs)
	}
}

// emptySets fails unless n's sets directory is (or becomes, within 5 s) empty.
func emptySets(t *testing.T, n *fakeNode) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		entries, _ := os.ReadDir(n.w.SetsDir())
		if len(entries) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s kept %v", n.w.SetsDir(), entries)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDumpIntoMovesThePagesStraightToTheTarget(t *testing.T) {
	k := &killRecorder{}
	a, b := newFakeNodeDumper(t, "a", k), newFakeNode(t, "b")
	ctx := context.Background()
	web, api := a.add("web", 7), a.add("api", 8)
	for i, s := range []worker.Dumper{a.w, &worker.Client{Addr: a.w.Addr()}} {
		c := []container.Ref{web, api}[i]
		if _, err := s.DumpInto(ctx, c.Name, "mig."+c.Name, b.w.Addr()); err != nil {
			t.Fatal(err)
		}
		// The pages are hashed after the restore (Config.PageDigests): verified after that.
		if err := b.w.AwaitDigests(ctx, "mig."+c.Name); err != nil {
			t.Fatal(err)
		}
		got, err := imageset.Verify(filepath.Join(b.w.SetsDir(), "mig."+c.Name))
		if err != nil {
			t.Fatalf("received set: %v", err)
		}
		if got.PagesReceivedBy != "b" || got.LeaveRunning || got.ContainerID != c.ID {
			t.Fatalf("received manifest: %+v", got)
		}
		for _, name := range []string{"pages-1.img", "pagemap-1.img", "inventory.img"} {
			if _, ok := got.Lookup(name); !ok {
				t.Fatalf("received set lacks %s: %+v", name, got.Files)
			}
		}
		if _, err := os.Stat(filepath.Join(a.w.SetsDir(), "mig."+c.Name)); !os.IsNotExist(err) {
			t.Fatalf("source kept a set without pages: %v", err)
		}
		released(t, a, c)
		ref, err := b.w.Restore(ctx, "mig."+c.Name, worker.RestoreOptions{})
		if err != nil || ref.Name != c.Name {
			t.Fatalf("restore of the set: %+v %v", ref, err)
		}
		if err := b.w.RemoveContainer(ctx, c.Name); err != nil {
			t.Fatal(err)
		}
	}
	if got := k.names(); got != "web,api" {
		t.Fatalf("killed %q, want web,api once each", got)
	}
	emptySets(t, b)
}

func TestDumpIntoRefusedLeavesTheContainerRunning(t *testing.T) {
	k := &killRecorder{}
	a, b := newFakeNodeDumper(t, "a", k), newFakeNode(t, "b")
	web := a.add("web", 7)
	if err := os.MkdirAll(filepath.Join(b.w.SetsDir(), "mig.web"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := a.w.DumpInto(context.Background(), "web", "mig.web", b.w.Addr())
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "nothing was done") {
		t.Fatalf("DumpInto onto an existing set: %v, want a 409 before anything was done", err)
	}
	if k.names() != "" {
		t.Fatalf("killed %q after a refusal", k.names())
	}
	released(t, a, web)
}

// failingInto fails the dump as CRIU does on an exited container, without sending pages.
type failingInto struct{ killRecorder }

func (*failingInto) Dump(_ context.Context, c container.Ref, _ container.Spec, _ string, _ dump.Options) (*imageset.Manifest, error) {
	return nil, errors.New("dump " + c.Name + ": " + dump.ErrCRIU.Error() + ": container exited")
}

func TestDumpIntoFailedDumpThawsAndLeavesNothing(t *testing.T) {
	d := &failingInto{}
	a, b := newFakeNodeDumper(t, "a", d), newFakeNode(t, "b")
	web := a.add("web", 7)
	_, err := a.w.DumpInto(context.Background(), "web", "mig.web", b.w.Addr())
	if err == nil || !strings.Contains(err.Error(), "keeps running here") {
		t.Fatalf("DumpInto whose dump fails: %v", err)
	}
	if d.names() != "" {
		t.Fatalf("killed %q after a failed dump", d.names())
	}
	released(t, a, web)
	emptySets(t, a)
	emptySets(t, b) // the page server stops waiting once the stream was cut
}

// brokenPageServer receives the pages but reports a failure, as CRIU does on a full disk.
type brokenPageServer struct{ dump.Fake }

func (b brokenPageServer) PageServer(ctx context.Context, conn *os.File, images, log string) error {
	_ = b.Fake.PageServer(ctx, conn, images, log)
	return errors.New("criu page-server: No space left on device")
}

// TestDumpIntoTargetFailureThawsAndLeavesNothing: the source is killed only once the
// target holds the whole set on disk; a target whose page server fails, or which
// cannot sync the set it received, leaves the container running here.
func TestDumpIntoTargetFailureThawsAndLeavesNothing(t *testing.T) {
	for _, c := range []struct {
		name   string
		target func(t *testing.T) *fakeNode
		want   string
	}{
		{"PageServerFails", func(t *testing.T) *fakeNode { return newFakeNodeDumper(t, "b", brokenPageServer{}) }, "No space left"},
		{"SetCannotBeSynced", func(t *testing.T) *fakeNode {
			return newFakeNodeParts(t, "b", dump.Fake{}, nil, withSync(&syncs{fail: "mig.web"}))
		}, "disk full or failing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := &killRecorder{}
			a, b := newFakeNodeDumper(t, "a", k), c.target(t)
			web := a.add("web", 7)
			_, err := a.w.DumpInto(context.Background(), "web", "mig.web", b.w.Addr())
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "keeps running here") {
				t.Fatalf("DumpInto whose target fails: %v, want %q and the container kept", err, c.want)
			}
			if k.names() != "" {
				t.Fatalf("killed %q although the target failed", k.names())
			}
			released(t, a, web)
			emptySets(t, a)
			emptySets(t, b)
		})
	}
}

// TestPageServerTakesOnlyTheAskingHost: the one-shot page server closes a connection
// from any host but the one that asked for it, and serves that host's.
func TestPageServerTakesOnlyTheAskingHost(t *testing.T) {
	b := newFakeNode(t, "b")
	asker := netip.MustParseAddr("127.0.0.9")
	addr, err := b.w.ReceivePages("mig.web", asker, "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := net.Dial("tcp", addr) // from 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	_ = other.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := other.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("connection from another host: read %d, %v; want it closed (EOF)", n, err)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: asker.AsSlice()}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(c, "pages-1.img 5\nhello"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	got := filepath.Join(b.w.SetsDir(), ".pages-mig.web", "images", "pages-1.img")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, err := os.ReadFile(got); err == nil && string(b) == "hello" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the asking host's pages never reached %s", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRestartRemovesStalePages: the page directory of a transfer that a killed worker
// left is removed when a worker starts again (no page server outlives its worker).
func TestRestartRemovesStalePages(t *testing.T) {
	b := newFakeNode(t, "b")
	stale := filepath.Join(b.w.SetsDir(), ".pages-mig.web", "images")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "pages-1.img"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.w.Close()
	if err := b.w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(stale)); !os.IsNotExist(err) {
		t.Fatalf("stale page directory after a restart: %v", err)
	}
}

// TestRestartRemovesPartialIncomingSets: a worker killed while it received a set (a
// migration streaming to it) left <sets>/.incoming-<id>; the next start removes it and
// keeps the complete sets.
func TestRestartRemovesPartialIncomingSets(t *testing.T) {
	b := newFakeNode(t, "b")
	partial := filepath.Join(b.w.SetsDir(), ".incoming-mig.web", "images")
	complete := filepath.Join(b.w.SetsDir(), "snap.db", "images")
	for _, d := range []string{partial, complete} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "pages-1.img"), []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b.w.Close()
	if err := b.w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(partial)); !os.IsNotExist(err) {
		t.Fatalf("partial incoming set after a restart: %v", err)
	}
	if _, err := os.Stat(complete); err != nil {
		t.Fatalf("a complete set was removed with the partial one: %v", err)
	}
}

// slowInto is a dump that takes longer than the worker's --max-hold, recording the
// deadline journaled for the container just before it ends.
type slowInto struct {
	killRecorder
	journal string
	took    time.Duration
	seen    time.Time
}

func (s *slowInto) Dump(ctx context.Context, c container.Ref, spec container.Spec, set string, opts dump.Options) (*imageset.Manifest, error) {
	time.Sleep(s.took) // the work of a large dump: what is measured is the journal after it
	if h, ok, _ := (watchdog.Journal{Dir: s.journal}).Get(c.ID); ok {
		s.seen = h.Deadline
	}
	return s.Fake.Dump(ctx, c, spec, set, opts)
}

// TestDumpIntoRenewsItsHoldsWhileItRuns: a transfer longer than --max-hold keeps the
// container's hold in the journal ahead of now (renewed), so the watchdog does not
// thaw it mid-dump, while a worker that dies stops renewing it.
func TestDumpIntoRenewsItsHoldsWhileItRuns(t *testing.T) {
	d := &slowInto{took: 900 * time.Millisecond}
	a := newFakeNodeConfig(t, "a", d, func(c *worker.Config) { c.MaxHold = 300 * time.Millisecond })
	d.journal = a.journal
	b := newFakeNode(t, "b")
	web := a.add("web", 7)
	start := time.Now()
	if _, err := a.w.DumpInto(context.Background(), "web", "mig.web", b.w.Addr()); err != nil {
		t.Fatal(err)
	}
	if d.seen.IsZero() {
		t.Fatal("no hold journaled during the dump")
	}
	if !d.seen.After(start.Add(d.took)) {
		t.Fatalf("hold deadline %v at the end of a %v dump that began %v: not renewed past --max-hold (300ms)",
			d.seen.Sub(start), d.took, start.Format(time.StampMilli))
	}
	released(t, a, web)
}

// TestRestartPrunesOldFailedLogs: a starting worker removes the CRIU logs of failed
// dumps and restores older than a week whose set is gone; newer ones, and those whose
// set is still there, stay (they are named in the failures' errors).
func TestRestartPrunesOldFailedLogs(t *testing.T) {
	b := newFakeNode(t, "b")
	dir := b.w.SetsDir()
	old := time.Now().Add(-8 * 24 * time.Hour)
	write := func(name string, mtime time.Time) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("Error (criu/...)"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.MkdirAll(filepath.Join(dir, "kept.db", "images"), 0o700); err != nil {
		t.Fatal(err)
	}
	gone := []string{write("aborted.db.failed-dump.log", old), write("restored.db.failed-restore.log", old)}
	stay := []string{write("recent.db.failed-dump.log", time.Now()), write("kept.db.failed-restore.log", old)}
	b.w.Close()
	if err := b.w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, p := range gone {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: an old failed log without its set is still there (%v)", filepath.Base(p), err)
		}
	}
	for _, p := range stay {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
}

// TestDumpIntoHeldLeavesTheContainerAsHeld: DumpWith with Into and LeaveRunning (a
// direct migration's dump of a container its agent parked) moves the pages straight
// to the target as DumpInto does, keeps no set here, and leaves the container frozen
// and locked as its caller holds it, neither killed nor thawed, on success and on a
// failure of the target (which then keeps nothing).
func TestDumpIntoHeldLeavesTheContainerAsHeld(t *testing.T) {
	ctx := context.Background()
	held := func(t *testing.T, n *fakeNode, c container.Ref) {
		t.Helper()
		if f, _ := n.freeze.Frozen(ctx, c); !f {
			t.Errorf("%s thawed by a held dump", c.Name)
		}
		if st, _ := n.lock.State(ctx, c); !st.Locked() {
			t.Errorf("%s unlocked by a held dump", c.Name)
		}
	}
	hold := func(t *testing.T, n *fakeNode, c container.Ref) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		if err := n.w.Lock(ctx, c.ID, nil, deadline); err != nil {
			t.Fatal(err)
		}
		if err := n.w.Freeze(ctx, c.ID, deadline); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("Moved", func(t *testing.T) {
		k := &killRecorder{}
		a, b := newFakeNodeDumper(t, "a", k), newFakeNode(t, "b")
		web, api := a.add("web", 7), a.add("api", 8)
		for i, s := range []worker.Dumper{a.w, &worker.Client{Addr: a.w.Addr()}} {
			c := []container.Ref{web, api}[i]
			hold(t, a, c)
			m, err := s.DumpWith(ctx, c.Name, "mig."+c.Name, worker.DumpOptions{LeaveRunning: true, Into: b.w.Addr()})
			if err != nil {
				t.Fatal(err)
			}
			// The manifest returned is the target's: with the pages as received, their
			// digests pending (the target hashes them after the restore, by default),
			// so that the snapshot's record marks them so (PagesPending).
			if f, ok := m.Lookup("pages-1.img"); !ok || f.SHA256 != "" || f.Size == 0 || !m.PagesUnhashed {
				t.Fatalf("returned manifest %+v (unhashed %v), want the pages the target received, their digests pending", m.Files, m.PagesUnhashed)
			}
			if err := b.w.AwaitDigests(ctx, "mig."+c.Name); err != nil {
				t.Fatal(err)
			}
			got, err := imageset.Verify(filepath.Join(b.w.SetsDir(), "mig."+c.Name))
			if err != nil {
				t.Fatalf("received set once hashed: %v", err)
			}
			if got.PagesReceivedBy != "b" || got.ContainerID != c.ID {
				t.Fatalf("received manifest: %+v", got)
			}
			if _, err := os.Stat(filepath.Join(a.w.SetsDir(), "mig."+c.Name)); !os.IsNotExist(err) {
				t.Fatalf("source kept a set without pages: %v", err)
			}
			held(t, a, c)
		}
		if got := k.names(); got != "" {
			t.Fatalf("a held dump killed %q", got)
		}
	})
	t.Run("TargetFails", func(t *testing.T) {
		k := &killRecorder{}
		a, b := newFakeNodeDumper(t, "a", k), newFakeNodeDumper(t, "b", brokenPageServer{})
		web := a.add("web", 7)
		hold(t, a, web)
		_, err := a.w.DumpWith(ctx, "web", "mig.web", worker.DumpOptions{LeaveRunning: true, Into: b.w.Addr()})
		if err == nil || !strings.Contains(err.Error(), "No space left") || !strings.Contains(err.Error(), "the target keeps nothing") {
			t.Fatalf("held DumpInto whose target fails: %v", err)
		}
		if k.names() != "" {
			t.Fatalf("killed %q although the target failed", k.names())
		}
		held(t, a, web)
		emptySets(t, a)
		emptySets(t, b)
	})
}
