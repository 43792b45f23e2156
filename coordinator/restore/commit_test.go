package restore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// commitNodes records the restore calls of AgentRestorer, in order.
type commitNodes struct {
	Nodes
	mu    sync.Mutex
	calls []string
}

func (n *commitNodes) note(f string, a ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, fmt.Sprintf(f, a...))
}

func (n *commitNodes) Restore(_ context.Context, nodeName string, req node.RestoreRequest) (*node.RestoreReply, error) {
	n.note("restore %s %s locked=%v", nodeName, req.Options.Name, req.Options.Locked)
	return &node.RestoreReply{Container: req.Options.Name}, nil
}

func (n *commitNodes) Unlock(_ context.Context, nodeName string, ids []string) error {
	n.note("unlock %s %s", nodeName, strings.Join(ids, ","))
	return nil
}

func (n *commitNodes) Remove(_ context.Context, nodeName string, ids []string) error {
	n.note("remove %s %s", nodeName, strings.Join(ids, ","))
	return nil
}

// TestCommitBeforeUnlock: with WithCommit, even one container alone is restored
// network-locked, and the commit (a migration's journal step "restored") comes after
// the restore and before the unlock: a coordinator that dies in between leaves a
// journal its follower rolls forward, never a running copy it would put back beside the
// original (seed 2 of the fault campaign: a partial migration of one holder, the
// coordinator killed after its restore: bank created money). A failed commit undoes the
// restore instead of unlocking it.
func TestCommitBeforeUnlock(t *testing.T) {
	m := &store.Manifest{ID: "bank-1", Stack: "bank", Containers: []store.Container{
		{Service: "bank_holder", Slot: 1, Node: "n1", Images: &store.ImageSet{Node: "n2"}}}}
	targets := map[string]string{"bank_holder.1": "n2"}
	name := ContainerName(m.ID, m.Containers[0])

	n := &commitNodes{}
	r := &AgentRestorer{Nodes: n}
	ctx := WithCommit(context.Background(), func(context.Context) error { n.note("commit"); return nil })
	if _, err := r.Restore(ctx, m, targets); err != nil {
		t.Fatal(err)
	}
	want := []string{"restore n2 " + name + " locked=true", "commit", "unlock n2 " + name}
	if !slices.Equal(n.calls, want) {
		t.Fatalf("calls %q, want %q", n.calls, want)
	}

	n = &commitNodes{}
	r = &AgentRestorer{Nodes: n}
	ctx = WithCommit(context.Background(), func(context.Context) error { return errors.New("etcd down") })
	if _, err := r.Restore(ctx, m, targets); err == nil || !strings.Contains(err.Error(), "etcd down") {
		t.Fatalf("restore with a failing commit: %v, want its error", err)
	}
	if slices.ContainsFunc(n.calls, func(c string) bool { return strings.HasPrefix(c, "unlock") }) ||
		!slices.Contains(n.calls, "remove n2 "+name) {
		t.Fatalf("calls %q: want the restored container removed, never unlocked", n.calls)
	}

	// Without a commit, one container alone is restored unlocked (nothing to wait for).
	n = &commitNodes{}
	r = &AgentRestorer{Nodes: n}
	if _, err := r.Restore(context.Background(), m, targets); err != nil {
		t.Fatal(err)
	}
	if want := []string{"restore n2 " + name + " locked=false"}; !slices.Equal(n.calls, want) {
		t.Fatalf("calls %q, want %q", n.calls, want)
	}
}
