package algotest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// A script is a sequence of cases, in the format of etcd's datadriven tests:
//
//	# comments and blank lines between cases
//	command key=value ...
//	input lines (optional)
//	----
//	expected output (no blank lines)
//
// Commands:
//
//	containers            input: one line per container "id@node peer peer ..."; starts a new driver
//	request id=S          ask for snapshot S
//	stabilize             deliver every message, oldest first, until none is left
//	deliver [n=N]         deliver the N oldest messages (default 1)
//	tick [n=N]            tick every machine N times (default 1)
//	traffic from=A to=B bytes=N   A's application writes N bytes to B
//	counters kind=sockets report counters as a real worker does: per socket, and CPU time
//	connect from=A to=B   (kind=sockets) A opens one more connection to B, no bytes on it
//	run id=C              (kind=sockets) C runs 1 ms of CPU time, no traffic
//	drop to=ADDR          drop every in-flight message to ADDR (coordinator or container id)
//	dup                   duplicate every in-flight message
//	reverse               reverse the order of the in-flight messages
//	mute id=C             container C never answers from now on
//	crash-coordinator     restart the coordinator from its last record
//	crash-worker id=C     restart the worker of C (its role is rebuilt, Recovering)
//	fail-commit           input: a reason; the next commit fails with it (not written)
//	abort-request id=S    input: a reason; the coordinator's process asks to abort S
//	settle                deliver and tick until everything is decided and released
//	state                 containers held, counters, outcomes, and the invariant check
type scriptCase struct {
	cmd   string
	args  map[string]string
	input []string
	want  []string
	pre   []string // comment and blank lines before the case
	line  int
}

func parseScript(text string) ([]scriptCase, []string, error) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	var cases []scriptCase
	var pre []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			pre = append(pre, l)
			continue
		}
		c := scriptCase{args: map[string]string{}, pre: pre, line: i + 1}
		pre = nil
		f := strings.Fields(l)
		c.cmd = f[0]
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			c.args[k] = v
		}
		i++
		for ; i < len(lines) && lines[i] != "----"; i++ {
			c.input = append(c.input, lines[i])
		}
		if i >= len(lines) {
			return nil, nil, fmt.Errorf("line %d: %s: missing ----", c.line, c.cmd)
		}
		i++
		for ; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
			c.want = append(c.want, lines[i])
		}
		i-- // the blank line is the next case's prefix
		cases = append(cases, c)
	}
	return cases, pre, nil
}

func formatScript(cases []scriptCase, tail []string) string {
	var b strings.Builder
	for _, c := range cases {
		for _, p := range c.pre {
			b.WriteString(p + "\n")
		}
		b.WriteString(c.cmd)
		keys := make([]string, 0, len(c.args))
		for k := range c.args {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if c.args[k] == "" {
				b.WriteString(" " + k)
			} else {
				b.WriteString(" " + k + "=" + c.args[k])
			}
		}
		b.WriteString("\n")
		for _, l := range c.input {
			b.WriteString(l + "\n")
		}
		b.WriteString("----\n")
		for _, l := range c.want {
			b.WriteString(l + "\n")
		}
	}
	for _, p := range tail {
		b.WriteString(p + "\n")
	}
	return b.String()
}

