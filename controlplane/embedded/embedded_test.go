package embedded_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/swarmckpt/swarmckpt/controlplane/embedded"
	"github.com/swarmckpt/swarmckpt/controlplane/natsauth"
	"github.com/swarmckpt/swarmckpt/controlplane/natsbus"
	"github.com/swarmckpt/swarmckpt/worker/pki"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startCfg(t *testing.T, cfg embedded.Config) (*embedded.Servers, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg.Log = quiet() // ports 0: free ports
	return embedded.Start(ctx, cfg)
}

func start(t *testing.T, dir string) *embedded.Servers {
	t.Helper()
	s, err := startCfg(t, embedded.Config{DataDir: dir})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return s
}

// client dials the embedded etcd with tc (nil: plain, no TLS).
func client(t *testing.T, eps []string, tc *tls.Config) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, TLS: tc, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func credentialed(t *testing.T, s *embedded.Servers) *clientv3.Client {
	t.Helper()
	cr := s.EtcdCredentials()
	if cr == nil {
		t.Fatal("the embedded etcd runs without TLS by default")
	}
	pair, err := tls.LoadX509KeyPair(cr.Cert, cr.Key)
	if err != nil {
		t.Fatal(err)
	}
	return client(t, s.EtcdEndpoints(), &tls.Config{RootCAs: caPool(t, cr.CA), Certificates: []tls.Certificate{pair}})
}

func caPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("%s: no certificate", file)
	}
	return pool
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestEmbeddedServersWithUsersAndPersistence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := start(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if m := mode(t, dir); m != 0o700 {
		t.Fatalf("data dir mode = %v; want 0700", m)
	}
	users := natsauth.Dir(dir)
	if m := mode(t, users); m != 0o700 {
		t.Fatalf("NATS users dir mode = %v; want 0700", m)
	}
	for _, f := range []string{natsauth.UserFile(users, natsauth.RoleCoordinator), natsauth.UserFile(users, natsauth.RoleCLI), natsauth.KeyFile(users)} {
		if m := mode(t, f); m != 0o600 {
			t.Fatalf("%s mode = %v; want 0600", f, m)
		}
	}

	// NATS: TLS with the CA and the CLI's user file works; no user is refused.
	tr, err := natsbus.Connect(ctx, natsbus.Config{URL: s.NATSURL(), UserFile: natsauth.UserFile(users, natsauth.RoleCLI), CAFile: embedded.NATSCAPath(dir), Log: quiet()})
	if err != nil {
		t.Fatalf("connect with the CLI's user file: %v", err)
	}
	tr.Close()
	if _, err := natsbus.Connect(ctx, natsbus.Config{URL: s.NATSURL(), CAFile: embedded.NATSCAPath(dir), Log: quiet()}); err == nil {
		t.Fatal("embedded NATS accepted a client without credentials")
	}
	coordCreds, _, err := s.NATSCredentials(natsauth.RoleCoordinator, "")
	if err != nil {
		t.Fatal(err)
	}

	// etcd: write a key with the credentials.
	if _, err := credentialed(t, s).Put(ctx, "/swarmckpt/test", "kept"); err != nil {
		t.Fatalf("etcd put: %v", err)
	}
	creds := *s.EtcdCredentials()
	s.Close()

	// Restart on the same data dir: same NATS users and etcd credentials, the key survived.
	s2 := start(t, dir)
	defer s2.Close()
	if c, _, err := s2.NATSCredentials(natsauth.RoleCoordinator, ""); err != nil || c != coordCreds {
		t.Fatal("NATS credentials changed across restarts; agents and the CLI would lose access")
	}
	if *s2.EtcdCredentials() != creds {
		t.Fatalf("etcd credentials moved across restarts: %+v, then %+v", creds, *s2.EtcdCredentials())
	}
	resp, err := credentialed(t, s2).Get(ctx, "/swarmckpt/test")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
		t.Fatalf("after restart: %v %v; want the key persisted", resp, err)
	}
}

