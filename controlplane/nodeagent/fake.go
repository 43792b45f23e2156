package nodeagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// FakeExecutor is an in-memory Executor for tests: it tracks which containers are
// locked and frozen, and can be told to fail or stall a container's dump.
type FakeExecutor struct {
	Node string

	mu       sync.Mutex
	locked   map[string]bool
	frozen   map[string]bool
	dumps    map[string]int
	FailDump map[string]error         // container -> error to return from Dump
	Stall    map[string]chan struct{} // container -> Dump waits until closed (or ctx ends)
	DumpTime time.Duration
	sets     map[string]bool // image sets on this node, by set ID
	// FakeSockets is what Verify returns per set; FailVerify makes it fail.
	FakeSockets map[string]json.RawMessage
	FailVerify  error
	// FailDrop makes DropSet fail.
	FailDrop error
	// FailRestore: set -> error Restore returns for it.
	FailRestore map[string]error
	restored    map[string]bool // containers restored (by id = name), running
}

var (
	_ Executor = (*FakeExecutor)(nil)
	_ Restorer = (*FakeExecutor)(nil)
)

// NewFakeExecutor returns a FakeExecutor for node.
func NewFakeExecutor(node string) *FakeExecutor {
	return &FakeExecutor{Node: node, locked: map[string]bool{}, frozen: map[string]bool{}, dumps: map[string]int{},
		FailDump: map[string]error{}, Stall: map[string]chan struct{}{}, sets: map[string]bool{},
		FailRestore: map[string]error{}, restored: map[string]bool{}}
}

// Held returns the containers currently locked or frozen.
func (f *FakeExecutor) Held() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for c, v := range f.locked {
		if v {
			out = append(out, "locked:"+c)
		}
	}
	for c, v := range f.frozen {
		if v {
			out = append(out, "frozen:"+c)
		}
	}
	return out
}

// Hold marks c locked and frozen, as a crashed agent may have left it.
func (f *FakeExecutor) Hold(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locked[c], f.frozen[c] = true, true
}

// Dumps returns how many times c was dumped.
func (f *FakeExecutor) Dumps(c string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dumps[c]
}

func (f *FakeExecutor) Lock(_ context.Context, c Target, _ []Target) ([]protocol.ConnCounter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locked[c.ID] = true
	return nil, nil
}

func (f *FakeExecutor) Unlock(_ context.Context, c Target, _ []Target) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locked[c.ID] = false
	return nil
}

func (f *FakeExecutor) Freeze(_ context.Context, c Target) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen[c.ID] = true
	return nil
}

func (f *FakeExecutor) Thaw(_ context.Context, c Target) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen[c.ID] = false
	return nil
}

func (f *FakeExecutor) Dump(ctx context.Context, snapshot string, c Target, _ bool, _ string) (*DumpResult, error) {
	f.mu.Lock()
	stall, fail, d := f.Stall[c.ID], f.FailDump[c.ID], f.DumpTime
	f.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if d > 0 {
		time.Sleep(d)
	}
	if fail != nil {
		return nil, fail
	}
	f.mu.Lock()
	f.dumps[c.ID]++
	f.mu.Unlock()
	f.PutSet(SetID(snapshot, c.SetKey()))
	content := fmt.Sprintf("%s/%s", snapshot, c.ID)
	sum := sha256.Sum256([]byte(content))
	return &DumpResult{
		Stats: protocol.DumpStats{ImageBytes: uint64(len(content))},
		Images: store.ImageSet{Node: f.Node, Dir: "/fake/sets/" + SetID(snapshot, c.SetKey()), Durable: true,
			Files: []store.File{{Name: "pages-1.img", Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}}},
	}, nil
}

// PutSet records image set set on this node (as a dump, or a transfer, writes one).
func (f *FakeExecutor) PutSet(set string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets[set] = true
}

// HasSet says whether image set set is on this node.
func (f *FakeExecutor) HasSet(set string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sets[set]
}

// Addr implements Restorer (the fake has no transfer endpoint).
func (f *FakeExecutor) Addr() string { return "" }

// Send implements Restorer: the fake cannot stream sets.
func (f *FakeExecutor) Send(_ context.Context, set, _ string) error {
	return fmt.Errorf("fake executor of %s cannot send set %s", f.Node, set)
}

// Restore implements Restorer: a set on this node restores as a container whose id is
// the requested name (or the set), unless FailRestore says otherwise.
func (f *FakeExecutor) Restore(_ context.Context, set string, o RestoreOptions) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.FailRestore[set]; err != nil {
		return "", err
	}
	if !f.sets[set] {
		return "", fmt.Errorf("fake executor of %s: no image set %s", f.Node, set)
	}
	id := o.Name
	if id == "" {
		id = set
	}
	if f.restored[id] {
		return "", fmt.Errorf("fake executor of %s: container name %s is taken", f.Node, id)
	}
	f.restored[id] = true
	return id, nil
}

// Restored lists the containers restored on this node and not removed.
func (f *FakeExecutor) Restored() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.restored {
		out = append(out, id)
	}
	return out
}

// Remove implements Restorer.
func (f *FakeExecutor) Remove(_ context.Context, c string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.restored, c)
	return nil
}

// Verify implements Restorer: the set must be on this node; it returns FakeSockets[set]
// (an empty list when unset), or FailVerify.
func (f *FakeExecutor) Verify(_ context.Context, set, _ string, _ []store.File) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.FailVerify != nil {
		return nil, f.FailVerify
	}
	if !f.sets[set] {
		return nil, fmt.Errorf("image set %s is not on node %s", set, f.Node)
	}
	if s, ok := f.FakeSockets[set]; ok {
		return s, nil
	}
	return json.RawMessage("[]"), nil
}

// DropSet implements Restorer.
func (f *FakeExecutor) DropSet(_ context.Context, set string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.FailDrop != nil {
		return f.FailDrop
	}
	delete(f.sets, set)
	return nil
}