// RunScripts runs every testdata script matching glob against alg and compares each
// case's transcript with the expected output; with rewrite it writes the transcripts
// into the files instead (review the diff!).
func RunScripts(t *testing.T, alg algorithms.Algorithm, glob string, rewrite bool) {
	files, err := filepath.Glob(glob)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no scripts match %s", glob)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			text, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cases, tail, err := parseScript(string(text))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			s := &scriptRun{alg: alg}
			for i := range cases {
				c := &cases[i]
				got := s.run(c)
				if rewrite {
					c.want = got
					continue
				}
				if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
					t.Errorf("%s:%d: %s: transcript differs (run with -rewrite to accept):\n--- got\n%s\n--- want\n%s",
						file, c.line, c.cmd, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
				}
			}
			if rewrite {
				if err := os.WriteFile(file, []byte(formatScript(cases, tail)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

type scriptRun struct {
	alg algorithms.Algorithm
	d   *Driver
	log strings.Builder
}

func (s *scriptRun) run(c *scriptCase) []string {
	out := s.exec(c)
	if s.d != nil {
		out = s.log.String() + out
		s.log.Reset()
	}
	out = strings.TrimRight(out, "\n")
	if out == "" {
		return []string{"ok"}
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func (s *scriptRun) exec(c *scriptCase) string {
	n := 1
	if v, ok := c.args["n"]; ok {
		n, _ = strconv.Atoi(v)
	}
	if c.cmd != "containers" && s.d == nil {
		return "error: run containers first"
	}
	switch c.cmd {
	case "containers":
		var cs []protocol.Container
		for _, l := range c.input {
			f := strings.Fields(l)
			id, node, _ := strings.Cut(f[0], "@")
			cs = append(cs, protocol.Container{ID: id, Node: node, Peers: f[1:]})
		}
		d, err := NewDriver(s.alg, Options{Containers: cs, Config: TestConfig()})
		if err != nil {
			return "error: " + err.Error()
		}
		s.d = d
		s.log.Reset()
		d.SetLog(&s.log)
		return ""
	case "request":
		_ = s.d.Request(c.args["id"])
		return ""
	case "stabilize":
		for s.d.DeliverOne(true) {
		}
		return ""
	case "deliver":
		for range n {
			s.d.DeliverOne(true)
		}
		return ""
	case "tick":
		for range n {
			s.d.Tick()
		}
		return ""
	case "traffic":
		b, _ := strconv.ParseUint(c.args["bytes"], 10, 64)
		if !s.d.Traffic(c.args["from"], c.args["to"], b) {
			return "not sent: sender frozen or no such connection"
		}
		return ""
	case "counters":
		if c.args["kind"] != "sockets" {
			return "error: counters kind=sockets is the only kind to switch to"
		}
		s.d.ReportSockets()
		return ""
	case "connect":
		if !s.d.Connect(c.args["from"], c.args["to"]) {
			return "not connected: no such peer, or counters are not per socket"
		}
		return ""
	case "run":
		if !s.d.Run(c.args["id"]) {
			return "not run: no such container, frozen, or counters are not per socket"
		}
		return ""
	case "drop":
		to := protocol.Coordinator
		if c.args["to"] != "coordinator" {
			to = protocol.ContainerAddr(c.args["to"])
		}
		return fmt.Sprintf("dropped %d", s.d.Drop(to))
	case "dup":
		return fmt.Sprintf("duplicated %d", s.d.Duplicate())
	case "reverse":
		s.d.Reverse()
		return ""
	case "mute":
		s.d.Mute(c.args["id"])
		return ""
	case "crash-coordinator":
		s.d.CrashCoordinator()
		return ""
	case "crash-worker":
		s.d.CrashWorker(c.args["id"])
		return ""
	case "fail-commit":
		s.d.FailNextCommit(strings.Join(c.input, " "))
		return ""
	case "abort-request":
		s.d.RequestAbort(c.args["id"], strings.Join(c.input, " "))
		return ""
	case "settle":
		s.d.Settle()
		return ""
	case "state":
		return s.d.State()
	}
	return "error: unknown command " + c.cmd
}

// State describes the containers, the outcomes and the invariant check, for scripts.
func (d *Driver) State() string {
	var b strings.Builder
	for _, id := range d.order {
		c := d.cs[id]
		var held []string
		if c.frozen {
			held = append(held, "frozen")
		}
		if c.lockAll {
			held = append(held, "locked")
		}
		if len(c.lockPeer) > 0 {
			ps := make([]string, 0, len(c.lockPeer))
			for p := range c.lockPeer {
				ps = append(ps, p)
			}
			sort.Strings(ps)
			held = append(held, "locked-to="+strings.Join(ps, ","))
		}
		if len(held) == 0 {
			held = []string{"running"}
		}
		var cn []string
		for _, k := range d.counters(c) {
			cn = append(cn, fmt.Sprintf("%s:%d/%d", k.Peer, k.Sent, k.Received))
		}
		fmt.Fprintf(&b, "%s: %s conns(sent/recv)=%s\n", id, strings.Join(held, " "), strings.Join(cn, " "))
	}
	for _, o := range d.Outcomes {
		if o.Committed {
			fmt.Fprintf(&b, "outcome %s epoch=%d: committed\n", o.Snapshot, o.Epoch)
		} else {
			fmt.Fprintf(&b, "outcome %s epoch=%d: aborted: %s\n", o.Snapshot, o.Epoch, o.Reason)
		}
	}
	fmt.Fprintf(&b, "in flight: %d\n", len(d.net))
	if err := d.Check(d.alg.Guarantees().ConsistentCut); err != nil {
		fmt.Fprintf(&b, "check: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	} else {
		b.WriteString("check: ok\n")
	}
	return b.String()
}
