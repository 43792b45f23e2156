package worker_test

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
)

var okRE = regexp.MustCompile(`(?m)^ok (\d+)$`)

func oks(logs string) []int {
	var out []int
	for _, m := range okRE.FindAllStringSubmatch(logs, -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

// TestEchoPairSwapsNodesKeepingTheConnection: an echo client and server on two nodes of
// a swarm, standalone containers with fixed IPs on an attachable overlay, are locked,
// frozen and dumped, then restored with the nodes swapped. The client must continue on
// the same TCP connection: no reconnect, no sequence gap or duplicate, no error.
// echoNet is the attachable overlay the echo tests use.
const echoNet = "dpecho"

// echoPair starts an echo server (node 1) and its client (node 2) as standalone
// containers with fixed addresses on the attachable overlay echoNet, named
// <prefix>-srv-N and <prefix>-cli-N, and waits for 20 echoes. It skips loudly where no
// such overlay can be made.
func echoPair(t *testing.T, prefix string) (n1, n2 dockertest.Node, srv, cli string) {
	t.Helper()
	nodes := dockertest.Nodes(t, 2)
	n1, n2 = nodes[0], nodes[1]
	if _, err := n1.Docker("network", "inspect", echoNet); err != nil {
		if _, err := n1.Docker("network", "create", "-d", "overlay", "--attachable", "--subnet", "10.232.9.0/24", echoNet); err != nil {
			t.Skipf("SKIPPED LOUDLY: cannot create an attachable overlay on %s (needs a swarm manager; use a lab): %v", n1.Host, err)
		}
	}
	sfx := time.Now().UnixNano() % 100000
	srv, cli = fmt.Sprintf("%s-srv-%d", prefix, sfx), fmt.Sprintf("%s-cli-%d", prefix, sfx)
	// Fresh addresses per run: swarm releases overlay addresses asynchronously.
	srvIP, cliIP := fmt.Sprintf("10.232.9.%d", 10+2*(sfx%100)), fmt.Sprintf("10.232.9.%d", 11+2*(sfx%100))
	for _, n := range nodes {
		for _, c := range []string{srv, cli} {
			t.Cleanup(func() { _, _ = n.Docker("rm", "-f", c) })
		}
	}
	n1.Run(t, srv, "--network", echoNet, "--ip", srvIP, dockertest.Image, "echo-server", ":7000")
	n2.Run(t, cli, "--network", echoNet, "--ip", cliIP, dockertest.Image, "echo-client", srvIP+":7000")
	n2.WaitLog(t, cli, 30*time.Second, "20 echoes", func(l string) bool { return strings.Contains(l, "ok 20\n") })
	return n1, n2, srv, cli
}

func TestEchoPairSwapsNodesKeepingTheConnection(t *testing.T) {
	n1, n2, srv, cli := echoPair(t, "dpecho")

	a, _, _ := daemon(t, n1, "echo-a")
	b, _, _ := daemon(t, n2, "echo-b")
	ctx := dockertest.Context(t, 2*time.Minute)
	deadline := time.Now().Add(30 * time.Second)
	// Blocking cut: lock both, freeze both, dump both.
	for _, s := range []struct {
		w    *worker.Client
		name string
	}{{a, srv}, {b, cli}} {
		if err := s.w.Lock(ctx, s.name, nil, deadline); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct {
		w    *worker.Client
		name string
	}{{a, srv}, {b, cli}} {
		if err := s.w.Freeze(ctx, s.name, deadline); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Dump(ctx, srv, srv, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Dump(ctx, cli, cli, false); err != nil {
		t.Fatal(err)
	}
	before := oks(n2.MustDocker(t, "logs", cli))
	last := before[len(before)-1]
	// The originals exited with the dump: remove them to free names and addresses.
	n1.MustDocker(t, "rm", "-f", srv)
	n2.MustDocker(t, "rm", "-f", cli)
	ai, _ := a.Info(ctx)
	bi, _ := b.Info(ctx)
	if _, err := a.Send(ctx, srv, bi.Addr); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Send(ctx, cli, ai.Addr); err != nil {
		t.Fatal(err)
	}
	// Locked restores (as the coordinator does them): each comes back with its network
	// locked from before CRIU restored its sockets, and stays locked until Unlock.
	lockUntil := time.Now().Add(time.Minute)
	srvRef, err := b.Restore(ctx, srv, worker.RestoreOptions{LockUntil: lockUntil,
		Aliases: map[string][]string{echoNet: {"echo-server-alias"}}})
	if err != nil {
		t.Fatal(err)
	}
	cliRef, err := a.Restore(ctx, cli, worker.RestoreOptions{LockUntil: lockUntil})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		n   dockertest.Node
		pid int
	}{{n2, srvRef.Pid}, {n1, cliRef.Pid}} {
		if out, err := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(r.pid)+"/ns/net", "nft", "list", "table", "inet", netlock.Table).CombinedOutput(); err != nil {
			t.Fatalf("restored container (pid %d on %s) has no lock table after a locked restore: %v: %s", r.pid, r.n.Host, err, out)
		}
	}
	if got := n1.MustDocker(t, "logs", cli); len(oks(got)) > 0 && oks(got)[len(oks(got))-1] > last {
		t.Fatalf("client echoed while locked (last before %d):\n%s", last, got)
	}
	if al := n2.MustDocker(t, "inspect", "-f", "{{json .NetworkSettings.Networks}}", srv); !strings.Contains(al, "echo-server-alias") {
		t.Fatalf("restored server lacks the requested alias: %s", al)
	}
	if err := b.Unlock(ctx, srvRef.ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(ctx, cliRef.ID, nil); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(cliRef.Pid)+"/ns/net", "nft", "list", "table", "inet", netlock.Table).CombinedOutput(); err == nil {
		t.Fatalf("lock table still there after Unlock:\n%s", out)
	}
	logs := n1.WaitLog(t, cli, 30*time.Second, "20 more echoes after the swap",
		func(l string) bool {
			o := oks(l)
			return len(o) > 0 && o[len(o)-1] >= last+20 || strings.Contains(l, "ERR")
		})
	if strings.Contains(logs, "ERR") || strings.Contains(logs, "connected") {
		t.Fatalf("client after restore (on %s) reconnected or failed:\n%s", n1.Host, logs)
	}
	after := oks(logs)
	if after[0] != last+1 {
		t.Fatalf("first echo after restore is %d, last before was %d: gap or duplicate", after[0], last)
	}
	for i := 1; i < len(after); i++ {
		if after[i] != after[i-1]+1 {
			t.Fatalf("sequence broken after restore: %v", after)
		}
	}
	if srvLogs := n2.MustDocker(t, "logs", srv); strings.Contains(srvLogs, "accepted") || strings.Contains(srvLogs, "closed") {
		t.Fatalf("server after restore saw a new or closed connection:\n%s", srvLogs)
	}
}

// TestEchoServerMovedWithDumpIntoKeepsTheConnection: DumpInto moves the echo server to
// the client's node while the client keeps running; the server's socket comes back on
// its address and the client carries on on the same connection, with no gap, no
// duplicate and no error: nothing the source sent while it was killed (its sockets had
// left CRIU's repair mode with --leave-running) reached the client.
func TestEchoServerMovedWithDumpIntoKeepsTheConnection(t *testing.T) {
	n1, n2, srv, cli := echoPair(t, "dpinto")

	a, _, _ := daemon(t, n1, "into-a")
	b, _, _ := daemon(t, n2, "into-b")
	ctx := dockertest.Context(t, 2*time.Minute)
	bi, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.DumpInto(ctx, srv, srv, bi.Addr); err != nil {
		t.Fatal(err)
	}
	before := oks(n2.MustDocker(t, "logs", cli))
	last := before[len(before)-1]
	n1.MustDocker(t, "rm", "-f", srv) // exited with the migration: frees its name and address
	ref, err := b.Restore(ctx, srv, worker.RestoreOptions{LockUntil: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, ref.ID, nil); err != nil {
		t.Fatal(err)
	}
	logs := n2.WaitLog(t, cli, 30*time.Second, "20 more echoes after the move",
		func(l string) bool {
			o := oks(l)
			return len(o) > 0 && o[len(o)-1] >= last+20 || strings.Contains(l, "ERR")
		})
	after := oks(logs)
	i := 0
	for i < len(after) && after[i] <= last {
		i++
	}
	if strings.Count(logs, "connected") > 1 || strings.Contains(logs, "ERR") {
		t.Fatalf("client reconnected or failed after the server moved:\n%s", logs)
	}
	if i == len(after) || after[i] != last+1 {
		t.Fatalf("echoes after the move %v, last before was %d: gap", after[i:], last)
	}
	for j := i + 1; j < len(after); j++ {
		if after[j] != after[j-1]+1 {
			t.Fatalf("sequence broken after the move: %v", after)
		}
	}
	if srvLogs := n2.MustDocker(t, "logs", srv); strings.Contains(srvLogs, "accepted") || strings.Contains(srvLogs, "closed") {
		t.Fatalf("server after the move saw a new or closed connection:\n%s", srvLogs)
	}
}
