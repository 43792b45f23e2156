package etcdstore_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/swarmckpt/swarmckpt/controlplane/etcdstore"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/controlplane/store/storetest"
	"github.com/swarmckpt/swarmckpt/worker/pki"
)

func port(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The same conformance suite against a real external etcd process (Debian package
// etcd-server), as `swarmckpt coordinator --etcd ENDPOINTS` uses it.
func TestExternalEtcdConformance(t *testing.T) {
	binary, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("SKIP EXTERNAL ETCD: etcd not on PATH; install it with 'apt-get install etcd-server' to run this test")
	}
	cp, pp := port(t), port(t)
	client := fmt.Sprintf("http://127.0.0.1:%d", cp)
	peer := fmt.Sprintf("http://127.0.0.1:%d", pp)
	cmd := exec.Command(binary, "--name", "ext", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "ext="+peer, "--log-level", "error")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var probe *etcdstore.Store
	deadline := time.Now().Add(20 * time.Second)
	for probe == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		probe, err = etcdstore.Open(ctx, etcdstore.Config{Endpoints: []string{client}, DialTimeout: time.Second})
		cancel()
		if err != nil && time.Now().After(deadline) {
			t.Fatalf("external etcd not ready: %v", err)
		}
		if err != nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	probe.Close()
	n := 0
	storetest.Run(t, func(t *testing.T) (store.Store, func(string, []byte)) {
		n++
		prefix := fmt.Sprintf("/ext%d/swarmckpt/v1", n)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: []string{client}, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return s, func(id string, b []byte) {
			if _, err := s.Client().Put(context.Background(), prefix+"/snapshots/"+id, string(b)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// An external etcd with TLS and client-certificate auth (as `coordinator --etcd
// https://... --etcd-cacert --etcd-cert --etcd-key` reaches it): the store works with
// the credentials and is refused without the client certificate.
func TestExternalEtcdWithClientCertificates(t *testing.T) {
	binary, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("SKIP EXTERNAL ETCD: etcd not on PATH; install it with 'apt-get install etcd-server' to run this test")
	}
	dir := t.TempDir()
	ca, err := pki.NewCA("external etcd test CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile, _, err := ca.WriteCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files [2][2]string
	for i, name := range []string{"server", "client"} {
		n, err := ca.Issue(name, []net.IP{net.IPv4(127, 0, 0, 1)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if files[i][0], files[i][1], err = n.Write(dir, name); err != nil {
			t.Fatal(err)
		}
	}
	cp, pp := port(t), port(t)
	client := fmt.Sprintf("https://127.0.0.1:%d", cp)
	peer := fmt.Sprintf("http://127.0.0.1:%d", pp)
	cmd := exec.Command(binary, "--name", "ext", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "ext="+peer, "--log-level", "error",
		"--cert-file", files[0][0], "--key-file", files[0][1], "--trusted-ca-file", caFile, "--client-cert-auth")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	cfg := etcdstore.Config{Endpoints: []string{client}, CAFile: caFile, CertFile: files[1][0], KeyFile: files[1][1], DialTimeout: time.Second}
	var s *etcdstore.Store
	for deadline := time.Now().Add(20 * time.Second); s == nil; {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err = etcdstore.Open(ctx, cfg)
		cancel()
		if err != nil && time.Now().After(deadline) {
			t.Fatalf("external etcd with TLS not ready: %v", err)
		}
		if err != nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := s.LockStack(ctx, "bank", "test", 5*time.Second)
	if err != nil {
		t.Fatalf("lock over TLS: %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatalf("unlock over TLS: %v", err)
	}
	noCert := cfg
	noCert.CertFile, noCert.KeyFile = "", ""
	if _, err := etcdstore.Open(ctx, noCert); err == nil {
		t.Fatal("external etcd with --client-cert-auth accepted a store without a client certificate")
	}
}

// An external etcd with TLS and its own authentication (etcdctl auth enable), as
// `coordinator --etcd https://... --etcd-cacert --etcd-user U --etcd-password-file F`
// reaches it: the store works with the user's password; without credentials or with
// a wrong password it can neither read nor write.
func TestExternalEtcdWithTLSAndPassword(t *testing.T) {
	binary, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("SKIP EXTERNAL ETCD: etcd not on PATH; install it with 'apt-get install etcd-server' to run this test")
	}
	dir := t.TempDir()
	ca, err := pki.NewCA("external etcd test CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile, _, err := ca.WriteCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ca.Issue("server", []net.IP{net.IPv4(127, 0, 0, 1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := n.Write(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	cp, pp := port(t), port(t)
	client := fmt.Sprintf("https://127.0.0.1:%d", cp)
	peer := fmt.Sprintf("http://127.0.0.1:%d", pp)
	cmd := exec.Command(binary, "--name", "ext", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "ext="+peer, "--log-level", "error",
		"--cert-file", cert, "--key-file", key)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	open := func(cfg etcdstore.Config) (*etcdstore.Store, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return etcdstore.Open(ctx, cfg)
	}
	anon := etcdstore.Config{Endpoints: []string{client}, CAFile: caFile, DialTimeout: time.Second}
	var admin *etcdstore.Store
	for deadline := time.Now().Add(20 * time.Second); admin == nil; {
		admin, err = open(anon)
		if err != nil && time.Now().After(deadline) {
			t.Fatalf("external etcd with TLS not ready: %v", err)
		}
		if err != nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := admin.Client()
	if _, err := c.UserAdd(ctx, "root", "r00t-pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	admin.Close()

	withPw := anon
	withPw.Username, withPw.Password = "root", "r00t-pw"
	s, err := open(withPw)
	if err != nil {
		t.Fatalf("open with user and password: %v", err)
	}
	defer s.Close()
	l, err := s.LockStack(ctx, "bank", "test", 5*time.Second)
	if err != nil {
		t.Fatalf("lock with user and password: %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if err := s.Create(ctx, &store.Manifest{ID: "s1", Stack: "bank", State: store.StatePreparing}); err != nil {
		t.Fatalf("create with user and password: %v", err)
	}
	if _, err := open(anon); err == nil {
		t.Error("etcd with auth enabled was opened without credentials")
	}
	wrong := withPw
	wrong.Password = "guess"
	if _, err := open(wrong); err == nil {
		t.Error("etcd with auth enabled was opened with a wrong password")
	}
	// A client without credentials can neither read the manifest nor write.
	pool := x509.NewCertPool()
	b, err := os.ReadFile(caFile)
	if err != nil || !pool.AppendCertsFromPEM(b) {
		t.Fatalf("CA %s: %v", caFile, err)
	}
	raw, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: time.Second, TLS: &tls.Config{RootCAs: pool}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if r, err := raw.Get(ctx, etcdstore.DefaultPrefix, clientv3.WithPrefix()); err == nil {
		t.Errorf("read without credentials: %d keys", len(r.Kvs))
	}
	if _, err := raw.Put(ctx, etcdstore.DefaultPrefix+"/snapshots/forged", "{}"); err == nil {
		t.Error("wrote without credentials")
	}
}
