package agent

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// lazyDumper records the options of DumpWith and answers it with a plain held dump
// of the fake (which has no page server).
type lazyDumper struct {
	*worker.Fake
	opts []worker.DumpOptions
}

func (d *lazyDumper) DumpWith(ctx context.Context, name, set string, o worker.DumpOptions) (*imageset.Manifest, error) {
	d.opts = append(d.opts, o)
	return d.Dump(ctx, name, set, true)
}

// A post-copy migration's dump (Target.PostCopy) is the worker's held lazy dump with
// a page server on this node's transfer host (any free port), keeps the set (without
// pages) here, and is refused for a container that is not parked or when the worker
// names no host.
func TestDumpPostCopyIsTheHeldLazyDump(t *testing.T) {
	c := node.Target{ID: "ctr1", Node: "n1", PostCopy: true}
	newAgent := func(addr string) (*Agent, *lazyDumper, *worker.Fake) {
		w := worker.NewFake("n1")
		w.TransferAddr = addr
		d := &lazyDumper{Fake: w}
		roles := w.Roles()
		roles.Dumper = d
		info, _ := w.Info(context.Background())
		return &Agent{cfg: Config{Node: "n1", Worker: roles}, info: info, log: slog.New(slog.NewTextHandler(io.Discard, nil))}, d, w
	}

	a, d, w := newAgent("10.0.0.5:7001")
	st, err := a.dump(context.Background(), "s1", c, true, "")
	if err != nil {
		t.Fatal(err)
	}
	want := worker.DumpOptions{LeaveRunning: true, Lazy: "10.0.0.5:0"}
	if len(d.opts) != 1 || d.opts[0] != want {
		t.Fatalf("DumpWith options %+v, want one call with %+v", d.opts, want)
	}
	if !w.HasSet("s1.ctr1") || st.Images == nil || st.Images.Node != "n1" {
		t.Fatalf("set kept here: %v, images %+v: want the set on n1", w.HasSet("s1.ctr1"), st.Images)
	}
	if len(w.Stopped()) != 0 {
		t.Fatalf("a post-copy dump ended its parked container: %v", w.Stopped())
	}

	a, d, _ = newAgent("10.0.0.5:7001")
	if _, err := a.dump(context.Background(), "s2", c, false, ""); err == nil || !strings.Contains(err.Error(), "parked") || len(d.opts) != 0 {
		t.Fatalf("post-copy dump of a container that is not parked: %v (calls %d), want a refusal before any dump", err, len(d.opts))
	}
	a, d, _ = newAgent("")
	if _, err := a.dump(context.Background(), "s3", c, true, ""); err == nil || !strings.Contains(err.Error(), "--addr") || len(d.opts) != 0 {
		t.Fatalf("post-copy dump without a transfer address: %v (calls %d), want a refusal naming --addr", err, len(d.opts))
	}
}

// Releasing a parked post-copy source (an aborted migration) stops its page server
// before it runs on; releasing any other parked container does not touch one.
func TestUnparkStopsThePageServerOfAPostCopySource(t *testing.T) {
	w := worker.NewFake("n1")
	a := &Agent{cfg: Config{Node: "n1", Worker: w.Roles()}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	pc := node.Target{ID: "ctr1", Service: "web", Slot: 1, Node: "n1", PostCopy: true}
	plain := node.Target{ID: "ctr2", Node: "n1"}
	for _, tg := range []node.Target{pc, plain} {
		if err := w.Freeze(ctx, tg.ID, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		a.parked.add("s1", tg)
	}
	if !slices.Contains(w.Held(), "frozen:"+pc.ID) {
		t.Fatalf("held %v, want the parked post-copy source frozen", w.Held())
	}
	if err := a.unpark(ctx, "s1", plain.ID); err != nil {
		t.Fatal(err)
	}
	if got := w.LazyCancelled(); len(got) != 0 {
		t.Fatalf("releasing a plain parked container stopped page servers %v", got)
	}
	if err := a.unpark(ctx, "s1", pc.ID); err != nil {
		t.Fatal(err)
	}
	if got := w.LazyCancelled(); !slices.Equal(got, []string{"s1.web.1"}) {
		t.Fatalf("page servers stopped %v, want [s1.web.1]", got)
	}
	if slices.Contains(w.Held(), "frozen:"+pc.ID) {
		t.Fatalf("the post-copy source is still held after its release: %v", w.Held())
	}
}
