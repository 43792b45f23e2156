package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// commandLines returns the start of every command line: each command of commands()
// and each of its subcommands (lab up, worker tls-init, ...).
func commandLines() [][]string {
	var out [][]string
	for name, cmd := range commands() {
		if cmd.subs == nil {
			out = append(out, []string{name})
		}
		for _, s := range cmd.subs {
			if s == "" {
				out = append(out, []string{name})
			} else {
				out = append(out, []string{name, s})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.Join(out[i], " ") < strings.Join(out[j], " ") })
	return out
}

// parsed is what parseArgs saw of one command line.
type parsed struct {
	fs  *flag.FlagSet
	pos []string
	err error
	out string
}

// parseOnly runs a command line with the cli.parsed hook: the command stops right after
// parseArgs. A command that parses its arguments any other way fails the test (its
// context is cancelled already, so that it does nothing for long).
func parseOnly(t *testing.T, args []string) parsed {
	t.Helper()
	var p parsed
	var out bytes.Buffer
	called := false
	c := &cli{stdout: &out, stderr: &out, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		parsed: func(fs *flag.FlagSet, pos []string) { p.fs, p.pos, called = fs, pos, true }}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.err = commands()[args[0]].run(ctx, c, args[1:])
	p.out = out.String()
	if !errors.Is(p.err, errHelp) && (!called || !errors.Is(p.err, errParsed)) {
		t.Fatalf("swarmckpt %s: did not parse its arguments with cli.parseArgs (it returned %v)", strings.Join(args, " "), p.err)
	}
	return p
}

// sampleValue is a value flag f accepts (set on fs, a flag set the test may change).
func sampleValue(fs *flag.FlagSet, f *flag.Flag) (string, bool) {
	for _, v := range []string{f.DefValue, "bank_holder.1=lab-1"} {
		if fs.Set(f.Name, v) == nil {
			return v, true
		}
	}
	return "", false
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// TestEveryCommandTakesFlagsAfterArguments: every command and subcommand parses its
// command line with parseArgs, so that each of its flags is accepted after a
// positional argument as well as before it, "--" ends the flags, and --help after an
// argument prints the usage.
func TestEveryCommandTakesFlagsAfterArguments(t *testing.T) {
	lines := commandLines()
	for _, want := range [][]string{{"lab", "deploy"}, {"lab", "up"}, {"agent"}, {"snapshot"}, {"worker", "tls-init"}} {
		if !slices.ContainsFunc(lines, func(l []string) bool { return slices.Equal(l, want) }) {
			t.Fatalf("%v is not among the command lines tested: %v", want, lines)
		}
	}
	for _, line := range lines {
		name := strings.Join(line, " ")
		cmdline := func(rest ...string) []string { return append(slices.Clone(line), rest...) }
		base := parseOnly(t, cmdline("ARG"))
		if !slices.Equal(base.pos, []string{"ARG"}) {
			t.Errorf("%s ARG: positional %q, want [ARG]", name, base.pos)
		}
		if p := parseOnly(t, cmdline("ARG", "--", "--not-a-flag", "-x")); !slices.Equal(p.pos, []string{"ARG", "--not-a-flag", "-x"}) {
			t.Errorf("%s ARG -- --not-a-flag -x: positional %q, want everything after -- positional", name, p.pos)
		}
		if p := parseOnly(t, cmdline("ARG", "--help")); !errors.Is(p.err, errHelp) || !strings.Contains(p.out, "Usage") {
			t.Errorf("%s ARG --help: %v, output %q; want the usage", name, p.err, p.out)
		}
		n := 0
		base.fs.VisitAll(func(f *flag.Flag) {
			n++
			value, ok := sampleValue(base.fs, f)
			if isBool(f) {
				value, ok = "true", base.fs.Set(f.Name, "true") == nil // "--name" alone
			}
			if !ok {
				t.Errorf("%s --%s: no sample value for it (default %q)", name, f.Name, f.DefValue)
				return
			}
			want := base.fs.Lookup(f.Name).Value.String()
			tokens := []string{"--" + f.Name, value}
			if isBool(f) {
				tokens = []string{"--" + f.Name}
			}
			for _, args := range [][]string{cmdline(append([]string{"ARG"}, tokens...)...), cmdline(append(tokens, "ARG", "ARG2")...), cmdline(append(append([]string{"ARG"}, tokens...), "ARG2")...)} {
				p := parseOnly(t, args)
				set := false
				p.fs.Visit(func(g *flag.Flag) { set = set || g.Name == f.Name })
				got := p.fs.Lookup(f.Name).Value.String()
				wantPos := []string{"ARG"}
				if slices.Contains(args, "ARG2") {
					wantPos = append(wantPos, "ARG2")
				}
				if !set || got != want || !slices.Equal(p.pos, wantPos) {
					t.Errorf("swarmckpt %s: --%s set %v to %q, positional %q; want it set to %q and positional %q",
						strings.Join(args, " "), f.Name, set, got, p.pos, want, wantPos)
				}
			}
		})
		t.Logf("%s: %d flags, each accepted before, between and after arguments", name, n)
	}
}

// TestParseArgs: the parser itself, on a flag set of each kind of flag.
func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		pos      []string
		s        string
		b        bool
		usageErr string
	}{
		{args: []string{"a", "--s", "v", "b"}, pos: []string{"a", "b"}, s: "v"},
		{args: []string{"a", "-s=v", "--b", "b"}, pos: []string{"a", "b"}, s: "v", b: true},
		{args: []string{"--s", "-v-", "a"}, pos: []string{"a"}, s: "-v-"}, // a value may start with '-'
		{args: []string{"--b=false", "a", "-"}, pos: []string{"a", "-"}},  // "-" is an argument
		{args: []string{"a", "--", "--s", "v"}, pos: []string{"a", "--s", "v"}},
		{args: []string{"--s", "--", "a"}, pos: []string{"a"}, s: "--"}, // "--" as a flag's value
		{args: []string{"a", "--nope"}, usageErr: "flag provided but not defined: -nope"},
		{args: []string{"a", "--s"}, usageErr: "flag needs an argument: -s"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		s := fs.String("s", "", "")
		b := fs.Bool("b", false, "")
		c := &cli{stdout: io.Discard, stderr: io.Discard}
		pos, err := c.parseArgs(fs, "usage", tc.args)
		if tc.usageErr != "" {
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.usageErr) {
				t.Errorf("%q: %v, want a usage error %q", tc.args, err, tc.usageErr)
			}
			continue
		}
		if err != nil || !slices.Equal(pos, tc.pos) || *s != tc.s || *b != tc.b {
			t.Errorf("%q: pos %q s %q b %v err %v; want pos %q s %q b %v", tc.args, pos, *s, *b, err, tc.pos, tc.s, tc.b)
		}
	}
}

