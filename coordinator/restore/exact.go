package restore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Restorer brings a committed snapshot's containers back on target nodes.
type Restorer interface {
	// Restore restores every container of m, SERVICE.SLOT -> node in targets, and
	// returns the new container id per SERVICE.SLOT. On error nothing restored by this
	// call is left running.
	Restore(ctx context.Context, m *store.Manifest, targets map[string]string) (map[string]string, error)
}

// Stopper stops what still runs of a stack before it is restored.
type Stopper interface {
	StopStack(ctx context.Context, stack string) error
}

// ServiceStopper is a Stopper that tells what it stopped and can start it again
// (stack.Docker, stack.FakeSwarm): an exact restore that fails after the stop scales
// the services back to the replicas they had.
type ServiceStopper interface {
	// StopServices scales the stack's services to 0 and returns the replicas they had
	// (on error: those already scaled to 0). kill gets the containers of the tasks
	// still running, by node, once swarm ordered them to shut down.
	StopServices(ctx context.Context, stack string, kill func(ctx context.Context, byNode map[string][]string)) (map[string]uint64, error)
	// ScaleServices sets the replicas of the stack's services by name.
	ScaleServices(ctx context.Context, stack string, replicas map[string]uint64, constraints []string) error
}

// AgentRestorer restores through the node agents (exact mode): the source node
// streams each image set to the target node's worker (checksums verified on arrival),
// then the target restores it.
type AgentRestorer struct {
	Nodes Nodes
	// Events, when set, receives per-container progress.
	Events func(ctx context.Context, e api.Event)
}

var _ Restorer = (*AgentRestorer)(nil)