// Issue 21 §3: a local process without the coordinator's credentials can neither read
// manifests, nor forge or delete keys, nor plant a stack lock, nor add a member. With
// the credentials everything works. The credentials are 0600 in a 0700 directory.
func TestEtcdRefusesClientsWithoutCredentials(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := start(t, dir)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cr := s.EtcdCredentials()
	tlsDir := filepath.Dir(cr.Key)
	if m := mode(t, tlsDir); m != 0o700 {
		t.Fatalf("etcd credentials directory %s: mode %v, want 0700", tlsDir, m)
	}
	entries, err := os.ReadDir(tlsDir)
	if err != nil || len(entries) < 6 {
		t.Fatalf("etcd credentials directory holds %d files (%v), want the CA, server and client pairs", len(entries), err)
	}
	for _, e := range entries {
		if m := mode(t, filepath.Join(tlsDir, e.Name())); m != 0o600 {
			t.Errorf("%s: mode %v, want 0600", e.Name(), m)
		}
	}
	for _, ep := range s.EtcdEndpoints() {
		if !strings.HasPrefix(ep, "https://") {
			t.Fatalf("etcd endpoint %s is not https", ep)
		}
	}

	const manifest, lock = "/swarmckpt/v1/snapshots/s1", "/swarmckpt/v1/stacks/bank/lock"
	good := credentialed(t, s)
	if _, err := good.Put(ctx, manifest, `{"id":"s1","spec":"secret"}`); err != nil {
		t.Fatalf("put with credentials: %v", err)
	}

	// A CA and client certificate of someone else's making.
	other, err := pki.NewCA("intruder")
	if err != nil {
		t.Fatal(err)
	}
	node, err := other.Issue("intruder", nil, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	otherDir := t.TempDir()
	oc, ok, err := node.Write(otherDir, "intruder")
	if err != nil {
		t.Fatal(err)
	}
	foreignPair, err := tls.LoadX509KeyPair(oc, ok)
	if err != nil {
		t.Fatal(err)
	}
	plainEPs := make([]string, 0, len(s.EtcdEndpoints()))
	for _, ep := range s.EtcdEndpoints() {
		plainEPs = append(plainEPs, "http://"+strings.TrimPrefix(ep, "https://"))
	}
	intruders := map[string]*clientv3.Client{
		"plain (no TLS)":                         client(t, plainEPs, nil),
		"TLS with the CA, no client cert":        client(t, s.EtcdEndpoints(), &tls.Config{RootCAs: caPool(t, cr.CA)}),
		"TLS with a cert of another CA":          client(t, s.EtcdEndpoints(), &tls.Config{RootCAs: caPool(t, cr.CA), Certificates: []tls.Certificate{foreignPair}}),
		"TLS, server unverified, no client cert": client(t, s.EtcdEndpoints(), &tls.Config{InsecureSkipVerify: true}),
	}
	// Every attempt at once (each fails at the TLS handshake or runs into its timeout).
	var wg sync.WaitGroup
	for name, cli := range intruders {
		op := func(what string, f func(context.Context) error) {
			wg.Go(func() {
				octx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				if err := f(octx); err == nil {
					t.Errorf("%s: %s succeeded", name, what)
				}
			})
		}
		op("reading a manifest", func(c context.Context) error {
			r, err := cli.Get(c, manifest)
			if err == nil && len(r.Kvs) > 0 {
				t.Errorf("%s read %s: %q", name, manifest, r.Kvs[0].Value)
			}
			return err
		})
		op("forging a manifest", func(c context.Context) error {
			_, err := cli.Put(c, "/swarmckpt/v1/snapshots/forged", "{}")
			return err
		})
		op("deleting a manifest", func(c context.Context) error { _, err := cli.Delete(c, manifest); return err })
		op("planting a stack lock", func(c context.Context) error { _, err := cli.Put(c, lock, "intruder"); return err })
		op("adding a member", func(c context.Context) error {
			_, err := cli.MemberAdd(c, []string{"https://127.0.0.1:1"})
			return err
		})
	}
	wg.Wait()

	// Nothing changed, and the coordinator's client still works.
	r, err := good.Get(ctx, "/swarmckpt/", clientv3.WithPrefix())
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Key) != manifest {
		t.Fatalf("keys after the intruders: %v %v, want only %s", r, err, manifest)
	}
	ml, err := good.MemberList(ctx)
	if err != nil || len(ml.Members) != 1 {
		t.Fatalf("members after the intruders: %v %v, want one", ml, err)
	}
	if _, err := good.Put(ctx, lock, "coordinator"); err != nil {
		t.Fatalf("lock with credentials: %v", err)
	}
	if _, err := good.Delete(ctx, lock); err != nil {
		t.Fatalf("unlock with credentials: %v", err)
	}
}

