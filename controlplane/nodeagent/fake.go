package nodeagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
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
	// FailRestore: set -> error Restore returns for it. With LeaveFailed the failed
	// restore's container stays behind, holding its name (as a container Docker
	// created but CRIU could not restore may).
	FailRestore map[string]error
	LeaveFailed bool
	restored    map[string]bool // containers restored (by id = name), running
	// PreflightProblems are what Preflight reports (besides missing sets).
	PreflightProblems []string
	prepared          []PreflightRequest // Prepare requests seen (Prepared)
	// Undumpable: container -> the error CheckDump returns for it (fake_dumpcheck.go).
	Undumpable map[string]error
	stopped    map[string]bool // containers ended by Stop
	// FailStop makes Stop fail; OnStop, when set, is called with each container Stop
	// ends (outside the fake's lock).
	FailStop error
	OnStop   func(container string)
	lockFor  map[string]time.Duration // container -> its last Lock's deadline, from then
	carried  map[string]bool          // containers dumped with CarryVolumes

	// Swarm tasks (TaskRestorer). TransferAddr is Addr's answer; SendTo, when set,
	// serves Send.
	TransferAddr string
	SendTo       func(set, toAddr string) (alreadyThere bool, err error)
	// StreamTo, when set, serves a dump's streaming to Target.StreamTo (as SendTo
	// serves Send); as the real worker does, a failed stream leaves the dump standing.
	StreamTo func(set, toAddr string) error
	streamed map[string]string // set -> address it was streamed to
	// FailPlace: SERVICE.SLOT -> error PlaceTask returns for it.
	FailPlace map[string]error
	tasks     map[string]*FakeTask // placed sets, by SERVICE.SLOT
	claimed   map[string]string    // SERVICE.SLOT -> container that claimed its set
}

// FakeTask is a set placed for a swarm task on a FakeExecutor.
type FakeTask struct {
	Set       string
	Locked    bool
	WaitMap   bool
	Addresses map[string]string
}

var (
	_ Executor = (*FakeExecutor)(nil)
	_ Restorer = (*FakeExecutor)(nil)
)

// NewFakeExecutor returns a FakeExecutor for node.
func NewFakeExecutor(node string) *FakeExecutor {
	return &FakeExecutor{Node: node, locked: map[string]bool{}, frozen: map[string]bool{}, dumps: map[string]int{},
		FailDump: map[string]error{}, Stall: map[string]chan struct{}{}, sets: map[string]bool{},
		FailRestore: map[string]error{}, restored: map[string]bool{}, streamed: map[string]string{}, stopped: map[string]bool{}}
}

var _ Stopper = (*FakeExecutor)(nil)

// Stop implements Stopper as the worker does: only a frozen container is ended (its
// lock and freeze go with it).
func (f *FakeExecutor) Stop(_ context.Context, c Target) error {
	f.mu.Lock()
	if f.FailStop != nil {
		f.mu.Unlock()
		return f.FailStop
	}
	if !f.frozen[c.ID] {
		f.mu.Unlock()
		return fmt.Errorf("fake %s: stop %s: not frozen", f.Node, c.ID)
	}
	f.stopped[c.ID] = true
	f.frozen[c.ID], f.locked[c.ID] = false, false
	hook := f.OnStop
	f.mu.Unlock()
	if hook != nil {
		hook(c.ID)
	}
	return nil
}