// Restore implements Restorer. Every set is first moved to its target node (in
// parallel), then every container is restored (in parallel): connections between
// containers of the set resume only once both ends run, so they come up together.
// It is all or nothing: if any container fails, those already restored are removed
// before the error is returned.
func (r *AgentRestorer) Restore(ctx context.Context, m *store.Manifest, targets map[string]string) (map[string]string, error) {
	type item struct {
		c      store.Container
		target string
		set    string
		home   string // the node holding the set (HomeOf)
	}
	var items []item
	for _, c := range m.Containers {
		if t, ok := targets[c.Key()]; ok {
			items = append(items, item{c: c, target: t, set: SetOf(m, c), home: HomeOf(c)})
		}
	}
	emit := func(it item, phase, msg string, ms int64) {
		if r.Events != nil {
			r.Events(ctx, api.Event{ID: m.ID, Container: it.c.Key(), Node: it.target, Phase: phase, Message: msg, MS: ms})
		}
	}
	parallel := func(f func(it item) error) error {
		errs := make([]error, len(items))
		var wg sync.WaitGroup
		for i, it := range items {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = f(it) }()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	err := parallel(func(it item) error {
		if it.target == it.home {
			return nil
		}
		addr, ok := r.Nodes.Addr(it.target)
		if !ok || addr == "" {
			return fmt.Errorf("%s: target node %s has no live worker with a transfer address", it.c.Key(), it.target)
		}
		rep, err := r.Nodes.Send(ctx, it.home, node.SendRequest{Set: it.set, To: addr})
		switch {
		case errors.Is(err, node.ErrSetExists):
			// An earlier restore already moved the set; the target verifies every
			// checksum before restoring it.
			emit(it, "transferred", "already on "+it.target, 0)
		case err != nil:
			return fmt.Errorf("%s: transfer of its images from %s to %s: %w", it.c.Key(), it.home, it.target, err)
		case rep.AlreadyThere:
			// A migration streamed the images there while dumping (Target.StreamTo).
			emit(it, "transferred", AlreadyThere(it.target), rep.MS)
		default:
			emit(it, "transferred", fmt.Sprintf("%s -> %s", it.home, it.target), rep.MS)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Each container comes back with its network locked from before CRIU restores its
	// sockets (the runtime wrapper installs the lock in its namespace): a restored
	// container must not reach a peer whose address is up but whose sockets are not
	// restored yet (that peer's kernel would reset the connection). Once every
	// container is restored, all are unlocked together.
	commit, _ := ctx.Value(commitKey{}).(func(context.Context) error)
	locked := len(items) > 1 || commit != nil
	var mu sync.Mutex
	out := map[string]string{}
	byNode := map[string][]string{}
	err = parallel(func(it item) error {
		name := ContainerName(m.ID, it.c)
		// In place (the target is the node holding the set: the dumping node, a direct
		// migration's target, or a node holding a replica): the set is one the snapshot
		// keeps there, which a retry, a later restore or migrate's rollback still needs.
		// A set sent for this restore is a copy and is used up.
		inPlace := keepsSet(it.c, it.target) // copies.go
		rep, err := r.Nodes.Restore(ctx, it.target, node.RestoreRequest{Set: it.set,
			Options: node.RestoreOptions{Name: name, Locked: locked, LockFor: HoldFor(m, targets), Aliases: it.c.Aliases, Keep: inPlace}})
		if rep != nil && rep.Container != "" {
			mu.Lock()
			out[it.c.Key()] = rep.Container
			byNode[it.target] = append(byNode[it.target], rep.Container)
			mu.Unlock()
		}
		if err != nil {
			return fmt.Errorf("%s: restore on %s: %w", it.c.Key(), it.target, err)
		}
		emit(it, "restored", "container "+shortID(rep.Container), rep.MS)
		return nil
	})
	// All or nothing: on a failure the containers this restore brought back are
	// removed (still network-locked, so they talked to no one), so that a retry or
	// migrate's rollback finds their names and addresses free. Also by name those whose
	// restore failed: one created but not restored must not stay behind, exited,
	// holding its name (a retry would be refused) or its address. The removals are
	// repeated while a node's agent or worker restarts (AgentNodes).
	undo := func(err error) error {
		mu.Lock()
		for _, it := range items {
			if _, ok := out[it.c.Key()]; !ok {
				byNode[it.target] = append(byNode[it.target], ContainerName(m.ID, it.c))
			}
		}
		mu.Unlock()
		uctx := context.WithoutCancel(ctx)
		for nodeName, ids := range byNode {
			if rerr := r.Nodes.Remove(uctx, nodeName, ids); rerr != nil {
				err = errors.Join(err, fmt.Errorf("undo: remove restored containers %v on %s (remove them by hand with docker rm -f): %w", ids, nodeName, rerr))
			}
		}
		if r.Events != nil {
			r.Events(ctx, api.Event{ID: m.ID, Phase: "undone", Message: fmt.Sprintf("%d restored containers removed after a failure", len(out))})
		}
		return err
	}
	if err != nil {
		return nil, undo(err)
	}
	if commit != nil {
		// The point of no return (WithCommit): from here on the restore is finished,
		// never undone, also by a coordinator that follows a dead one.
		if cerr := commit(ctx); cerr != nil {
			return nil, undo(fmt.Errorf("record the restore before unlocking it: %w", cerr))
		}
	}
	if locked {
		start := time.Now()
		for nodeName, ids := range byNode {
			if uerr := r.Nodes.Unlock(ctx, nodeName, ids); uerr != nil {
				err = errors.Join(err, fmt.Errorf("unlock restored containers on %s: %w", nodeName, uerr))
			}
		}
		if err != nil && commit != nil {
			// Committed: undoing now could run a container twice. Those still locked
			// are released by their hold's deadline (or a following coordinator).
			if r.Events != nil {
				r.Events(ctx, api.Event{ID: m.ID, Phase: "warning", Message: fmt.Sprintf("restored, but not every container could be unlocked now (they are released at their hold's deadline): %v", err)})
			}
			return out, nil
		}
		if err != nil {
			// Some stay locked (until their hold's deadline): not restored as asked.
			// Undone, so that a rollback finds the addresses free and nothing stays held.
			return nil, undo(err)
		}
		if r.Events != nil {
			r.Events(ctx, api.Event{ID: m.ID, Phase: "unlocked", Message: fmt.Sprintf("%d restored containers", len(out)), MS: time.Since(start).Milliseconds()})
		}
	}
	return out, nil
}

type commitKey struct{}

// WithCommit returns ctx carrying commit for AgentRestorer.Restore: every container is
// then restored network-locked (even one alone), and commit is called once all are
// restored, before any is unlocked: the point after which the restore must be finished,
// not undone (an operation's journal records StepRestored there, so that a coordinator
// following a dead one rolls it forward instead of putting back the originals while
// the restored copies already run). A commit error undoes the restore.
func WithCommit(ctx context.Context, commit func(context.Context) error) context.Context {
	return context.WithValue(ctx, commitKey{}, commit)
}

// ContainerName is the name AgentRestorer gives the container of c restored from
// snapshot id.
func ContainerName(id string, c store.Container) string {
	return strings.ReplaceAll(c.Key(), ".", "-") + "-" + shortID(id)
}

// HomeOf is the node holding the image set a restore of c reads: Images.Node (the
// dumping node, a direct migration's target (store.Container.Direct), or the copy the
// coordinator's heal promoted), else the node c ran on.
func HomeOf(c store.Container) string {
	if c.Images != nil && c.Images.Node != "" {
		return c.Images.Node
	}
	return c.Node
}

// SetOf is the image set a restore uses for container c of m: the base of its image
// directory (a composite manifest's containers point at the sets of other snapshots;
// a minimal snapshot's reused container at an earlier one's), else the set named
// after m.
func SetOf(m *store.Manifest, c store.Container) string {
	if c.Images != nil && c.Images.Dir != "" {
		return filepath.Base(c.Images.Dir)
	}
	return node.SetID(m.ID, c.Key())
}

func shortID(s string) string {
	if i := strings.LastIndex(s, "-"); i >= 0 && len(s)-i > 1 {
		return s[i+1:]
	}
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// AlreadyThere is the progress of a transfer the target did not need (node.SendReply.AlreadyThere):
// a migration streamed the set there while dumping, or an earlier restore copied it.
func AlreadyThere(node string) string { return "already on " + node + " (same files; nothing sent)" }
