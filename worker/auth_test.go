package worker_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

func newTokenNode(t *testing.T, name, token string, dumper dump.Dumper) *fakeNode {
	t.Helper()
	return newFakeNodeConfig(t, name, dumper, func(c *worker.Config) { c.Token = token })
}

// Without the token, or with another, nothing reaches the worker: the caller gets
// ErrUnauthorized with what to do, and the container is untouched.
func TestWorkerRefusesRequestsWithoutItsToken(t *testing.T) {
	n := newTokenNode(t, "n1", "s3cret", dump.Fake{})
	web := n.add("web", 7)
	ctx := context.Background()
	for _, tok := range []string{"", "wrong", "s3cret2", "s3cre"} {
		err := (&worker.Client{Addr: n.w.Addr(), Token: tok}).Lock(ctx, "web", nil, time.Now().Add(time.Minute))
		if !errors.Is(err, worker.ErrUnauthorized) || !strings.Contains(err.Error(), "--token-file") {
			t.Fatalf("Lock with token %q: %v, want ErrUnauthorized naming --token-file", tok, err)
		}
		if err := (&worker.Client{Addr: n.w.Addr(), Token: tok}).CheckDump(ctx, "web"); !errors.Is(err, worker.ErrUnauthorized) {
			t.Fatalf("CheckDump with token %q: %v, want ErrUnauthorized", tok, err)
		}
	}
	released(t, n, web)
	// The transfer routes too: no set is received, no page server opened.
	for _, r := range []struct{ method, path string }{
		{http.MethodPut, "/v1/sets/forged"},
		{http.MethodPost, "/v1/sets/forged/pages"},
		{http.MethodDelete, "/v1/containers/web"},
	} {
		req, _ := http.NewRequest(r.method, "http://"+n.w.Addr()+r.path, strings.NewReader("x"))
		req.Header.Set("Authorization", "Bearer wrong")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s %s with a wrong token: %s, want 401", r.method, r.path, resp.Status)
		}
	}
	if entries, _ := os.ReadDir(n.w.SetsDir()); len(entries) != 0 {
		t.Fatalf("sets after refused requests: %v", entries)
	}
	if _, err := n.insp.Resolve(ctx, "web"); err != nil {
		t.Fatalf("container gone after a refused DELETE: %v", err)
	}
	// With the token it works.
	c := &worker.Client{Addr: n.w.Addr(), Token: "s3cret"}
	if err := c.Lock(ctx, "web", nil, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if h, ok, _ := (watchdog.Journal{Dir: n.journal}).Get(web.ID); !ok || !h.Locked {
		t.Fatalf("hold after an authorized Lock: %+v %v", h, ok)
	}
	if err := c.Unlock(ctx, "web", nil); err != nil {
		t.Fatal(err)
	}
}

// Workers of one cluster send their token to each other: Send, DumpTo and DumpInto
// work between them, and a worker with another token refuses them.
func TestWorkersSendTheirTokenToEachOther(t *testing.T) {
	k := &killRecorder{}
	a, b := newTokenNode(t, "a", "cluster", k), newTokenNode(t, "b", "cluster", dump.Fake{})
	other := newTokenNode(t, "other", "another", dump.Fake{})
	ctx := context.Background()
	a.add("web", 7)
	a.add("api", 8)
	a.add("db", 9)
	if _, err := a.w.Dump(ctx, "web", "s.web", true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.w.Send(ctx, "s.web", other.w.Addr()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Send to a worker with another token: %v, want 401", err)
	}
	if _, err := a.w.Send(ctx, "s.web", b.w.Addr()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.w.DumpInto(ctx, "api", "s.api", other.w.Addr()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("DumpInto a worker with another token: %v, want 401", err)
	}
	if _, err := a.w.DumpTo(ctx, "db", "refused.db", other.w.Addr(), true); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("DumpTo a worker with another token: %v, want 401", err)
	}
	if _, err := a.w.DumpInto(ctx, "api", "s.api", b.w.Addr()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.w.DumpTo(ctx, "db", "s.db", b.w.Addr(), true); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s.web", "s.api", "s.db"} {
		if err := b.w.AwaitDigests(ctx, id); err != nil { // s.api: its pages are hashed later
			t.Fatal(err)
		}
		if _, err := imageset.Verify(filepath.Join(b.w.SetsDir(), id)); err != nil {
			t.Fatalf("set %s on b: %v", id, err)
		}
	}
	emptySets(t, other)
}

func TestTokenFiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "worker.token")
	tok, err := worker.WriteNewTokenFile(f)
	if err != nil || len(tok) < 32 {
		t.Fatalf("new token %q: %v", tok, err)
	}
	if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	if again, err := worker.WriteNewTokenFile(f); err != nil || again != tok {
		t.Fatalf("second WriteNewTokenFile: %q %v, want the same token", again, err)
	}
	if got, err := worker.ReadTokenFile(f); err != nil || got != tok {
		t.Fatalf("ReadTokenFile: %q %v", got, err)
	}
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := worker.ReadTokenFile(f); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token file: %v, want a refusal saying chmod 600", err)
	}
	if _, err := worker.WriteNewTokenFile(f); err == nil {
		t.Fatal("WriteNewTokenFile accepted a world-readable token file")
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := worker.ReadTokenFile(empty); err == nil {
		t.Fatal("empty token file accepted")
	}
	if _, err := worker.ReadTokenFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing token file: %v", err)
	}
}
