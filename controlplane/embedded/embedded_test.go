package embedded_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/swarmckpt/swarmckpt/controlplane/embedded"
	"github.com/swarmckpt/swarmckpt/controlplane/natsbus"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func start(t *testing.T, dir string) *embedded.Servers {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := embedded.Config{DataDir: dir, Log: quiet()} // ports 0: free ports
	s, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return s
}

func TestEmbeddedServersWithTokenAndPersistence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := start(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode = %v, %v; want 0700", st.Mode().Perm(), err)
	}
	tst, err := os.Stat(embedded.TokenPath(dir))
	if err != nil || tst.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode = %v, %v; want 0600", tst.Mode().Perm(), err)
	}
	if len(s.Token()) < 32 {
		t.Fatalf("token %q too short", s.Token())
	}

	// NATS: the token file works, no token is refused.
	tr, err := natsbus.Connect(ctx, natsbus.Config{URL: s.NATSURL(), TokenFile: embedded.TokenPath(dir), Log: quiet()})
	if err != nil {
		t.Fatalf("connect with token file: %v", err)
	}
	tr.Close()
	if _, err := natsbus.Connect(ctx, natsbus.Config{URL: s.NATSURL(), Log: quiet()}); err == nil {
		t.Fatal("embedded NATS accepted a client without the token")
	}

	// etcd: write a key.
	cli, err := clientv3.New(clientv3.Config{Endpoints: s.EtcdEndpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/swarmckpt/test", "kept"); err != nil {
		t.Fatalf("etcd put: %v", err)
	}
	cli.Close()
	token := s.Token()
	s.Close()

	// Restart on the same data dir: same token, the key survived.
	s2 := start(t, dir)
	defer s2.Close()
	if s2.Token() != token {
		t.Fatal("token changed across restarts; workers would lose access")
	}
	cli, err = clientv3.New(clientv3.Config{Endpoints: s2.EtcdEndpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "/swarmckpt/test")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
		t.Fatalf("after restart: %v %v; want the key persisted", resp, err)
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
