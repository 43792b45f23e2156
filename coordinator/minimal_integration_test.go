package coordinator_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/deploy/lab"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/activity"
)

// minimalReusesIdle: minimal on a real stack (issue 17, "Minimal must be minimal on
// real stacks"). The idle stack (testdata/idle.yml) has an idle container beside a
// busy echo pair. After a first minimal snapshot, a next one must not dump the idle
// container again: its manifest entry points at the first snapshot's image set, while
// the echo pair dumps afresh, and the cut still verifies from the images. rm of the
// first snapshot keeps the set the second reuses, which still verifies and restores. A
// container that ran (CPU time, no traffic) is dumped again. An idle Go process still wakes up
// now and then (its runtime's forced GC every 2 minutes), which counts as a change: up
// to three snapshots are taken to see one reuse.
func (e *e2e) minimalReusesIdle(t *testing.T) {
	e.t = t
	images, _ := lab.ImageDirForTests()
	if out, code := e.run(3*time.Minute, "lab", "deploy", "--name", e.name, "--images", images,
		filepath.Join(repoRoot(), "coordinator", "testdata", "idle.yml"), "idle"); code != 0 {
		t.Fatalf("lab deploy idle: %s", out)
	}
	t.Cleanup(func() {
		_, _ = e.dockerOn(e.node(1), "stack", "rm", "idle")
		for _, s := range []string{"idle_idle", "idle_server", "idle_client"} {
			for n, ids := range e.restoredOf(s, true) {
				_, _ = e.dockerOn(n, append([]string{"rm", "-f"}, ids...)...)
			}
		}
	})
	waitLong(t, "idle stack's echo client healthy", func() bool {
		for i := 1; i <= 3; i++ {
			if st, ok := e.echoStatus(e.node(i), "idle_client"); ok && st["healthy"] == true {
				return true
			}
		}
		return false
	})
	snap := func(id string) *store.Manifest {
		t.Helper()
		if out, code := e.ctl(2*time.Minute, "snapshot", "idle", "--id", id, "--algorithm", "minimal"); code != 0 {
			t.Fatalf("snapshot %s: exit %d\n%s", id, code, out)
		}
		return e.manifest(id)
	}
	byService := func(m *store.Manifest) map[string]store.Container {
		out := map[string]store.Container{}
		for _, c := range m.Containers {
			out[c.Service] = c
		}
		return out
	}
	first := snap("idle-min-0")
	e.perConnectionCounters(t, byService(first))
	var prev, reused *store.Manifest = first, nil
	for i := 1; i <= 3 && reused == nil; i++ {
		m := snap(fmt.Sprintf("idle-min-%d", i))
		cs, pcs := byService(m), byService(prev)
		idle := cs["idle_idle"]
		if got := filepath.Base(idle.Images.Dir); got == filepath.Base(pcs["idle_idle"].Images.Dir) {
			reused = m
		} else {
			t.Logf("%s: the idle container dumped afresh (%s): it ran since %s", m.ID, got, prev.ID)
		}
		for _, s := range []string{"idle_server", "idle_client"} {
			if want := node.SetID(m.ID, cs[s].Key()); filepath.Base(cs[s].Images.Dir) != want {
				t.Errorf("%s: busy %s reused %s, want a fresh set %s", m.ID, s, cs[s].Images.Dir, want)
			}
		}
		prev = m
	}
	if reused == nil {
		t.Fatalf("no minimal snapshot of the idle stack reused the idle container's images (3 tries)")
	}
	vout, code := e.ctl(time.Minute, "inspect", reused.ID, "--verify")
	if code != 0 || !strings.Contains(vout, "cut check: consistent") {
		t.Fatalf("inspect --verify %s: exit %d\n%s", reused.ID, code, vout)
	}
	// What the reuse saved: the idle container's images and dump time.
	fresh := byService(first)["idle_idle"]
	again := byService(reused)["idle_idle"]
	var total, totalFresh int64
	for _, c := range reused.Containers {
		if filepath.Base(c.Images.Dir) == node.SetID(reused.ID, c.Key()) {
			total += c.Images.Bytes()
		}
	}
	for _, c := range first.Containers {
		totalFresh += c.Images.Bytes()
	}
	t.Logf("BENCH minimal_reuse stack=idle containers=%d idle_reused_bytes=%d idle_dump_ms_fresh=%d idle_ms_reused=%d written_bytes=%d written_bytes_first=%d snapshot_ms=%d snapshot_ms_first=%d",
		len(reused.Containers), fresh.Images.Bytes(), fresh.DumpMS, again.DumpMS, total, totalFresh, reused.TotalMS, first.TotalMS)

	// rm of the snapshot whose set is reused keeps it: the reusing snapshot still verifies.
	owner := strings.TrimSuffix(filepath.Base(again.Images.Dir), "."+again.Key())
	out, code := e.ctl(time.Minute, "rm", owner)
	if code != 0 || !strings.Contains(out, "a later snapshot reuses it") {
		t.Fatalf("rm %s: exit %d, want the reused set kept\n%s", owner, code, out)
	}
	vout, code = e.ctl(time.Minute, "inspect", reused.ID, "--verify")
	if code != 0 || !strings.Contains(vout, "cut check: consistent") {
		t.Fatalf("inspect --verify %s after rm %s: exit %d\n%s", reused.ID, owner, code, vout)
	}
	// A container that ran, without a byte on its network (a process exec'd in it asks
	// its server over loopback), is dumped afresh: CPU time counts as a change.
	idle := byService(reused)["idle_idle"]
	if out, err := e.dockerOn(idle.Node, "exec", idle.ContainerID, "/memhog", "get", "/stats"); err != nil {
		t.Fatalf("exec in the idle container: %v: %s", err, out)
	}
	ran := snap("idle-min-ran")
	if got, want := filepath.Base(byService(ran)["idle_idle"].Images.Dir), node.SetID(ran.ID, idle.Key()); got != want {
		t.Errorf("%s: the idle container that ran has its images in %s, want a fresh set %s", ran.ID, got, want)
	}
	// ... and the reusing snapshot restores, the idle container from the reused set.
	if out, code := e.ctl(5*time.Minute, "restore", reused.ID); code != 0 {
		t.Fatalf("restore %s: exit %d\n%s", reused.ID, code, out)
	}
	for _, s := range []string{"idle_idle", "idle_server", "idle_client"} {
		if n := count(e.restoredOf(s, false)); n != 1 {
			t.Errorf("after restore %s: %d running restored %s containers, want 1", reused.ID, n, s)
		}
	}
}