// TestLabDeployFlagsAfterArguments is the example: the flags after FILE STACK
// are used (the lab named is looked for), not refused as arguments.
func TestLabDeployFlagsAfterArguments(t *testing.T) {
	runDir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"lab", "deploy", "deploy/examples/echo.yml", "echo", "--name", "nosuchlab", "--run-dir", runDir}, &stdout, &stderr)
	if code == exitUsage || !strings.Contains(stderr.String(), "nosuchlab") {
		t.Fatalf("exit %d, stderr %q: want the flags used (lab nosuchlab not found, exit 1)", code, stderr.String())
	}
}

// TestBadNamesExitTwo: every command that takes a snapshot id, stack, node or
// SERVICE.SLOT refuses a bad one with exit 2 and a message saying what is wrong and
// what is allowed, before it connects anywhere (the NATS address answers nothing; a
// good name there fails with exit 1 instead).
func TestBadNamesExitTwo(t *testing.T) {
	nowhere := []string{"--nats", "nats://127.0.0.1:1", "--timeout", "2s", "--data-dir", t.TempDir()}
	long := func(n int) string { return strings.Repeat("x", n) }
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"snapshot", "bank", "--id", "a/b"}, `snapshot id "a/b" contains '/'`},
		{[]string{"snapshot", "--id", long(3000), "bank"}, "3000 characters long, more than 128"},
		{[]string{"snapshot", long(5000)}, "stack name"},
		{[]string{"snapshot", "my.stack"}, `contains '.'`},
		{[]string{"ls", "a*"}, "stack name"},
		{[]string{"policy", "a*"}, "stack name"},
		{[]string{"inspect", "a b"}, "snapshot id"},
		{[]string{"rm", "good-id", "../x"}, "snapshot id"},
		{[]string{"restore", "a>b"}, "snapshot id"},
		{[]string{"restore", "snap-1", "--node", "bank_holder.1=lab.2"}, "target of bank_holder.1: node name"},
		{[]string{"restore", "snap-1", "--node", "bank_holder=lab-2"}, "no '.SLOT'"},
		{[]string{"migrate", long(5000), "--to", "lab-2"}, "stack name"},
		{[]string{"migrate", "bank", "--to", "lab>2"}, "--to: node name"},
		{[]string{"migrate", "bank", "--from", "a/b"}, "--from: node name"},
		{[]string{"lab", "deploy", "file.yml", "bad.stack"}, "stack name"},
		{[]string{"worker", "--node", "a/b", "--insecure-no-auth"}, "--node: node name"},
		{[]string{"worker", "tls-init", "--dir", t.TempDir(), "--node", "../x", "--ip", "127.0.0.1"}, "--node: node name"},
		{[]string{"coordinator", "credentials", "--node", "lab.1", "--data-dir", t.TempDir()}, "--node: node name"},
		{[]string{"agent", "--node", "lab.1", "--worker", "127.0.0.1:1"}, "--node: node name"},
	} {
		args := tc.args
		if !slices.Contains([]string{"lab", "worker", "coordinator", "agent"}, args[0]) {
			args = append(slices.Clone(args), nowhere...)
		}
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		e := stderr.String()
		if code != exitUsage || !strings.Contains(e, tc.says) || !strings.Contains(e, "use ") && !strings.Contains(e, "want ") {
			t.Errorf("%.80q: exit %d, stderr %.300q; want exit 2 saying %q and what is allowed", tc.args, code, e, tc.says)
		}
		if len(e) > 600 {
			t.Errorf("%.80q: the message is %d characters long: a long name must not be echoed whole", tc.args, len(e))
		}
	}
	// The same commands with good names get past the check (and fail to connect).
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"snapshot", "bank", "--id", "bank-1"}, nowhere...), &stdout, &stderr); code == exitUsage || code == exitOK {
		t.Fatalf("snapshot with good names and no coordinator: exit %d, want a failure to connect\n%s", code, stderr.String())
	}
}

