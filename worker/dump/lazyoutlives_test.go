package dump_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
)

// TestLazyPageServerOutlivesItsCaller: the page server of a post-copy dump (runc
// checkpoint --lazy-pages and its CRIU) keeps serving after the context of the call
// that started it ended: that call is the agent's dump request, made for a
// coordinator's migration, and the coordinator may die during the post-copy window
// while the restored container still fetches its pages. Here runc is a stand-in that
// reports the page server ready, then "serves" until the test lets it finish.
func TestLazyPageServerOutlivesItsCaller(t *testing.T) {
	dir := t.TempDir()
	finish := filepath.Join(dir, "finish")
	runc := filepath.Join(dir, "runc")
	script := fmt.Sprintf("#!/bin/sh\nprintf x >&3\nexec 3>&-\nwhile [ ! -e %q ]; do sleep 0.01; done\n", finish)
	if err := os.WriteFile(runc, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	r := &dump.Runc{Runc: runc, Root: dir, CRIU: "true"}
	set := filepath.Join(dir, "sets", "m.echo.1")
	ctx, cancel := context.WithCancel(context.Background())
	m, err := r.Dump(ctx, container.Ref{ID: "c-echo", Name: "echo"}, container.Spec{}, set, dump.Options{PageServer: "127.0.0.1:1", LeaveRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.LazyPages != "127.0.0.1:1" {
		t.Fatalf("manifest LazyPages %q, want the page server's address", m.LazyPages)
	}
	cancel() // the caller is gone
	l, ok := r.LazyOf(set)
	if !ok {
		t.Fatal("no page server once its dump returned")
	}
	done := make(chan error, 1)
	go func() { done <- l.Wait() }()
	// A page server tied to the context would be killed at once: give that a moment
	// to show (nothing to poll for what must not happen).
	select {
	case err := <-done:
		t.Fatalf("the page server ended with its caller's context: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, ok := r.LazyOf(set); !ok {
		t.Fatal("the page server was forgotten when its caller's context ended")
	}
	if err := os.WriteFile(finish, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the page server served its last page but reports %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the page server did not end within 10 s of its last page")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := r.LazyOf(set); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ended page server is still listed 5 s later")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