// perConnectionCounters: a real worker lists a container's TCP connections from its
// network namespace (netlink sock_diag), each with its own counters: the echo client's
// connection to the server (its address, port 7000) carries bytes, the idle container
// has no connection (a listener is none), and the server lists the same connection
// from its end.
func (e *e2e) perConnectionCounters(t *testing.T, cs map[string]store.Container) {
	token, err := worker.ReadTokenFile(e.workerToken())
	if err != nil {
		t.Fatal(err)
	}
	read := func(c store.Container) activity.Counters {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		wc := &worker.Client{Addr: e.workerAddr(c.Node), Token: token}
		a, err := wc.Activity(ctx, c.ContainerID)
		if err != nil {
			t.Fatalf("activity of %s on %s: %v", c.Service, c.Node, err)
		}
		return a
	}
	client, server, idle := cs["idle_client"], cs["idle_server"], cs["idle_idle"]
	if len(server.IPs) == 0 {
		t.Fatalf("the server's manifest entry has no address: %+v", server)
	}
	toServer := func(a activity.Counters) (activity.Conn, bool) {
		for _, k := range a.Conns {
			if strings.HasSuffix(k.Remote, ":7000") && slices.ContainsFunc(server.IPs, func(ip string) bool { return strings.HasPrefix(k.Remote, strings.Split(ip, "/")[0]+":") }) {
				return k, true
			}
		}
		return activity.Conn{}, false
	}
	a := read(client)
	k0, ok := toServer(a)
	if !ok {
		t.Fatalf("the echo client's connections %+v list none to the server (%v, port 7000)", a.Conns, server.IPs)
	}
	var k1 activity.Conn
	waitFor(t, "the echo client's connection to carry more bytes", func() bool {
		k1, ok = toServer(read(client))
		return ok && k1.Local == k0.Local && k1.Sent > k0.Sent && k1.Received > k0.Received
	})
	var back bool
	for _, k := range read(server).Conns {
		back = back || (k.Local == k1.Remote && k.Remote == k1.Local)
	}
	if !back {
		t.Errorf("the server does not list its end of %s-%s", k1.Local, k1.Remote)
	}
	if ic := read(idle); len(ic.Conns) != 0 {
		t.Errorf("the idle container lists connections: %+v", ic.Conns)
	}
	t.Logf("echo client -> server: %s-%s sent %d -> %d received %d -> %d bytes", k0.Local, k0.Remote, k0.Sent, k1.Sent, k0.Received, k1.Received)
}
