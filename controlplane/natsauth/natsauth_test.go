package natsauth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/registry"
	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/embedded"
	"github.com/swarmckpt/swarmckpt/controlplane/natsauth"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
	"github.com/swarmckpt/swarmckpt/worker/pki"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// conn is a raw nats.go client that records the server's asynchronous errors
// (permission violations).
type conn struct {
	*nats.Conn
	mu   sync.Mutex
	errs []string
}

func (c *conn) violations() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.errs, "\n")
}

func dial(t *testing.T, url, ca string, cr *natsauth.Credentials) (*conn, error) {
	t.Helper()
	c := &conn{}
	opts := []nats.Option{nats.Timeout(5 * time.Second), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err.Error())
			c.mu.Unlock()
		})}
	if ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	if cr != nil {
		opts = append(opts, nats.UserInfo(cr.User, cr.Password))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	c.Conn = nc
	return c, nil
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The embedded NATS (real server, in-process): no client without credentials, or
// without TLS, gets in; an agent cannot publish any coordinator command (to another
// node or its own) nor listen to another node; the CLI cannot address nodes; what
// each role needs works.
func TestRolesOnEmbeddedNATS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := embedded.Start(ctx, embedded.Config{DataDir: dir, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	url, ca := s.NATSURL(), embedded.NATSCAPath(dir)
	if !strings.HasPrefix(url, "tls://") {
		t.Fatalf("embedded NATS URL %s is not tls://", url)
	}
	creds := func(role natsauth.Role, node string) *natsauth.Credentials {
		c, ok, err := s.NATSCredentials(role, node)
		if err != nil || !ok {
			t.Fatalf("credentials of %s %s: %v %v", role, node, ok, err)
		}
		return &c
	}

	// Nobody gets in without credentials, with wrong ones, or without TLS.
	plain := "nats://" + strings.TrimPrefix(url, "tls://")
	wrongAgent := natsauth.Credentials{User: natsauth.AgentUser("n1"), Password: strings.Repeat("0", 64)}
	for name, try := range map[string]func() error{
		"no credentials":              func() error { _, err := dial(t, url, ca, nil); return err },
		"wrong agent password":        func() error { _, err := dial(t, url, ca, &wrongAgent); return err },
		"the CLI's user, no password": func() error { _, err := dial(t, url, ca, &natsauth.Credentials{User: "cli"}); return err },
		"valid credentials, no TLS":   func() error { _, err := dial(t, plain, "", creds(natsauth.RoleCLI, "")); return err },
	} {
		if err := try(); err == nil {
			t.Errorf("%s: connected", name)
		}
	}

	coord, err := dial(t, url, ca, creds(natsauth.RoleCoordinator, ""))
	if err != nil {
		t.Fatalf("coordinator: %v", err)
	}
	var mu sync.Mutex
	heard := map[string]string{}
	if _, err := coord.Subscribe(">", func(m *nats.Msg) {
		mu.Lock()
		heard[m.Subject] = string(m.Data)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := coord.Flush(); err != nil {
		t.Fatal(err)
	}
	got := func(subject string) bool { mu.Lock(); defer mu.Unlock(); _, ok := heard[subject]; return ok }

	agent, err := dial(t, url, ca, creds(natsauth.RoleAgent, "n1"))
	if err != nil {
		t.Fatalf("agent n1: %v", err)
	}
	// What an agent must be able to do arrives.
	allowed := []string{node.CoordinatorSubject(), node.HeartbeatSubject, node.PeerSubject("n2")}
	for _, subj := range allowed {
		if err := agent.Publish(subj, []byte("ok")); err != nil {
			t.Fatal(err)
		}
	}
	// Coordinator commands, to other nodes and to its own, and the CLI's API.
	lock, err := protocol.Encode(protocol.Envelope{Type: protocol.TypeLock, Snapshot: "s", Epoch: 9, From: protocol.Coordinator,
		To: protocol.ContainerAddr("c2"), Body: &protocol.Lock{All: true, Freeze: true}})
	if err != nil {
		t.Fatal(err)
	}
	denied := []string{node.NodeSubject("n2"), node.NodeSubject("n1"), node.PlanSubject("n2"),
		node.RestoreSubject("n2"), node.UnlockSubject("n1"), api.Subject("snapshot"), api.ProgressSubject("x"),
		node.PeerSubject("n2") + ".x", "_INBOX.forged"}
	for _, subj := range denied {
		if err := agent.Publish(subj, lock); err != nil {
			t.Fatal(err)
		}
	}
	if err := agent.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the allowed messages at the coordinator", func() bool {
		for _, s := range allowed {
			if !got(s) {
				return false
			}
		}
		return true
	})
	for _, subj := range denied {
		waitFor(t, "the permission violation of "+subj, func() bool {
			return strings.Contains(agent.violations(), `Permissions Violation for Publish to "`+subj+`"`)
		})
	}
	// The coordinator heard the allowed ones; give a stray forged one the time the
	// allowed ones took, with a marker after it on the same connection.
	if err := agent.Publish(node.CoordinatorSubject()+"", []byte("last")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the last message", func() bool { mu.Lock(); defer mu.Unlock(); return heard[node.CoordinatorSubject()] == "last" })
	for _, subj := range denied {
		if got(subj) {
			t.Errorf("an agent's message on %s reached the coordinator", subj)
		}
	}

	// An agent cannot listen to another node's subjects; it answers requests to its own.
	if _, err := agent.Subscribe(node.PlanSubject("n2"), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Subscribe(node.PlanSubject("n1"), func(m *nats.Msg) { _ = m.Respond([]byte("planned")) }); err != nil {
		t.Fatal(err)
	}
	if err := agent.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscribe violation", func() bool {
		return strings.Contains(agent.violations(), `Permissions Violation for Subscription to "`+node.PlanSubject("n2")+`"`)
	})
	rep, err := coord.Request(node.PlanSubject("n1"), []byte("{}"), 5*time.Second)
	if err != nil || string(rep.Data) != "planned" {
		t.Fatalf("the agent's reply to a plan: %v %v", rep, err)
	}

	// The CLI calls the API and follows progress, but addresses no node.
	cli, err := dial(t, url, ca, creds(natsauth.RoleCLI, ""))
	if err != nil {
		t.Fatalf("cli: %v", err)
	}
	if _, err := cli.Subscribe(api.ProgressSubject("op1"), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Subscribe(events.Subject, func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{api.Subject("ls"), node.NodeSubject("n1"), node.PlanSubject("n1")} {
		if err := cli.Publish(subj, lock); err != nil {
			t.Fatal(err)
		}
	}
	if err := cli.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the CLI's API call", func() bool { return got(api.Subject("ls")) })
	for _, subj := range []string{node.NodeSubject("n1"), node.PlanSubject("n1")} {
		waitFor(t, "the CLI's violation on "+subj, func() bool {
			return strings.Contains(cli.violations(), `Permissions Violation for Publish to "`+subj+`"`)
		})
	}
	if v := cli.violations(); strings.Contains(v, "Subscription") {
		t.Errorf("the CLI may not follow progress: %s", v)
	}
}

// recorder records the subjects a node agent subscribes to and publishes on.
type recorder struct {
	bus.Transport
	mu       sync.Mutex
	sub, pub []string
}

func (r *recorder) Subscribe(s string, h bus.Handler) (bus.Subscription, error) {
	r.mu.Lock()
	r.sub = append(r.sub, s)
	r.mu.Unlock()
	return r.Transport.Subscribe(s, h)
}

func (r *recorder) Publish(ctx context.Context, s string, b []byte) error {
	r.mu.Lock()
	r.pub = append(r.pub, s)
	r.mu.Unlock()
	return r.Transport.Publish(ctx, s, b)
}

// matches is NATS subject matching ('*' one token, '>' the rest).
func matches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, t := range p {
		if t == ">" {
			return len(s) > i
		}
		if i >= len(s) || (t != "*" && t != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

// Every subject a real node agent subscribes to and publishes on is in its
// permissions: the derivation covers the subject table.
func TestAgentPermissionsCoverTheAgent(t *testing.T) {
	rec := &recorder{Transport: bus.NewNetwork().Connect()}
	ex := worker.NewFake("n1")
	a, err := agent.New(agent.Config{Node: "n1", Bus: rec, Worker: ex.Roles(),
		Algorithms: func(n string) (algorithms.Algorithm, error) { return registry.Lookup(n) },
		StateDir:   t.TempDir(), HeartbeatPeriod: 10 * time.Millisecond, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitFor(t, "a heartbeat", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.pub) > 0
	})
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("agent: %v", err)
	}
	p, err := natsauth.Permissions(natsauth.RoleAgent, "n1")
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(list []string, s string) bool {
		for _, pat := range list {
			if matches(pat, s) {
				return true
			}
		}
		return false
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.sub) < 10 {
		t.Fatalf("the agent subscribed to only %v", rec.sub)
	}
	for _, s := range rec.sub {
		if !allowed(p.Subscribe.Allow, s) {
			t.Errorf("the agent subscribes to %s, which its permissions refuse", s)
		}
	}
	for _, s := range rec.pub {
		if !allowed(p.Publish.Allow, s) {
			t.Errorf("the agent publishes on %s, which its permissions refuse", s)
		}
	}
	if allowed(p.Publish.Allow, node.NodeSubject("n2")) || allowed(p.Subscribe.Allow, node.NodeSubject("n2")) {
		t.Error("an agent's permissions allow another node's command subject")
	}
}

// The same users and permissions on an external nats-server (Debian package) with TLS,
// configured with ServerConfig: the roles' credentials work over TLS, and an agent
// cannot publish a coordinator command to another node.
func TestServerConfigOnExternalNATS(t *testing.T) {
	binary, err := exec.LookPath("nats-server")
	if err != nil {
		t.Skip("SKIP EXTERNAL NATS: nats-server not on PATH; install it with 'apt-get install nats-server' to run this test")
	}
	dir := t.TempDir()
	sec, err := natsauth.Open(filepath.Join(dir, "users"))
	if err != nil {
		t.Fatal(err)
	}
	conf, err := sec.ServerConfig([]string{"n1", "n2"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("external nats test CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile, _, err := ca.WriteCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ca.Issue("nats", []net.IP{net.IPv4(127, 0, 0, 1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := n.Write(dir, "nats")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	confFile := filepath.Join(dir, "nats.conf")
	full := fmt.Sprintf("listen: \"127.0.0.1:%d\"\ntls {\n  cert_file: %q\n  key_file: %q\n}\n%s", port, cert, key, conf)
	if err := os.WriteFile(confFile, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "-c", confFile)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	cr := func(role natsauth.Role, node string) *natsauth.Credentials {
		c, err := sec.For(role, node)
		if err != nil {
			t.Fatal(err)
		}
		return &c
	}
	var coord *conn
	deadline := time.Now().Add(10 * time.Second)
	for coord == nil {
		if coord, err = dial(t, url, caFile, cr(natsauth.RoleCoordinator, "")); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("coordinator on the external nats-server: %v\n%s", err, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var mu sync.Mutex
	heard := map[string]bool{}
	if _, err := coord.Subscribe(">", func(m *nats.Msg) { mu.Lock(); heard[m.Subject] = true; mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	if err := coord.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, url, caFile, nil); err == nil {
		t.Error("the external server admitted a client without credentials")
	}
	agent, err := dial(t, url, caFile, cr(natsauth.RoleAgent, "n1"))
	if err != nil {
		t.Fatalf("agent n1: %v", err)
	}
	for _, s := range []string{node.NodeSubject("n2"), node.CoordinatorSubject()} {
		if err := agent.Publish(s, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := agent.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the agent's result at the coordinator", func() bool { mu.Lock(); defer mu.Unlock(); return heard[node.CoordinatorSubject()] })
	waitFor(t, "the permission violation", func() bool {
		return strings.Contains(agent.violations(), `Permissions Violation for Publish to "`+node.NodeSubject("n2")+`"`)
	})
	mu.Lock()
	defer mu.Unlock()
	if heard[node.NodeSubject("n2")] {
		t.Error("the agent's forged command reached the coordinator's subscription")
	}
}