// Stopped returns the containers ended by Stop or by a dump that did not leave them
// running, sorted.
func (f *FakeExecutor) Stopped() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for c, ok := range f.stopped {
		if ok {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
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
	if !c.Deadline.IsZero() {
		if f.lockFor == nil {
			f.lockFor = map[string]time.Duration{}
		}
		f.lockFor[c.ID] = time.Until(c.Deadline)
	}
	return nil, nil
}

// CarriedVolumes tells whether c was dumped asked to carry its volumes.
func (f *FakeExecutor) CarriedVolumes(c string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.carried[c]
}

// LockedFor returns how far away the deadline of c's last Lock was when it was locked
// (0: never locked with one).
func (f *FakeExecutor) LockedFor(c string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lockFor[c]
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

func (f *FakeExecutor) Dump(ctx context.Context, snapshot string, c Target, leaveRunning bool, _ string) (*DumpResult, error) {
	f.mu.Lock()
	stall, fail, d := f.Stall[c.ID], f.FailDump[c.ID], f.DumpTime
	if c.CarryVolumes {
		if f.carried == nil {
			f.carried = map[string]bool{}
		}
		f.carried[c.ID] = true
	}
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
	if !leaveRunning {
		// As CRIU does without --leave-running: the processes end with the dump.
		f.stopped[c.ID] = true
		f.frozen[c.ID], f.locked[c.ID] = false, false
	}
	f.mu.Unlock()
	set := SetID(snapshot, c.SetKey())
	f.PutSet(set)
	if c.StreamTo != "" {
		f.mu.Lock()
		f.streamed[set] = c.StreamTo
		hook := f.StreamTo
		f.mu.Unlock()
		if hook != nil {
			_ = hook(set, c.StreamTo)
		}
	}
	content := fmt.Sprintf("%s/%s", snapshot, c.ID)
	sum := sha256.Sum256([]byte(content))
	return &DumpResult{
		Stats: protocol.DumpStats{ImageBytes: uint64(len(content))},
		Images: store.ImageSet{Node: f.Node, Dir: "/fake/sets/" + SetID(snapshot, c.SetKey()), Durable: true,
			Files: []store.File{{Name: "pages-1.img", Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}}},
	}, nil
}

// Streamed returns the sets whose dump streamed them, with the address they went to.
func (f *FakeExecutor) Streamed() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.streamed)
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

// Addr implements Restorer: TransferAddr ("" by default: no transfer endpoint).
func (f *FakeExecutor) Addr() string { return f.TransferAddr }

// Send implements Restorer: through SendTo when set (e.g. PutSet on another fake),
// else the fake cannot stream sets.
func (f *FakeExecutor) Send(_ context.Context, set, to string) (bool, error) {
	if f.SendTo != nil {
		f.mu.Lock()
		has := f.sets[set]
		f.mu.Unlock()
		if !has {
			return false, fmt.Errorf("fake executor of %s: no image set %s to send", f.Node, set)
		}
		return f.SendTo(set, to)
	}
	return false, fmt.Errorf("fake executor of %s cannot send set %s", f.Node, set)
}

// Restore implements Restorer: a set on this node restores as a container whose id is
// the requested name (or the set), unless FailRestore says otherwise. The set is used
// up unless o.Keep, as on a worker.
func (f *FakeExecutor) Restore(_ context.Context, set string, o RestoreOptions) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.FailRestore[set]; err != nil {
		if f.LeaveFailed && o.Name != "" {
			f.restored[o.Name] = true
		}
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
	if !o.Keep {
		delete(f.sets, set) // consumed, as a worker's restore consumes it
	}
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

var _ TaskRestorer = (*FakeExecutor)(nil)

func fakeKey(service string, slot int) string { return fmt.Sprintf("%s.%d", service, slot) }

// PlaceTask implements TaskRestorer: the set stays (the worker places a linked copy).
func (f *FakeExecutor) PlaceTask(_ context.Context, req PlaceRequest) (connections, closed []string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fakeKey(req.Service, req.Slot)
	if err := f.FailPlace[k]; err != nil {
		return nil, nil, err
	}
	if !f.sets[req.Set] {
		return nil, nil, fmt.Errorf("fake executor of %s: no image set %s", f.Node, req.Set)
	}
	if f.tasks == nil {
		f.tasks, f.claimed = map[string]*FakeTask{}, map[string]string{}
	}
	f.tasks[k] = &FakeTask{Set: req.Set, Locked: req.LockFor > 0, WaitMap: req.AddressMapFor > 0}
	delete(f.claimed, k)
	return nil, nil, nil
}

// SetAddressMap implements TaskRestorer.
func (f *FakeExecutor) SetAddressMap(_ context.Context, service string, slot int, addresses map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tasks[fakeKey(service, slot)]
	if t == nil {
		return fmt.Errorf("fake executor of %s: no set placed for %s slot %d", f.Node, service, slot)
	}
	t.Addresses = addresses
	return nil
}

// UnplaceTask implements TaskRestorer: an unclaimed placement goes back to the sets.
func (f *FakeExecutor) UnplaceTask(_ context.Context, service string, slot int, set string) (bool, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fakeKey(service, slot)
	t := f.tasks[k]
	claimed := f.claimed[k]
	if t == nil {
		return false, claimed, nil
	}
	delete(f.tasks, k)
	if set != "" { // unclaimed: its images were never rewritten
		f.sets[set] = true
	}
	return true, claimed, nil
}

// StartTask plays the runtime wrapper for a swarm task container id of service slot
// starting on this node: with a placed set it claims it and returns it (the container
// is then restored, locked if the placement said so); without one it returns nil (a
// fresh start).
func (f *FakeExecutor) StartTask(service string, slot int, id string) *FakeTask {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fakeKey(service, slot)
	t := f.tasks[k]
	if t == nil {
		return nil
	}
	delete(f.tasks, k)
	f.claimed[k] = id
	if t.Locked {
		f.locked[id] = true
	}
	return t
}

// Placed lists the SERVICE.SLOTs with a set placed (unclaimed) on this node.
func (f *FakeExecutor) Placed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.tasks {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// PlacedTask returns the set placed for service slot (nil when none).
func (f *FakeExecutor) PlacedTask(service string, slot int) *FakeTask {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tasks[fakeKey(service, slot)]
}

// IsLocked tells whether container id is locked.
func (f *FakeExecutor) IsLocked(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.locked[id]
}
