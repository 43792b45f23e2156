package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/migrate"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/pipemax"
	"github.com/swarmckpt/swarmckpt/worker/restore"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

// TestMain doubles as the watchdog process: the worker re-executes this test binary
// with SWARMCKPT_TEST_WATCHDOG=<journal dir>, as `swarmckpt worker watchdog` does.
func TestMain(m *testing.M) {
	if dir := os.Getenv("SWARMCKPT_TEST_WATCHDOG"); dir != "" {
		rel := watchdog.Releaser{Lock: &netlock.NFT{}, Freeze: &freezer.Cgroup{}}
		if err := watchdog.Serve(context.Background(), rel, dir, 20*time.Millisecond); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if status := os.Getenv(connectHelperEnv); status != "" { // pending_task_test.go
		connectHelper(status)
	}
	code := m.Run()
	if binPath != "" { // the lab tests' binary and token (integration_test.go)
		_ = os.Remove(binPath)
		_ = os.Remove(binPath + ".token")
	}
	os.Exit(code)
}

// watchdogArgv re-executes this test binary as the watchdog (see TestMain).
func watchdogArgv(t *testing.T) []string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"/usr/bin/env", "SWARMCKPT_TEST_WATCHDOG={journal}", self}
}

type fakeNode struct {
	w        *worker.Worker
	insp     *container.Fake
	lock     *netlock.Fake
	freeze   *freezer.Fake
	restorer *restore.Fake
	pipes    *pipemax.Fake
	journal  string
}

func newFakeNode(t *testing.T, name string) *fakeNode {
	t.Helper()
	return newFakeNodeDumper(t, name, dump.Fake{})
}

func newFakeNodeDumper(t *testing.T, name string, dumper dump.Dumper) *fakeNode {
	t.Helper()
	return newFakeNodeConfig(t, name, dumper, nil)
}

// newFakeNodeConfig is newFakeNodeDumper with the config changed by edit (nil: none).
func newFakeNodeConfig(t *testing.T, name string, dumper dump.Dumper, edit func(*worker.Config)) *fakeNode {
	t.Helper()
	return newFakeNodeParts(t, name, dumper, edit, nil)
}

// newFakeNodeParts is newFakeNodeConfig with the parts changed by editParts (nil: none).
func newFakeNodeParts(t *testing.T, name string, dumper dump.Dumper, edit func(*worker.Config), editParts func(*worker.Parts)) *fakeNode {
	t.Helper()
	dir := t.TempDir()
	n := &fakeNode{insp: container.NewFake(), lock: netlock.NewFake(), freeze: freezer.NewFake(),
		restorer: restore.NewFake(filepath.Join(dir, "consumed"), "img"), journal: filepath.Join(dir, "journal"),
		pipes: pipemax.NewFake(512 << 10)}
	cfg := worker.DefaultConfig(name)
	cfg.DataRoot = filepath.Join(dir, "data")
	cfg.JournalDir = n.journal
	cfg.WatchdogArgv = watchdogArgv(t)
	if edit != nil {
		edit(&cfg)
	}
	parts := worker.Parts{Inspector: n.insp, Locker: n.lock, Freezer: n.freeze,
		Dumper: dumper, Restorer: n.restorer, Features: migrate.StaticFeatures{"uffd-noncoop": true}, Pipes: n.pipes}
	if editParts != nil {
		editParts(&parts)
	}
	w, err := worker.New(cfg, parts)
	if err != nil {
		t.Fatal(err)
	}
	n.w = w
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Close()
		os.RemoveAll(n.journal) // makes the watchdog process exit
	})
	return n
}

func (n *fakeNode) add(name string, pid int) container.Ref {
	ref := container.Ref{ID: strings.Repeat(name, 64/len(name)+1)[:64], Name: name, Pid: pid}
	n.insp.Add(ref, container.Spec{Name: name, Image: "img", Networks: []container.Network{{Name: "ov", IPv4: "10.9.0.2"}}})
	return ref
}