// The external etcd's user/password flags: exit 2 saying what is missing, before
// anything starts; the embedded etcd refuses them.
func TestEtcdUserPasswordFlags(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SWARMCKPT_ETCD_PASSWORD", "")
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--etcd", "https://127.0.0.1:1", "--etcd-user", "root"}, "needs a password"},
		{[]string{"--etcd", "https://127.0.0.1:1", "--etcd-password-file", pw}, "needs --etcd-user"},
		{[]string{"--etcd-user", "root", "--etcd-password-file", pw}, "for an external etcd"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"coordinator", "--data-dir", t.TempDir()}, tc.args...)
		if code := run(args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 saying %q", tc.args, code, stderr.String(), tc.says)
		}
	}
	if u, p, err := etcdUserPassword("root", pw); err != nil || u != "root" || p != "s3cret" {
		t.Fatalf("password file: %q %q %v", u, p, err)
	}
	t.Setenv("SWARMCKPT_ETCD_PASSWORD", "from-env")
	if _, p, err := etcdUserPassword("root", ""); err != nil || p != "from-env" {
		t.Fatalf("password from the environment: %q %v", p, err)
	}
}

// The worker runs with TLS unless told otherwise: without --tls-* it refuses to start
// (exit 2 naming the flags), and TLS and --insecure-no-tls together are refused.
func TestWorkerTLSByDefault(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "worker.token")
	if err := os.WriteFile(tok, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"worker", "--node", "n1", "--token-file", tok}, "--insecure-no-tls"},
		{[]string{"worker", "--node", "n1", "--token-file", tok, "--insecure-no-tls", "--tls-ca", "ca.pem"}, "not both"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 saying %q", tc.args, code, stderr.String(), tc.says)
		}
	}
}

// 'coordinator agent' is the deprecated alias of 'agent': it says so in one line and
// runs the same command (the same flag checks).
func TestCoordinatorAgentIsADeprecatedAlias(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"coordinator", "agent", "--node", "lab.1", "--worker", "127.0.0.1:1"}, &stdout, &stderr)
	first, _, _ := strings.Cut(stderr.String(), "\n")
	if code != exitUsage || !strings.Contains(first, "deprecated") || !strings.Contains(first, "'swarmckpt agent'") ||
		!strings.Contains(stderr.String(), "--node: node name") {
		t.Fatalf("coordinator agent: exit %d, stderr %q; want the deprecation line, then agent's refusal of the node name", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"agent", "--node", "lab.1", "--worker", "127.0.0.1:1"}, &stdout, &stderr); code != exitUsage || strings.Contains(stderr.String(), "deprecated") {
		t.Fatalf("agent: exit %d, stderr %q; want the refusal without a deprecation notice", code, stderr.String())
	}
}
