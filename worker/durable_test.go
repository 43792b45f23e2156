package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// syncs records the sets a worker made durable, failing for those fail names.
type syncs struct {
	mu   sync.Mutex
	done []string
	fail string // base name of a set whose sync fails ("" none)
}

func (s *syncs) sync(set string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != "" && filepath.Base(set) == s.fail {
		return errors.New("fsync: input/output error")
	}
	s.done = append(s.done, set)
	return imageset.Sync(set)
}

func (s *syncs) synced(set string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.done {
		if d == set {
			return true
		}
	}
	return false
}

func withSync(s *syncs) func(*worker.Parts) {
	return func(p *worker.Parts) { p.Sync = s.sync }
}

// TestReceivedSetIsDurableBeforeItIsReported: a received set is synced to disk under
// its final name before the sender hears of it; one that cannot be synced is refused
// and nothing of it is kept.
func TestReceivedSetIsDurableBeforeItIsReported(t *testing.T) {
	ctx := context.Background()
	bs := &syncs{}
	a, b := newFakeNode(t, "a"), newFakeNodeParts(t, "b", dump.Fake{}, nil, withSync(bs))
	a.add("web", 7)
	a.add("api", 8)
	for _, c := range []string{"web", "api"} {
		if _, err := a.w.Dump(ctx, c, "s."+c, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.w.Send(ctx, "s.web", b.w.Addr()); err != nil {
		t.Fatal(err)
	}
	if final := filepath.Join(b.w.SetsDir(), "s.web"); !bs.synced(final) {
		t.Fatalf("received set %s reported before it was synced (synced: %v)", final, bs.done)
	}
	bs.mu.Lock()
	bs.fail = "s.api"
	bs.mu.Unlock()
	_, err := a.w.Send(ctx, "s.api", b.w.Addr())
	if err == nil || !strings.Contains(err.Error(), "s.api") || !strings.Contains(err.Error(), "disk full or failing") {
		t.Fatalf("send whose receiver cannot sync: %v, want an error naming the set and the disk", err)
	}
	if _, err := imageset.Verify(filepath.Join(b.w.SetsDir(), "s.api")); err == nil {
		t.Fatal("the receiver kept a set it could not make durable")
	}
}

// TestDumpThatCannotSyncIsDropped: a dump whose set cannot be synced fails, names the
// disk, leaves the container running and keeps no set.
func TestDumpThatCannotSyncIsDropped(t *testing.T) {
	a := newFakeNodeParts(t, "a", dump.Fake{}, nil, withSync(&syncs{fail: "s.web"}))
	web := a.add("web", 7)
	_, err := a.w.Dump(context.Background(), "web", "s.web", true)
	if err == nil || !strings.Contains(err.Error(), "web") || !strings.Contains(err.Error(), "disk full or failing") {
		t.Fatalf("dump that cannot be synced: %v, want an error naming the container and the disk", err)
	}
	released(t, a, web)
	emptySets(t, a)
}

// TestSetDroppedWhileArrivingIsNotKept: a drop asked for while a set still arrives (a
// dump that ended after its snapshot was aborted and collected, streaming into the
// target) makes the receiver refuse it at its end, over HTTP with 410 Gone, and keep
// nothing; the same set id is received normally afterwards (a later restore).
func TestSetDroppedWhileArrivingIsNotKept(t *testing.T) {
	ctx := context.Background()
	a, b := newFakeNode(t, "a"), newFakeNode(t, "b")
	a.add("web", 7)
	if _, err := a.w.Dump(ctx, "web", "s.web", true); err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	if err := imageset.Send(&stream, filepath.Join(a.w.SetsDir(), "s.web")); err != nil {
		t.Fatal(err)
	}
	half := stream.Len() / 2
	for _, via := range []string{"Receive", "HTTP"} {
		t.Run(via, func(t *testing.T) {
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() {
				if via == "Receive" {
					_, err := b.w.Receive(ctx, "s.web", pr)
					done <- err
					return
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+b.w.Addr()+"/v1/sets/s.web", pr)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					done <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				done <- fmt.Errorf("%d %s", resp.StatusCode, body)
			}()
			if _, err := pw.Write(stream.Bytes()[:half]); err != nil {
				t.Fatal(err)
			}
			// The set is arriving once the receiver made its directory.
			incoming := filepath.Join(b.w.SetsDir(), ".incoming-s.web")
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if _, err := os.Stat(incoming); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s never appeared", incoming)
				}
			}
			if err := b.w.DropSet(ctx, "s.web"); err != nil {
				t.Fatal(err)
			}
			_, _ = pw.Write(stream.Bytes()[half:])
			pw.Close()
			err := <-done
			switch {
			case via == "Receive" && !errors.Is(err, worker.ErrDroppedWhileArriving):
				t.Fatalf("receive of a set dropped meanwhile: %v, want ErrDroppedWhileArriving", err)
			case via == "HTTP" && (err == nil || !strings.HasPrefix(err.Error(), "410 ") || !strings.Contains(err.Error(), "dropped while it arrived")):
				t.Fatalf("PUT of a set dropped meanwhile answered %v, want 410 and the reason", err)
			}
			emptySets(t, b)
		})
	}
	if _, err := a.w.Send(ctx, "s.web", b.w.Addr()); err != nil {
		t.Fatalf("a later send of the same set: %v", err)
	}
	if _, err := imageset.Verify(filepath.Join(b.w.SetsDir(), "s.web")); err != nil {
		t.Fatalf("a later send of the same set kept nothing: %v", err)
	}
}

// TestDropClosesAPageServerOfTheSet: a drop of a set whose page server is open (a
// DumpInto that has not connected yet) closes it and removes what it received.
func TestDropClosesAPageServerOfTheSet(t *testing.T) {
	b := newFakeNode(t, "b")
	addr, err := b.w.ReceivePages("mig.web", netip.MustParseAddr("127.0.0.1"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.w.DropSet(context.Background(), "mig.web"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.w.SetsDir(), ".pages-mig.web")); !os.IsNotExist(err) {
		t.Fatalf("page directory after the drop: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("page server %s still accepts after the drop", addr)
	}
}
