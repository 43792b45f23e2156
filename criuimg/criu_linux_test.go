package criuimg

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/cut"
)

// criuPair is two helper processes holding one loopback TCP connection inside a fresh
// network namespace, with traffic flowing both ways. Processes enter the namespace with
// nsenter --net (not `ip netns exec`, which also makes a new mount namespace that CRIU
// would then have to dump).
type criuPair struct {
	t       *testing.T
	ns      string
	dir     string
	server  *exec.Cmd
	client  *exec.Cmd
	sStatus string
	cStatus string
}

func requireCRIU(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: this test dumps real processes with CRIU and needs root; run `sudo go test ./criuimg/` to exercise the CRIU image front end")
	}
	for _, bin := range []string{"criu", "ip", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("SKIPPED LOUDLY: %s not on PATH (%v); install CRIU >= 4.2 (see deploy/setup) to exercise the CRIU image front end", bin, err)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func startPair(t *testing.T) *criuPair {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := newPair(t)
	p.sStatus = filepath.Join(p.dir, "server.status")
	p.cStatus = filepath.Join(p.dir, "client.status")
	env := func(role, status string) []string {
		return append(os.Environ(), helperEnv+"="+role, helperAddrEnv+"=127.0.0.1:47001", helperStatusEnv+"="+status)
	}
	p.server = p.start("server", env("server", p.sStatus), exe, "-test.run=^$")
	p.client = p.start("client", env("client", p.cStatus), exe, "-test.run=^$")
	// Wait for traffic in both directions (poll, no fixed sleep).
	p.waitFor(func() bool {
		sw, sr, ok1 := readStatus(t, p.sStatus)
		cw, cr, ok2 := readStatus(t, p.cStatus)
		return ok1 && ok2 && sw > 1<<20 && sr > 1<<20 && cw > 1<<20 && cr > 1<<20
	}, "traffic of 1 MiB each way between the helpers")
	return p
}

// newPair makes a fresh network namespace with loopback up and a 0700 work directory,
// both removed (with every process started in it) when the test ends.
func newPair(t *testing.T) *criuPair {
	t.Helper()
	requireCRIU(t)
	p := &criuPair{t: t, ns: fmt.Sprintf("swarmckpt-cut-%d-%d", os.Getpid(), time.Now().UnixNano()%100000)}
	p.dir = t.TempDir()
	if err := os.Chmod(p.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "netns", "add", p.ns)
	t.Cleanup(func() {
		for _, c := range []*exec.Cmd{p.server, p.client} {
			if c != nil && c.Process != nil {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
		}
		if out, err := exec.Command("ip", "netns", "del", p.ns).CombinedOutput(); err != nil {
			t.Errorf("cleanup: ip netns del %s: %v\n%s", p.ns, err, out)
		}
	})
	run(t, "nsenter", "--net=/run/netns/"+p.ns, "ip", "link", "set", "lo", "up")
	return p
}

// start runs argv inside the pair's namespace in its own session, logging to role.log.
func (p *criuPair) start(role string, env []string, argv ...string) *exec.Cmd {
	p.t.Helper()
	log, err := os.OpenFile(filepath.Join(p.dir, role+".log"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	defer log.Close()
	c := exec.Command("nsenter", append([]string{"--net=/run/netns/" + p.ns}, argv...)...)
	c.Env = env
	c.Stdin = nil
	c.Stdout, c.Stderr = log, log
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		p.t.Fatalf("start %s: %v", role, err)
	}
	return c
}

func (p *criuPair) waitFor(cond func() bool, what string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			s, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
			c, _ := os.ReadFile(filepath.Join(p.dir, "client.log"))
			p.t.Fatalf("timed out waiting for %s\nserver log: %s\nclient log: %s", what, s, c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dump runs criu dump of cmd's process into a fresh 0700 directory and returns it.
func (p *criuPair) dump(cmd *exec.Cmd, name string, leaveRunning bool) string {
	p.t.Helper()
	dir := filepath.Join(p.dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		p.t.Fatal(err)
	}
	args := []string{"--net=/run/netns/" + p.ns, "criu", "dump", "-t", fmt.Sprint(cmd.Process.Pid),
		"-D", dir, "-o", "dump.log", "-v4", "--tcp-established", "--network-lock", "nftables"}
	if leaveRunning {
		args = append(args, "--leave-running")
	}
	if out, err := exec.Command("nsenter", args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "dump.log"))
		lines := strings.Split(string(log), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		p.t.Fatalf("criu dump %s: %v\n%s\n--- tail of dump.log ---\n%s", name, err, out, strings.Join(lines, "\n"))
	}
	if !leaveRunning {
		_ = cmd.Wait()
	}
	return dir
}

func checkImages(t *testing.T, dirs map[string]string) *cut.Report {
	t.Helper()
	st, socks, err := FromImages(dirs, nil)
	if err != nil {
		t.Fatalf("FromImages: %v", err)
	}
	streams := 0
	for _, s := range socks {
		t.Logf("socket %s", s)
		if s.HasStreamRecord {
			streams++
		}
	}
	if streams != 2 {
		t.Fatalf("found %d TCP sockets with a stream record in the images, want 2 (one per end)", streams)
	}
	r := cut.Check(st)
	for _, l := range r.Lines() {
		t.Logf("evidence: %s", l)
	}
	if len(r.Channels) != 2 {
		t.Fatalf("checked %d directions, want 2 (the connection matched between the images): %s", len(r.Channels), r.Summary())
	}
	return r
}

// TestCRIUCoordinatedCutIsConsistent dumps both ends the way a coordinated snapshot does:
// the first dump leaves its end's connection locked (CRIU's network lock stays until a
// restore), so nothing crosses it until the second end is dumped, while the second end
// keeps writing under traffic until its own dump freezes it.
func TestCRIUCoordinatedCutIsConsistent(t *testing.T) {
	p := startPair(t)
	sDir := p.dump(p.server, "server", false)
	cDir := p.dump(p.client, "client", false)
	r := checkImages(t, map[string]string{"server": sDir, "client": cDir})
	if !r.Consistent() {
		t.Fatalf("coordinated cut reported inconsistent: %s\n%s", r.Summary(), strings.Join(r.Lines(), "\n"))
	}
	// Under traffic, in-flight data must show up: some direction has unacked or unread bytes.
	inFlight := false
	for _, ch := range r.Channels {
		if ch.Sent > ch.Received || ch.Received > ch.Acked {
			inFlight = true
		}
	}
	if !inFlight {
		t.Logf("note: no bytes were in flight at the cut (queues empty); the check was still exact")
	}
}

// TestCRIUUncoordinatedCutIsCaught dumps the client with --leave-running, lets it write
// far more than any socket buffer can hold, then dumps the server: the server has then
// received bytes the client's image had not yet written, and the checker must say so.
func TestCRIUUncoordinatedCutIsCaught(t *testing.T) {
	p := startPair(t)
	cDir := p.dump(p.client, "client", true)
	wAtDump, _, _ := readStatus(t, p.cStatus)
	// Socket buffers on loopback hold at most a few MiB: once the client wrote 32 MiB
	// more after its dump, the server has received bytes beyond the client's image.
	p.waitFor(func() bool {
		w, _, _ := readStatus(t, p.cStatus)
		return w > wAtDump+32<<20
	}, "32 MiB more written by the client after its dump")
	sDir := p.dump(p.server, "server", true)
	r := checkImages(t, map[string]string{"server": sDir, "client": cDir})
	if r.Consistent() {
		t.Fatalf("uncoordinated cut under traffic reported consistent:\n%s", strings.Join(r.Lines(), "\n"))
	}
	found := false
	for _, v := range r.Violations {
		if v.Violation == cut.Orphan && v.From == "client" && v.To == "server" {
			found = true
			if v.Received <= v.Sent {
				t.Fatalf("orphan evidence has received %d <= sent %d", v.Received, v.Sent)
			}
		}
	}
	if !found {
		t.Fatalf("want an orphan violation client -> server, got: %s\n%s", r.Summary(), strings.Join(r.Lines(), "\n"))
	}
}

// TestCRIUEchoWorkloadCutIsConsistent runs the project's echo workload
// (benchmarks/workloads/echo: one long-lived TCP connection, every line echoed back)
// as server and client in a fresh network namespace, waits for traffic, and dumps both
// ends the coordinated way (the server's connection stays locked from its dump until the
// client's). The checker must match the connection across the two image directories
// and find the cut consistent.
func TestCRIUEchoWorkloadCutIsConsistent(t *testing.T) {
	requireCRIU(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("SKIPPED LOUDLY: the go tool is needed to build the echo workload: %v", err)
	}
	p := newPair(t)
	echo := filepath.Join(p.dir, "echo")
	if out, err := exec.Command(goBin, "build", "-o", echo, "github.com/swarmckpt/swarmckpt/benchmarks/workloads/echo").CombinedOutput(); err != nil {
		t.Fatalf("build the echo workload: %v\n%s", err, out)
	}
	env := os.Environ()
	p.server = p.start("server", env, echo, "server", "--listen", "127.0.0.1:7000", "--http", "127.0.0.1:18080")
	p.client = p.start("client", env, echo, "client", "--connect", "127.0.0.1:7000", "--interval", "1ms", "--size", "8192", "--http", "127.0.0.1:18081")
	// Poll the kernel's per-socket counters until 256 KiB crossed each way.
	p.waitFor(func() bool {
		out, err := exec.Command("nsenter", "--net=/run/netns/"+p.ns, "ss", "-tinH", "state", "established", "( sport = :7000 or dport = :7000 )").Output()
		if err != nil {
			return false
		}
		n := 0
		for _, f := range strings.Fields(string(out)) {
			if v, ok := strings.CutPrefix(f, "bytes_received:"); ok {
				var b int
				fmt.Sscan(v, &b)
				if b > 256<<10 {
					n++
				}
			}
		}
		return n == 2
	}, "256 KiB of echo traffic each way")
	sDir := p.dump(p.server, "server", false)
	cDir := p.dump(p.client, "client", false)
	r := checkImages(t, map[string]string{"echo-server": sDir, "echo-client": cDir})
	if !r.Consistent() {
		t.Fatalf("coordinated cut of the echo workload reported inconsistent: %s\n%s", r.Summary(), strings.Join(r.Lines(), "\n"))
	}
	for _, ch := range r.Channels {
		if ch.Sent == 0 && ch.Received == 0 && ch.Acked == 0 {
			continue
		}
		t.Logf("in flight %s -> %s: %d byte(s) sent but not received", ch.From, ch.To, ch.Sent-ch.Received)
	}
}

// TestCRIUTCPStates dumps, with real CRIU, a client holding sockets in several TCP
// states (a pending connect, an established connection, one its server closed, one it
// half-closed itself) and its server, the coordinated way, and checks that the images
// carry each socket's state and that the checker classifies each as
// docs/algorithms.md ("TCP states at the cut") says.
func TestCRIUTCPStates(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := newPair(t)
	ns := "--net=/run/netns/" + p.ns
	// Every packet to the blackhole is dropped: a connect there stays SYN_SENT.
	run(t, "nsenter", ns, "nft", "add table inet cuttest; add chain inet cuttest out { type filter hook output priority 0; }; add rule inet cuttest out ip daddr "+statesBlackhole+" drop")
	status := filepath.Join(p.dir, "client.status")
	env := func(role string) []string {
		// Go >= 1.24 listens with MPTCP, which CRIU cannot dump.
		return append(os.Environ(), "GODEBUG=multipathtcp=0", helperEnv+"="+role, helperAddrEnv+"=127.0.0.1:47002", helperStatusEnv+"="+status)
	}
	p.server = p.start("server", env("states-server"), exe, "-test.run=^$")
	p.waitFor(func() bool {
		return exec.Command("nsenter", ns, "ss", "-tlnH", "sport = :47002").Run() == nil &&
			strings.Contains(string(must(exec.Command("nsenter", ns, "ss", "-tlnH", "sport = :47002").Output())), "47002")
	}, "the states server listening")
	p.client = p.start("client", env("states-client"), exe, "-test.run=^$")
	// Wait until the kernel shows every state (the server's read of 'h' to EOF and the
	// ACK of the client's FIN are asynchronous).
	p.waitFor(func() bool {
		if _, err := os.Stat(status); err != nil {
			return false
		}
		out := string(must(exec.Command("nsenter", ns, "ss", "-tanH").Output()))
		return strings.Count(out, "SYN-SENT") == 1 && strings.Count(out, "CLOSE-WAIT") == 2 && strings.Count(out, "FIN-WAIT-2") == 2
	}, "SYN-SENT x1, CLOSE-WAIT x2 (client 'c', server 'h'), FIN-WAIT-2 x2 (client 'h', server's orphan 'c') in ss")
	sDir := p.dump(p.server, "server", false)
	cDir := p.dump(p.client, "client", false)

	var socks []cut.Socket
	for _, d := range [][2]string{{"server", sDir}, {"client", cDir}} {
		ss, err := ReadSockets(d[0], d[1])
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, ss...)
	}
	got := map[string]int{}
	for _, s := range socks {
		t.Logf("socket %s", s)
		if !s.HasStreamRecord {
			t.Errorf("%s: no stream record (tcp-stream image)", s)
		}
		got[s.Container+" "+cut.TCPState(s.State).String()]++
	}
	want := map[string]int{"client SYN_SENT": 1, "client ESTABLISHED": 1, "client CLOSE_WAIT": 1, "client FIN_WAIT2": 1,
		"server ESTABLISHED": 1, "server CLOSE_WAIT": 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%d socket(s) %s in the images, want %d (all: %v)", got[k], k, n, got)
		}
	}
	// The server owns 127.0.0.1 for the checker; "nowhere" owns the blackhole address
	// (a container of the cut that has not accepted the connect: it has no socket).
	addrs := map[string][]netip.Addr{"server": {netip.MustParseAddr("127.0.0.1")}, "nowhere": {netip.MustParseAddr(statesBlackhole)}}
	r := cut.Check(cut.StateFromSockets([]string{"client", "nowhere", "server"}, socks, addrs))
	for _, l := range r.Lines() {
		t.Logf("evidence: %s", l)
	}
	if !r.Consistent() {
		t.Fatalf("cut reported inconsistent: %s", r.Summary())
	}
	notes := map[cut.Note]int{}
	for _, u := range r.Unchecked {
		notes[u.Note]++
	}
	if len(r.Channels) != 4 || notes[cut.Pending] != 1 || notes[cut.PeerClosed] != 1 || len(r.Unchecked) != 2 {
		t.Fatalf("want 4 directions checked (the established and the half-closed connection), 1 pending connect, 1 peer-closed: %s", r.Summary())
	}
}

func must(b []byte, _ error) []byte { return b }