func TestLockFreezeAreJournaledUntilReleased(t *testing.T) {
	n := newFakeNode(t, "n1")
	ctx := context.Background()
	c := n.add("web", 42)
	j := watchdog.Journal{Dir: n.journal}
	deadline := time.Now().Add(time.Minute)
	if err := n.w.Lock(ctx, "web", []netip.Addr{netip.MustParseAddr("10.9.0.3")}, deadline); err != nil {
		t.Fatal(err)
	}
	if err := n.w.Freeze(ctx, "web", deadline); err != nil {
		t.Fatal(err)
	}
	h, ok, err := j.Get(c.ID)
	if err != nil || !ok || !h.Locked || !h.Frozen || h.Pid != 42 || !h.Deadline.Equal(deadline) {
		t.Fatalf("hold = %+v ok %v err %v", h, ok, err)
	}
	// The hold names this worker's process, so the watchdog releases it if it dies.
	if self, err := watchdog.Self(); err != nil || h.Owner == nil || *h.Owner != self {
		t.Fatalf("hold's owner = %v, want this process %v (%v)", h.Owner, self, err)
	}
	if !watchdog.Running(n.journal) {
		t.Fatal("no watchdog process holds the journal")
	}
	if err := n.w.Thaw(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := j.Get(c.ID); h.Frozen || !h.Locked {
		t.Fatalf("after thaw: %+v", h)
	}
	if err := n.w.Unlock(ctx, "web", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := j.Get(c.ID); ok {
		t.Fatal("hold still journaled after Thaw and Unlock")
	}
}

func TestDeadlineIsCapped(t *testing.T) {
	n := newFakeNode(t, "n1")
	c := n.add("web", 42)
	if err := n.w.Freeze(context.Background(), "web", time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	h, _, _ := watchdog.Journal{Dir: n.journal}.Get(c.ID)
	if time.Until(h.Deadline) > worker.DefaultConfig("x").MaxHold {
		t.Fatalf("deadline %v not capped", h.Deadline)
	}
}

func TestUnknownContainer(t *testing.T) {
	n := newFakeNode(t, "n1")
	err := n.w.Lock(context.Background(), "nope", nil, time.Now().Add(time.Second))
	if !errors.Is(err, container.ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
	if _, err := n.w.Dump(context.Background(), "nope", "s1", true); !errors.Is(err, container.ErrNotFound) {
		t.Fatalf("dump err = %v", err)
	}
}

// TestRestartReconcilesExpiredHolds: a worker that died left holds whose deadline passed
// while nothing ran; the next worker releases them on Start.
func TestRestartReconcilesExpiredHolds(t *testing.T) {
	dir := t.TempDir()
	journal := filepath.Join(dir, "journal")
	lock, frz := netlock.NewFake(), freezer.NewFake()
	ref := container.Ref{ID: strings.Repeat("a", 64), Name: "web", Pid: os.Getpid()}
	ctx := context.Background()
	_ = lock.Lock(ctx, ref, nil)
	_ = frz.Freeze(ctx, ref)
	j := watchdog.Journal{Dir: journal}
	if err := j.Put(watchdog.Hold{ContainerID: ref.ID, Name: "web", Pid: ref.Pid, Locked: true, Frozen: true, Deadline: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	cfg := worker.DefaultConfig("n1")
	cfg.DataRoot, cfg.JournalDir, cfg.WatchdogArgv = filepath.Join(dir, "data"), journal, watchdogArgv(t)
	w, err := worker.New(cfg, worker.Parts{Inspector: container.NewFake(), Locker: lock, Freezer: frz, Dumper: dump.Fake{},
		Owns: func(pid int, id string) bool { return pid == ref.Pid && id == ref.ID }})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); os.RemoveAll(journal) })
	if st, _ := lock.State(ctx, ref); st.Locked() {
		t.Fatal("still locked after restart")
	}
	if f, _ := frz.Frozen(ctx, ref); f {
		t.Fatal("still frozen after restart")
	}
	if _, ok, _ := j.Get(ref.ID); ok {
		t.Fatal("hold not removed")
	}
}

// TestRestartReleasesHoldsOfADeadWorker: a worker killed with -9 left holds an hour
// from their deadline; the next worker releases them on Start, not at the deadline.
// A hold of a worker process that still runs (another one on this journal) is kept.
func TestRestartReleasesHoldsOfADeadWorker(t *testing.T) {
	dir := t.TempDir()
	journal := filepath.Join(dir, "journal")
	lock, frz := netlock.NewFake(), freezer.NewFake()
	ctx := context.Background()
	dead := exec.Command("sleep", "600") // the previous worker
	if err := dead.Start(); err != nil {
		t.Fatal(err)
	}
	deadOwner, err := watchdog.OwnerOf(dead.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	_ = dead.Process.Kill()
	_ = dead.Wait()
	alive, err := watchdog.Self()
	if err != nil {
		t.Fatal(err)
	}
	j := watchdog.Journal{Dir: journal}
	orphan := container.Ref{ID: strings.Repeat("a", 64), Name: "web", Pid: 4242}
	kept := container.Ref{ID: strings.Repeat("b", 64), Name: "db", Pid: 4343}
	for _, h := range []struct {
		c     container.Ref
		owner watchdog.Owner
	}{{orphan, deadOwner}, {kept, alive}} {
		_ = lock.Lock(ctx, h.c, nil)
		_ = frz.Freeze(ctx, h.c)
		if err := j.Put(watchdog.Hold{ContainerID: h.c.ID, Name: h.c.Name, Pid: h.c.Pid, Locked: true, Frozen: true,
			Deadline: time.Now().Add(time.Hour), Owner: &h.owner}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := worker.DefaultConfig("n1")
	cfg.DataRoot, cfg.JournalDir, cfg.WatchdogArgv = filepath.Join(dir, "data"), journal, watchdogArgv(t)
	w, err := worker.New(cfg, worker.Parts{Inspector: container.NewFake(), Locker: lock, Freezer: frz, Dumper: dump.Fake{},
		Owns: func(pid int, id string) bool {
			return pid == orphan.Pid && id == orphan.ID || pid == kept.Pid && id == kept.ID
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); os.RemoveAll(journal) })
	if st, _ := lock.State(ctx, orphan); st.Locked() {
		t.Fatal("the dead worker's container is still locked after the restart")
	}
	if f, _ := frz.Frozen(ctx, orphan); f {
		t.Fatal("the dead worker's container is still frozen after the restart")
	}
	if _, ok, _ := j.Get(orphan.ID); ok {
		t.Fatal("the dead worker's hold was not removed")
	}
	st, _ := lock.State(ctx, kept)
	if f, _ := frz.Frozen(ctx, kept); !f || !st.Locked() {
		t.Fatal("the hold of a worker process that still runs was released")
	}
}

// TestPIDReuseGuard: a hold whose PID now belongs to another process is dropped without
// touching that process.
func TestPIDReuseGuard(t *testing.T) {
	ctx := context.Background()
	j := watchdog.Journal{Dir: t.TempDir()}
	lock := netlock.NewFake()
	ref := container.Ref{ID: strings.Repeat("b", 64), Pid: os.Getpid()} // our PID, not that container's
	_ = lock.Lock(ctx, ref, nil)
	_ = j.Put(watchdog.Hold{ContainerID: ref.ID, Pid: ref.Pid, Locked: true, Deadline: time.Now().Add(-time.Second)})
	released, err := watchdog.Releaser{Lock: lock, Freeze: freezer.NewFake()}.Reconcile(ctx, j, time.Now())
	if err != nil || len(released) != 0 {
		t.Fatalf("released %v %v", released, err)
	}
	if st, _ := lock.State(ctx, ref); !st.Locked() {
		t.Fatal("acted on a PID that does not belong to the container")
	}
	if _, ok, _ := j.Get(ref.ID); ok {
		t.Fatal("stale hold kept")
	}
}

func TestTransferAndRestore(t *testing.T) {
	a, b := newFakeNode(t, "a"), newFakeNode(t, "b")
	ctx := context.Background()
	a.add("web", 7)
	m, err := a.w.Dump(ctx, "web", "snap1.web", false)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := a.w.Send(ctx, "snap1.web", b.w.Addr()); err != nil || res.AlreadyThere {
		t.Fatalf("first send: %+v %v, want sent", res, err)
	}
	got, err := imageset.Verify(filepath.Join(b.w.SetsDir(), "snap1.web"))
	if err != nil || got.ContainerID != m.ContainerID {
		t.Fatalf("received set: %v %v", got, err)
	}
	// The target holds the very same files (as after a migration's DumpTo): the second
	// send sends nothing and succeeds.
	fi, _ := os.Stat(filepath.Join(b.w.SetsDir(), "snap1.web", imageset.ManifestName))
	// Through the HTTP API too, as the node agent calls it.
	ca := &worker.Client{Addr: a.w.Addr()}
	if res, err := ca.Send(ctx, "snap1.web", b.w.Addr()); err != nil || !res.AlreadyThere {
		t.Fatalf("second send of the same set: %+v %v, want nil and AlreadyThere", res, err)
	}
	if fj, err := os.Stat(filepath.Join(b.w.SetsDir(), "snap1.web", imageset.ManifestName)); err != nil || !os.SameFile(fi, fj) {
		t.Fatalf("second send replaced the target's set (%v)", err)
	}
	// Another set under the same id on the target: refused (409), nothing replaced.
	b.add("api", 8)
	if _, err := b.w.Dump(ctx, "api", "snap2.web", false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.w.Dump(ctx, "web", "snap2.web", true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.w.Send(ctx, "snap2.web", b.w.Addr()); err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("send onto another set of the same id: %v, want a 409 conflict", err)
	}
	ref, err := b.w.Restore(ctx, "snap1.web", worker.RestoreOptions{})
	if err != nil || ref.Name != "web" {
		t.Fatalf("restore: %+v %v", ref, err)
	}
	if _, err := b.w.Restore(ctx, "../x", worker.RestoreOptions{}); !errors.Is(err, worker.ErrBadSetID) {
		t.Fatalf("bad set id: %v", err)
	}
}

// Dump hardens the container's TCP stack (tcpharden) before CRIU reads its sockets.
func TestDumpHardensTCP(t *testing.T) {
	n := newFakeNode(t, "a")
	ctx := context.Background()
	c := n.add("web", 7)
	if _, err := n.w.Dump(ctx, "web", "s1", true); err != nil {
		t.Fatal(err)
	}
	if on, err := n.lock.Hardened(ctx, c); err != nil || !on {
		t.Fatalf("dumped container not hardened: %v %v", on, err)
	}
}

// Lock hardens the container's TCP stack before dropping anything (tcpharden).
func TestLockHardensTCP(t *testing.T) {
	n := newFakeNode(t, "a")
	ctx := context.Background()
	c := n.add("web", 7)
	if err := n.w.Lock(ctx, "web", nil, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if on, err := n.lock.Hardened(ctx, c); err != nil || !on {
		t.Fatalf("locked container not hardened: %v %v", on, err)
	}
}

func TestCorruptSetIsRefused(t *testing.T) {
	a, b := newFakeNode(t, "a"), newFakeNode(t, "b")
	ctx := context.Background()
	a.add("web", 7)
	if _, err := a.w.Dump(ctx, "web", "s", false); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(a.w.SetsDir(), "s", "images", "pages-1.img")
	time.Sleep(20 * time.Millisecond) // past the file system's timestamp granularity
	b0, _ := os.ReadFile(page)
	b0[0] ^= 0xff // same size, different content
	if err := os.WriteFile(page, b0, 0o600); err != nil {
		t.Fatal(err)
	}
	// In transit: the receiver refuses and keeps nothing.
	_, err := a.w.Send(ctx, "s", b.w.Addr())
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("send of a corrupt set: %v", err)
	}
	if entries, _ := os.ReadDir(b.w.SetsDir()); len(entries) != 0 {
		t.Fatalf("receiver kept %v", entries)
	}
	// Locally: restore verifies before anything else.
	if _, err := a.w.Restore(ctx, "s", worker.RestoreOptions{Name: "web2"}); !errors.Is(err, imageset.ErrChecksum) {
		t.Fatalf("restore of a corrupt set: %v", err)
	}
	if a.restorer.Exists("web2") {
		t.Fatal("restorer ran on a corrupt set")
	}
}

func TestInfoRefusesPreCopyWithReason(t *testing.T) {
	n := newFakeNode(t, "n1")
	ni, err := n.w.Info(context.Background())
	if err != nil || ni.PreCopy.OK || !strings.Contains(ni.PreCopy.Reason, "mem_dirty_track") || ni.Addr == "" {
		t.Fatalf("info %+v %v", ni, err)
	}
}

func TestHTTPClientIsAService(t *testing.T) {
	n := newFakeNode(t, "n1")
	n.add("web", 42)
	ctx := context.Background()
	s := &worker.Client{Addr: n.w.Addr()}
	if err := s.Lock(ctx, "web", nil, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st, _ := n.lock.State(ctx, container.Ref{ID: strings.Repeat("web", 22)[:64], Pid: 42}); !st.All {
		t.Fatalf("lock through the client did not lock: %+v", st)
	}
	if err := s.Unlock(ctx, "web", nil); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Dump(ctx, "web", "s1", true); err != nil || len(m.Files) == 0 {
		t.Fatalf("dump: %v %v", m, err)
	}
	err := s.Freeze(ctx, "ghost", time.Now().Add(time.Second))
	if !errors.Is(err, worker.ErrRemote) || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("remote error: %v", err)
	}
	if ni, err := s.Info(ctx); err != nil || ni.Node != "n1" {
		t.Fatalf("info %+v %v", ni, err)
	}
}

// TestLockedRestoreIsJournaledUntilUnlock: a locked restore journals the lock of the
// restored container (with its pid, for the watchdog) until Unlock; a failed one leaves
// nothing journaled.
func TestLockedRestoreIsJournaledUntilUnlock(t *testing.T) {
	a, b := newFakeNode(t, "a"), newFakeNode(t, "b")
	ctx := context.Background()
	a.add("web", 7)
	for _, set := range []string{"s1.web", "s2.web"} {
		if _, err := a.w.Dump(ctx, "web", set, true); err != nil {
			t.Fatal(err)
		}
		if _, err := a.w.Send(ctx, set, b.w.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	until := time.Now().Add(time.Minute)
	ref, err := b.w.Restore(ctx, "s1.web", worker.RestoreOptions{Name: "web-r", LockUntil: until})
	if err != nil {
		t.Fatal(err)
	}
	j := watchdog.Journal{Dir: b.journal}
	h, ok, err := j.Get(ref.ID)
	if err != nil || !ok || !h.Locked || h.Pid != ref.Pid || h.Pid == 0 || !h.Deadline.Equal(until) {
		t.Fatalf("hold of the restored container = %+v ok %v err %v (ref %+v)", h, ok, err, ref)
	}
	b.insp.Add(ref, container.Spec{Name: "web-r", Image: "img"})
	if err := b.w.Unlock(ctx, ref.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := j.Get(ref.ID); ok {
		t.Fatal("hold still journaled after Unlock")
	}
	// The runtime fails after the container was created: no hold may stay behind.
	a.restorer.FailStart = errors.New("criu failed")
	if _, err := a.w.Restore(ctx, "s2.web", worker.RestoreOptions{Name: "web-r2", LockUntil: until}); !errors.Is(err, restore.ErrRestore) {
		t.Fatalf("failing restore: %v, want ErrRestore", err)
	}
	if hs, _ := (watchdog.Journal{Dir: a.journal}).List(); len(hs) != 0 {
		t.Fatalf("holds left after a failed locked restore: %+v", hs)
	}
}

// TestDropSet: DropSet deletes a set directly and through the HTTP client, is idempotent,
// and refuses IDs that would escape the sets directory.
func TestDropSet(t *testing.T) {
	n := newFakeNode(t, "n1")
	n.add("web", 7)
	ctx := context.Background()
	outside := filepath.Join(filepath.Dir(n.w.SetsDir()), "keep")
	if err := os.MkdirAll(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, s := range []worker.Roles{n.w.Roles(), (&worker.Client{Addr: n.w.Addr()}).Roles()} {
		if _, err := s.Dumper.Dump(ctx, "web", "snap1.web", true); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(n.w.SetsDir(), "snap1.web")
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("set not written: %v", err)
		}
		if err := s.Sets.DropSet(ctx, "snap1.web"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("set still there after DropSet: %v", err)
		}
		if err := s.Sets.DropSet(ctx, "snap1.web"); err != nil {
			t.Fatalf("second DropSet of the same set: %v, want nil (idempotent)", err)
		}
		for _, bad := range []string{"..", "../keep", ".", ""} {
			if err := s.Sets.DropSet(ctx, bad); err == nil {
				t.Fatalf("DropSet(%q) succeeded", bad)
			}
		}
		if _, err := os.Stat(outside); err != nil {
			t.Fatalf("DropSet removed a directory outside the sets dir: %v", err)
		}
	}
	if err := n.w.DropSet(ctx, "../keep"); !errors.Is(err, worker.ErrBadSetID) {
		t.Fatalf("DropSet(../keep) = %v, want ErrBadSetID", err)
	}
}

// TestRemoveContainerUndoesARestore: RemoveContainer removes a restored container
// (directly and through the HTTP client), drops its journaled lock, frees its name,
// and succeeds for a container that is gone.
func TestRemoveContainerUndoesARestore(t *testing.T) {
	n := newFakeNode(t, "n1")
	n.add("web", 7)
	ctx := context.Background()
	for i, s := range []worker.Roles{n.w.Roles(), (&worker.Client{Addr: n.w.Addr()}).Roles()} {
		set := fmt.Sprintf("s%d.web", i)
		if _, err := s.Dumper.Dump(ctx, "web", set, true); err != nil {
			t.Fatal(err)
		}
		ref, err := s.Restorer.Restore(ctx, set, worker.RestoreOptions{Name: "web-r", LockUntil: time.Now().Add(time.Minute)})
		if err != nil || !n.restorer.Exists("web-r") {
			t.Fatalf("restore: %+v %v", ref, err)
		}
		j := watchdog.Journal{Dir: n.journal}
		if _, ok, _ := j.Get(ref.ID); !ok {
			t.Fatal("locked restore journaled no hold")
		}
		if err := s.Restorer.RemoveContainer(ctx, ref.ID); err != nil {
			t.Fatal(err)
		}
		if n.restorer.Exists("web-r") {
			t.Fatal("container still there after RemoveContainer")
		}
		if _, ok, _ := j.Get(ref.ID); ok {
			t.Fatal("hold still journaled after RemoveContainer")
		}
		if err := s.Restorer.RemoveContainer(ctx, ref.ID); err != nil {
			t.Fatalf("second RemoveContainer: %v, want nil (idempotent)", err)
		}
	}
}

// RecheckSockets (a commit's verify) accepts a set dumped here by its files' stamps,
// and re-hashes one whose file changed since: the change is found.
func TestRecheckSocketsRehashesAChangedSet(t *testing.T) {
	a := newFakeNode(t, "a")
	ctx := context.Background()
	a.add("web", 7)
	if _, err := a.w.Dump(ctx, "web", "s", false); err != nil {
		t.Fatal(err)
	}
	_, werr := a.w.Sockets(ctx, "s", "web.1")
	if _, err := a.w.RecheckSockets(ctx, "s", "web.1"); (err == nil) != (werr == nil) || errors.Is(err, imageset.ErrChecksum) {
		t.Fatalf("recheck of an intact set: %v (Sockets: %v)", err, werr)
	}
	page := filepath.Join(a.w.SetsDir(), "s", "images", "pages-1.img")
	time.Sleep(20 * time.Millisecond) // past the file system's timestamp granularity
	b0, _ := os.ReadFile(page)
	b0[0] ^= 0xff // same size, different content
	if err := os.WriteFile(page, b0, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.w.RecheckSockets(ctx, "s", "web.1"); !errors.Is(err, imageset.ErrChecksum) {
		t.Fatalf("recheck of a set changed since its dump: %v, want imageset.ErrChecksum", err)
	}
	if _, err := a.w.RecheckSockets(ctx, "nosuch", "web.1"); !errors.Is(err, worker.ErrNoSet) {
		t.Fatalf("recheck of a missing set: %v, want worker.ErrNoSet", err)
	}
}
