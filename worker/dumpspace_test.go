package worker_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/dump"
)

// TestCheckSpaceRefusesDumpsThatDoNotFit: the worker estimates each dump by its
// container's memory in use (Parts.Memory) and refuses, before anything is held,
// dumps whose sets would not fit in the free space of its sets directory's file
// system (real statfs of the test's temporary directory), in-process and over HTTP,
// with reason no_space and a message naming the node, the directory, the containers
// and what to do. Dumps that fit pass.
func TestCheckSpaceRefusesDumpsThatDoNotFit(t *testing.T) {
	mem := map[int]int64{42: 1 << 50, 43: 1 << 20} // 1 PiB: no test machine's disk holds it
	n := newFakeNodeParts(t, "n1", dump.Fake{}, nil, func(p *worker.Parts) {
		p.Memory = func(pid int) (int64, error) { return mem[pid], nil }
	})
	n.add("big", 42)
	n.add("small", 43)
	ctx := context.Background()
	for name, sc := range map[string]worker.SpaceChecker{"worker": n.w, "client": &worker.Client{Addr: n.w.Addr()}} {
		if err := sc.CheckSpace(ctx, []worker.SpaceDump{{Container: "small", Label: "web.1"}}); err != nil {
			t.Errorf("%s: 1 MiB of memory refused: %v", name, err)
		}
		err := sc.CheckSpace(ctx, []worker.SpaceDump{{Container: "small", Label: "web.1"}, {Container: "big", Label: "db.1"}})
		// In-process the error matches ENOSPC; over HTTP it crosses as reason no_space.
		if want := map[string]error{"worker": syscall.ENOSPC, "client": node.ErrNoSpace}[name]; !errors.Is(err, want) {
			t.Errorf("%s: 1 PiB of memory: err = %v, want one matching %v", name, err, want)
			continue
		}
		for _, want := range []string{"node n1", n.w.SetsDir(), "db.1 1048576.0 GiB in memory, web.1 1.0 MiB in memory", "free", "swarmckpt rm"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: message lacks %q: %v", name, want, err)
			}
		}
	}
	if err := n.w.CheckSpace(ctx, []worker.SpaceDump{{Container: "nosuch"}}); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("a container that is not here: %v, want an error naming it", err)
	}
	if h, err := n.w.Holds(ctx); err != nil || len(h) != 0 {
		t.Errorf("holds after the checks: %v, %v; want none", h, err)
	}
}
