package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/embedded"
	"github.com/swarmckpt/swarmckpt/controlplane/etcdstore"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/controlplane/store/storetest"
)

// A real embedded etcd as the coordinator runs it (TLS, client certificates); the
// returned config reaches it with the client credentials. Each test gets its own key
// prefix.
func startEtcd(t *testing.T) etcdstore.Config {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := embedded.Start(ctx, embedded.Config{DataDir: t.TempDir(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("embedded etcd: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	cr := s.EtcdCredentials()
	if cr == nil {
		t.Fatal("embedded etcd runs without TLS by default")
	}
	return etcdstore.Config{Endpoints: s.EtcdEndpoints(), CAFile: cr.CA, CertFile: cr.Cert, KeyFile: cr.Key}
}

func TestEtcdConformance(t *testing.T) {
	base := startEtcd(t)
	n := 0
	storetest.Run(t, func(t *testing.T) (store.Store, func(string, []byte)) {
		n++
		prefix := fmt.Sprintf("/test%d/swarmckpt/v1", n)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cfg := base
		cfg.Prefix = prefix
		s, err := etcdstore.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		raw := func(id string, b []byte) {
			if _, err := s.Client().Put(context.Background(), prefix+"/snapshots/"+id, string(b)); err != nil {
				t.Fatal(err)
			}
		}
		return s, raw
	})
}

// A holder that dies (its client closed without unlocking) loses the stack lock after
// the TTL, and a later commit with that lock fails.
func TestEtcdLockExpiresWhenHolderDies(t *testing.T) {
	cfg := startEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dead, err := etcdstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dead.LockStack(ctx, "bank", "dead-coordinator", time.Second); err != nil {
		t.Fatal(err)
	}
	dead.Close() // keepalives stop, as with kill -9
	live, err := etcdstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := live.LockStack(ctx, "bank", "live", time.Second); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("lock right after the holder died: %v, want ErrLocked", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		l, err := live.LockStack(ctx, "bank", "live", time.Second)
		if err == nil {
			_ = l.Unlock(ctx)
			break
		}
		if !errors.Is(err, store.ErrLocked) || time.Now().After(deadline) {
			t.Fatalf("lock never expired: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: time.Second})
	if err == nil {
		t.Fatal("open of an unreachable etcd succeeded")
	}
}

// The embedded etcd requires a client certificate: a store opened without one fails
// and says which flags to give; half a certificate is refused before dialling.
func TestOpenWithoutCredentialsSaysWhatToGive(t *testing.T) {
	cfg := startEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: cfg.Endpoints, DialTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "--etcd-cert") {
		t.Fatalf("open without credentials: %v, want a refusal naming --etcd-cert", err)
	}
	_, err = etcdstore.Open(ctx, etcdstore.Config{Endpoints: cfg.Endpoints, CAFile: cfg.CAFile, DialTimeout: time.Second})
	if err == nil {
		t.Fatal("open with the CA but no client certificate succeeded")
	}
	_, err = etcdstore.Open(ctx, etcdstore.Config{Endpoints: cfg.Endpoints, CAFile: cfg.CAFile, CertFile: cfg.CertFile})
	if err == nil || !strings.Contains(err.Error(), "--etcd-key") {
		t.Fatalf("open with a certificate but no key: %v, want a refusal naming --etcd-key", err)
	}
}

// A worker registration is bound to a lease: the key carries it, and it is gone once
// the registering coordinator dies (its client closed: keepalives stop).
func TestEtcdWorkerRecordIsLeaseBound(t *testing.T) {
	cfg := startEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dead, err := etcdstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dead.RegisterWorker(ctx, store.Worker{Node: "n1"}, time.Second); err != nil {
		t.Fatal(err)
	}
	live, err := etcdstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	resp, err := live.Client().Get(ctx, "/swarmckpt/v1/workers/n1")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("worker record: %v %v", resp, err)
	}
	if resp.Kvs[0].Lease == 0 {
		t.Fatal("worker record has no lease")
	}
	dead.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ws, err := live.ListWorkers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker record outlived its coordinator: %+v", ws)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