// A coordinator restarted on its data dir works; once someone (here: with the
// credentials, to simulate) has added a dead member, the start is refused at once with
// ErrForeignMember saying what to do, and --etcd-force-new-cluster recovers the data.
func TestForeignMemberRefusedAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := start(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := credentialed(t, s).Put(ctx, "/swarmckpt/v1/snapshots/keep", "kept"); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, embedded.MembersPath(dir)); m != 0o600 {
		t.Fatalf("membership record: mode %v, want 0600", m)
	}
	s.Close()

	s = start(t, dir) // a plain restart
	cli := credentialed(t, s)
	added, err := cli.MemberAdd(ctx, []string{"https://127.0.0.1:1"})
	if err != nil {
		t.Fatalf("member add with credentials: %v", err)
	}
	s.Close()

	began := time.Now()
	_, err = startCfg(t, embedded.Config{DataDir: dir, StartTimeout: 45 * time.Second})
	if !errors.Is(err, embedded.ErrForeignMember) || !errors.Is(err, embedded.ErrStart) {
		t.Fatalf("start with a foreign member: %v, want ErrForeignMember", err)
	}
	for _, want := range []string{strconv.FormatUint(added.Member.ID, 16), "--etcd-force-new-cluster", filepath.Join(dir, "etcd")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not name %q: %v", want, err)
		}
	}
	t.Logf("refusal: %v", err)
	if d := time.Since(began); d > 20*time.Second {
		t.Errorf("the refusal took %s: it waited for a quorum it cannot get", d)
	}

	s, err = startCfg(t, embedded.Config{DataDir: dir, ForceNewCluster: true})
	if err != nil {
		t.Fatalf("start with ForceNewCluster: %v", err)
	}
	cli = credentialed(t, s)
	r, err := cli.Get(ctx, "/swarmckpt/v1/snapshots/keep")
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("after the recovery: %v %v, want the key kept", r, err)
	}
	s.Close()
	s = start(t, dir) // and normal starts work again
	s.Close()
}

// A data dir of a coordinator that ran its etcd without TLS (or of an older version,
// without a membership record) starts with TLS and records its member.
func TestPlainDataDirStartsWithTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := startCfg(t, embedded.Config{DataDir: dir, NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.EtcdCredentials() != nil || !strings.HasPrefix(s.EtcdEndpoints()[0], "http://") {
		t.Fatalf("NoAuth: credentials %v, endpoints %v; want plain", s.EtcdCredentials(), s.EtcdEndpoints())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client(t, s.EtcdEndpoints(), nil).Put(ctx, "/swarmckpt/v1/x", "kept"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Remove(embedded.MembersPath(dir)); err != nil {
		t.Fatal(err)
	}
	s = start(t, dir)
	defer s.Close()
	r, err := credentialed(t, s).Get(ctx, "/swarmckpt/v1/x")
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("after switching to TLS: %v %v, want the key kept", r, err)
	}
	if _, err := os.Stat(embedded.MembersPath(dir)); err != nil {
		t.Fatalf("membership not recorded: %v", err)
	}
}

func TestValidate(t *testing.T) {
	if err := (embedded.Config{}).Validate(); err == nil {
		t.Fatal("empty data dir accepted")
	}
	if err := (embedded.Config{DataDir: "x", NATSPort: 70000}).Validate(); err == nil {
		t.Fatal("port 70000 accepted")
	}
}

// With NoNATS (the coordinator uses an external NATS) only etcd runs: no NATS users
// or certificate are made, so that clients of this data directory do not take them
// for the external server's.
func TestNoNATSRunsEtcdOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := startCfg(t, embedded.Config{DataDir: dir, NoNATS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.NATSURL() != "" {
		t.Fatalf("NoNATS: NATS URL %q", s.NATSURL())
	}
	if _, err := os.Stat(natsauth.Dir(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("NoNATS made NATS users: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := credentialed(t, s).Put(ctx, "/swarmckpt/v1/x", "y"); err != nil {
		t.Fatalf("etcd with NoNATS: %v", err)
	}
}
