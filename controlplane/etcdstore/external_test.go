package etcdstore_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/etcdstore"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/controlplane/store/storetest"
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
