package worker

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/cut"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/activity"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/restore"
	"github.com/swarmckpt/swarmckpt/worker/space"
)

// Fake is an in-memory worker offering every role, for tests of the node agent and the
// coordinator: it tracks which containers are locked, frozen, dumped, stopped and
// restored and which image sets are on its node, and can be told to fail or stall an
// operation. Any container name is taken as one of its node's. It passes the roles'
// conformance suite (workertest) as the real worker does.
type Fake struct {
	Node string
	// OldFeatures, when not nil, are the features Info announces instead of this
	// version's (an older worker: []string{}).
	OldFeatures []string

	mu     sync.Mutex
	locked map[string]bool
	// acts: what Activity reports, by container (SetActivity).
	acts   map[string]activity.Counters
	frozen map[string]bool
	dumps  map[string]int
	// FailDump: container -> error its dumps return; Stall: container -> its dumps
	// wait until the channel is closed (or ctx ends); DumpTime: every dump takes this.
	FailDump map[string]error
	Stall    map[string]chan struct{}
	DumpTime time.Duration
	sets     map[string]bool // image sets on this node, by set ID
	// FakeSockets is the JSON of the []cut.Socket that Sockets returns per set (an
	// empty list when unset); FailVerify makes Sockets fail.
	FakeSockets map[string]json.RawMessage
	FailVerify  error
	// Verifies counts the Sockets calls (full re-hashes on a real worker), Rechecks
	// the RecheckSockets calls (SetRechecker).
	Verifies, Rechecks int
	// FailDrop makes DropSet fail.
	FailDrop error
	// FailDrops, when > 0, makes only that many DropSet calls fail with FailDrop (a
	// worker that comes back); 0: every one while FailDrop is set.
	FailDrops int
	// FailRestore: set -> error Restore returns for it. With LeaveFailed the failed
	// restore's container stays behind, holding its name (as a container Docker
	// created but CRIU could not restore may).
	FailRestore map[string]error
	LeaveFailed bool
	restored    map[string]bool // containers restored (by id = name), running
	// restoredSet: container -> the set it was restored from (a failed one left by
	// LeaveFailed: ""): a repeated restore of that set into that name answers with it,
	// as the worker's does (Worker.Restore, restore.LabelSet).
	restoredSet map[string]string
	// PreflightProblems are what Preflight reports (besides missing sets).
	PreflightProblems []string
	prepared          []PreflightRequest // Prepare requests seen (Prepared)
	// prepHeld: the containers (by name) a Prepare holds keepers for, until their
	// restore here or a Release ends the hold (PreparedHolds); restoredKept: the
	// restored containers whose restore found such a hold (RestoredKept).
	prepHeld     map[string]bool
	restoredKept []string
	// PrepareReady, when set, is called (outside the fake's lock) by a Prepare
	// request with Ready, after it was recorded, and answers it with its error: the
	// time this node's network keepers take to start.
	PrepareReady func(ctx context.Context, req PreflightRequest) error
	// Undumpable: container -> the error CheckDump returns for it.
	Undumpable map[string]error
	stopped    map[string]bool // containers ended by Stop
	gone       map[string]bool // containers removed (RemoveContainer, Gone): containerstate.go
	drain      fakeDrain       // Drainer (drainfake.go)
	xl         fakeXlate       // Translations (xlatefake.go)
	// FailStop makes Stop fail; OnStop, when set, is called with each container Stop
	// ends (outside the fake's lock).
	FailStop error
	OnStop   func(container string)
	// OnRestore, when set, is called with the name of each container a Restore is
	// asked for, before it is done (outside the fake's lock).
	OnRestore func(name string)
	lockFor   map[string]time.Duration // container -> its last Lock's deadline, from then
	carried   map[string]bool          // containers dumped with CarryVolumes
	// SoftDirty makes the fake a node whose kernel tracks soft-dirty pages: it
	// announces pre-copy (Info) and PreCopy runs (precopy.go); otherwise PreCopy is
	// refused with node.ErrNoSoftDirty, as on this project's machines.
	SoftDirty bool
	pre       fakePreCopy
	// TransferAddr is this node's transfer address (Info's Addr). SendTo, when set,
	// serves Send and DumpInto (e.g. PutSet on another Fake); without it the fake
	// cannot send sets.
	TransferAddr string
	SendTo       func(set, toAddr string) (alreadyThere bool, err error)
	// StreamTo, when set, serves DumpTo's stream; as on the real worker, a failed
	// stream fails DumpTo but leaves the set sealed here.
	StreamTo func(set, toAddr string) error
	streamed map[string]string // set -> address it was streamed to
	// lazyCancelled are the sets CancelLazy was called for.
	lazyCancelled []string
	// LazyWait, when set, makes the fake serve post-copy: DumpLazy is a held dump
	// (the container left as its caller holds it) whose "page server" WaitLazy waits
	// for through LazyWait (nil: every page served; an error: the page server's),
	// until CancelLazy stops it. Without it DumpLazy is refused (no page server).
	LazyWait func(ctx context.Context, set string) error
	lazy     map[string]bool // sets dumped post-copy (LazyWait), false once cancelled
	// disconnected are the containers DisconnectHeld took off their networks (and
	// ReconnectHeld did not put back).
	disconnected []string
	// reconnected are the networks ReconnectHeld put each container back on.
	reconnected map[string][]node.NetworkAttach
	into        map[string]string // set -> address a held DumpInto sent it to
	// IntoTo, when set, serves a held DumpInto's transfer (DumpWith with Into and
	// LeaveRunning) instead of SendTo: the target receives the set and answers its
	// manifest as it holds it (ReceiveDirect on another Fake).
	IntoTo func(set, toAddr string) (*imageset.Manifest, error)
	// LateDigests makes this Fake, as a direct transfer's target (ReceiveDirect),
	// hash the received pages after the restore (worker --page-digests after-restore,
	// latehashfake.go); HashGate, when set, holds every such hash until closed.
	LateDigests bool
	HashGate    chan struct{}
	late        map[string]*fakeHash // sets whose received pages are not hashed yet
	hashed      []string             // sets whose received pages were hashed (Hashed)
	digestAsks  int                  // SetDigests answered (DigestAsks)
	// FailPlace: SERVICE.SLOT -> error PlaceTask returns for it.
	FailPlace map[string]error
	// FailUnlocks: that many Unlock calls fail (with ErrFakeUnlock), then they work
	// (an agent slow to answer under load).
	FailUnlocks int
	tasks       map[string]*FakeTask // placed sets, by SERVICE.SLOT
	claimed     map[string]string    // SERVICE.SLOT -> container that claimed its set

	// Disk, when set, is the file system of the fake's sets as CheckSpace sees it
	// (nil: room for every dump); MemoryUse: container -> its memory in use in bytes
	// (absent: unknown, the margin only).
	Disk      *space.Disk
	MemoryUse map[string]int64
	spaceAsks [][]SpaceDump // CheckSpace calls (SpaceAsked)
}

// FakeTask is a set placed for a swarm task on a Fake.
type FakeTask struct {
	Set       string
	Locked    bool
	WaitMap   bool
	Addresses map[string]string
}

var (
	_ Holder    = (*Fake)(nil)
	_ Dumper    = (*Fake)(nil)
	_ Sets      = (*Fake)(nil)
	_ Restorer  = (*Fake)(nil)
	_ Tasks     = (*Fake)(nil)
	_ Inspector = (*Fake)(nil)
)

// NewFake returns a Fake worker of node.
func NewFake(node string) *Fake {
	return &Fake{Node: node, locked: map[string]bool{}, frozen: map[string]bool{}, dumps: map[string]int{},
		FailDump: map[string]error{}, Stall: map[string]chan struct{}{}, sets: map[string]bool{},
		FailRestore: map[string]error{}, restored: map[string]bool{}, streamed: map[string]string{}, into: map[string]string{}, stopped: map[string]bool{}}
}

// Roles returns the fake's roles.
func (f *Fake) Roles() Roles {
	return Roles{Holder: f, Dumper: f, Sets: f, Restorer: f, Tasks: f, Inspector: f, Drainer: f, Translations: f, Lazy: f, PreCopier: f}
}

// Info implements Inspector: the fake's node, its TransferAddr, no post-copy,
// pre-copy with SoftDirty.
func (f *Fake) Info(context.Context) (NodeInfo, error) {
	f.mu.Lock()
	pre := Capability{OK: f.SoftDirty}
	f.mu.Unlock()
	if !pre.OK {
		pre.Reason = "a fake worker tracks no dirty pages (Fake.SoftDirty off)"
	}
	return NodeInfo{Node: f.Node, CRIUVersion: "fake", Addr: f.TransferAddr, DataRoot: "/fake",
		PostCopy: Capability{Reason: "a fake worker has no page server"},
		PreCopy:  pre, Features: f.features()}, nil
}

// features is what Info announces: OldFeatures when set (an older worker), else this
// version's (Features).
func (f *Fake) features() []string {
	if f.OldFeatures != nil {
		return f.OldFeatures
	}
	return Features()
}

// Standalone implements Inspector: the fake node has no restored standalone containers
// (tests that need some wrap the Fake and override this).
func (f *Fake) Standalone(context.Context, string) ([]restore.Standalone, error) { return nil, nil }

// ErrFakeUnlock is the error of the Unlock calls FailUnlocks makes fail.
var ErrFakeUnlock = errors.New("worker fake: unlock failed (FailUnlocks)")

// Lock implements Holder.
func (f *Fake) Lock(_ context.Context, name string, _ []netip.Addr, deadline time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locked[name] = true
	if !deadline.IsZero() {
		if f.lockFor == nil {
			f.lockFor = map[string]time.Duration{}
		}
		f.lockFor[name] = time.Until(deadline)
	}
	return nil
}

// LockedFor returns how far away the deadline of c's last Lock was when it was locked
// (0: never locked with one).
func (f *Fake) LockedFor(c string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lockFor[c]
}

// CarriedVolumes tells whether c was dumped asked to carry its volumes.
func (f *Fake) CarriedVolumes(c string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.carried[c]
}

// Unlock implements Holder.
func (f *Fake) Unlock(_ context.Context, name string, _ []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.FailUnlocks > 0 {
		f.FailUnlocks--
		return fmt.Errorf("worker %s: unlock %s: %w", f.Node, name, ErrFakeUnlock)
	}
	f.locked[name] = false
	return nil
}

// Freeze implements Holder.
func (f *Fake) Freeze(_ context.Context, name string, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen[name] = true
	return nil
}

// Thaw implements Holder.
func (f *Fake) Thaw(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen[name] = false
	return nil
}

// Stop implements Holder as the worker does: only a frozen container is ended (its
// lock and freeze go with it).
func (f *Fake) Stop(_ context.Context, name string) error {
	f.mu.Lock()
	if f.FailStop != nil {
		f.mu.Unlock()
		return f.FailStop
	}
	if !f.frozen[name] {
		f.mu.Unlock()
		return fmt.Errorf("fake worker %s: stop %s: %w", f.Node, name, ErrNotFrozen)
	}
	f.stopped[name] = true
	f.frozen[name], f.locked[name] = false, false
	hook := f.OnStop
	f.mu.Unlock()
	if hook != nil {
		hook(name)
	}
	return nil
}

// Holds implements Holder: the fake's locked and frozen containers (no deadline, held
// by a live worker).
func (f *Fake) Holds(context.Context) ([]Held, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	by := map[string]*Held{}
	get := func(c string) *Held {
		if by[c] == nil {
			by[c] = &Held{ContainerID: c, Name: c, OwnerAlive: true}
		}
		return by[c]
	}
	for c, v := range f.locked {
		if v {
			get(c).Locked = true
		}
	}
	for c, v := range f.frozen {
		if v {
			get(c).Frozen = true
		}
	}
	out := make([]Held, 0, len(by))
	for _, h := range by {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ContainerID < out[j].ContainerID })
	return out, nil
}

// CheckDump implements Dumper: the error set in Undumpable for the container, if any.
func (f *Fake) CheckDump(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Undumpable[name]
}

// CheckSpace implements SpaceChecker: space.Check of Disk and MemoryUse.
func (f *Fake) CheckSpace(_ context.Context, dumps []SpaceDump) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.spaceAsks = append(f.spaceAsks, slices.Clone(dumps))
	if f.Disk == nil {
		return nil
	}
	est := make([]space.Dump, 0, len(dumps))
	for _, d := range dumps {
		mem, ok := f.MemoryUse[d.Container]
		if !ok {
			mem = -1
		}
		est = append(est, space.Dump{Label: d.label(), Memory: mem})
	}
	return space.Check(f.Node, *f.Disk, est)
}

// SpaceAsked returns the dumps of every CheckSpace call, in order.
func (f *Fake) SpaceAsked() [][]SpaceDump {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.spaceAsks)
}

var _ SpaceChecker = (*Fake)(nil)

// fakeImage is the one image file of every fake set, the same on every Fake (so that
// a set sent or placed elsewhere verifies there, and a manifest written by hand can
// list it: FakeImageFiles).
var fakeImage = []byte("fake CRIU images")

func fakeManifest(containerName string) *imageset.Manifest {
	sum := sha256.Sum256(fakeImage)
	return &imageset.Manifest{Version: 1, ContainerID: containerName, CRIUVersion: "fake",
		Files: []imageset.File{{Name: "pages-1.img", Size: int64(len(fakeImage)), SHA256: hex.EncodeToString(sum[:])}}}
}

// FakeImageFiles are the files of every fake set as a snapshot's manifest records
// them (the agent's report of a Fake's dump).
func FakeImageFiles() []node.File {
	var out []node.File
	for _, f := range fakeManifest("").Files {
		out = append(out, node.File{Name: imageset.ImagesDir + "/" + f.Name, Size: f.Size, SHA256: f.SHA256})
	}
	return out
}

// Dump implements Dumper.
func (f *Fake) Dump(ctx context.Context, name, set string, leaveRunning bool) (*imageset.Manifest, error) {
	f.mu.Lock()
	stall, fail, d := f.Stall[name], f.FailDump[name], f.DumpTime
	f.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail != nil {
		return nil, fail
	}
	if err := validSet(set); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dumps[name]++
	if !leaveRunning {
		// As CRIU does without --leave-running: the processes end with the dump.
		f.stopped[name] = true
		f.frozen[name], f.locked[name] = false, false
	}
	f.sets[set] = true
	return fakeManifest(name), nil
}

// DumpTo implements Dumper: Dump, then the stream through StreamTo (none without it).
func (f *Fake) DumpTo(ctx context.Context, name, set, addr string, leaveRunning bool) (*imageset.Manifest, error) {
	m, err := f.Dump(ctx, name, set, leaveRunning)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.streamed[set] = addr
	hook := f.StreamTo
	f.mu.Unlock()
	if hook != nil {
		if err := hook(set, addr); err != nil {
			return nil, fmt.Errorf("fake worker %s: stream %s to %s: %w", f.Node, set, addr, err)
		}
	}
	return m, nil
}

// DumpWith implements Dumper: Dump, or DumpTo with o.StreamTo, recording a request to
// carry volumes (CarriedVolumes).
func (f *Fake) DumpWith(ctx context.Context, name, set string, o DumpOptions) (*imageset.Manifest, error) {
	if o.CarryVolumes {
		f.mu.Lock()
		if f.carried == nil {
			f.carried = map[string]bool{}
		}
		f.carried[name] = true
		f.mu.Unlock()
	}
	if o.PreCopied {
		if o.Lazy != "" || o.Into != "" {
			return nil, fmt.Errorf("fake worker %s: dump %s: %w: pre-dumps go with a plain or streamed dump only", f.Node, name, node.ErrInvalidArgument)
		}
		n, err := f.takePreDumps(set)
		if err != nil {
			return nil, err
		}
		o.PreCopied = false
		m, err := f.DumpWith(ctx, name, set, o)
		if m != nil {
			m.PreDumps = n
		}
		return m, err
	}
	switch {
	case o.Lazy != "":
		return f.DumpLazy(ctx, name, set, o.Lazy)
	case o.Into != "" && o.LeaveRunning:
		return f.dumpIntoHeld(ctx, name, set, o.Into)
	case o.Into != "":
		return f.DumpInto(ctx, name, set, o.Into)
	case o.StreamTo != "":
		return f.DumpTo(ctx, name, set, o.StreamTo, o.LeaveRunning)
	}
	return f.Dump(ctx, name, set, o.LeaveRunning)
}

// dumpIntoHeld is DumpWith with Into and LeaveRunning, as the real worker's: the set
// goes to addr through SendTo and none stays here; the container is left as its
// caller holds it (not ended, on success either).
func (f *Fake) dumpIntoHeld(ctx context.Context, name, set, addr string) (*imageset.Manifest, error) {
	f.mu.Lock()
	into := f.IntoTo
	f.mu.Unlock()
	if into != nil {
		if _, err := f.Dump(ctx, name, set, true); err != nil {
			return nil, err
		}
		held, err := into(set, addr)
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.sets, set)
		if err != nil {
			return nil, fmt.Errorf("fake worker %s: dump %s into %s: %w (the target keeps nothing)", f.Node, name, addr, err)
		}
		f.into[set] = addr
		return held, nil
	}
	return f.dumpAndSend(ctx, name, set, addr, "the target keeps nothing", func() { f.into[set] = addr })
}

// dumpAndSend dumps name into set and sends the set to addr through SendTo, keeping
// none here; then done runs under the fake's lock. A failed send's error ends with
// left (what the failure leaves).
func (f *Fake) dumpAndSend(ctx context.Context, name, set, addr, left string, done func()) (*imageset.Manifest, error) {
	if f.SendTo == nil {
		return nil, fmt.Errorf("fake worker %s cannot send sets: %w", f.Node, node.ErrUnavailable)
	}
	m, err := f.Dump(ctx, name, set, true)
	if err != nil {
		return nil, err
	}
	_, err = f.SendTo(set, addr)
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sets, set)
	if err != nil {
		return nil, fmt.Errorf("fake worker %s: dump %s into %s: %w (%s)", f.Node, name, addr, err, left)
	}
	done()
	// As the real worker's: the set as the target holds it, its pages hashed there (the
	// fake names the target by its address).
	held := *m
	held.PagesReceivedBy = addr
	return &held, nil
}

// DumpedInto returns the sets dumped into another node by a held dump (DumpWith with
// Into and LeaveRunning), with the address they went to.
func (f *Fake) DumpedInto() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.into)
}

// DumpInto implements Dumper: the set goes to addr through SendTo and none stays here;
// the container ends only once it is there.
func (f *Fake) DumpInto(ctx context.Context, name, set, addr string) (*imageset.Manifest, error) {
	return f.dumpAndSend(ctx, name, set, addr, "it keeps running here", func() {
		f.stopped[name] = true
		f.frozen[name], f.locked[name] = false, false
	})
}

// DumpLazy implements Dumper: refused, as where post-copy cannot run (Info.PostCopy),
// unless LazyWait is set: then a held dump whose page server LazyWait stands for.
func (f *Fake) DumpLazy(ctx context.Context, name, set, _ string) (*imageset.Manifest, error) {
	f.mu.Lock()
	serves := f.LazyWait != nil
	f.mu.Unlock()
	if !serves {
		return nil, fmt.Errorf("fake worker %s: post-copy dump: a fake worker has no page server: %w", f.Node, node.ErrUnavailable)
	}
	m, err := f.Dump(ctx, name, set, true)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lazy == nil {
		f.lazy = map[string]bool{}
	}
	f.lazy[set] = true
	held := *m
	held.LazyPages = f.TransferAddr
	return &held, nil
}

// Streamed returns the sets whose dump streamed them, with the address they went to.
func (f *Fake) Streamed() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.streamed)
}

// validSet refuses the set IDs the real worker refuses (ErrBadSetID).
func validSet(set string) error {
	if set == "" || set == "." || set == ".." || strings.ContainsAny(set, "/\\\x00") {
		return fmt.Errorf("%w: %q", ErrBadSetID, set)
	}
	return nil
}

// PutSet records image set set on this node (as a dump, or a transfer, writes one).
func (f *Fake) PutSet(set string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets[set] = true
}

// HasSet says whether image set set is on this node.
func (f *Fake) HasSet(set string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sets[set]
}

// Send implements Sets: through SendTo (else the fake cannot send sets).
func (f *Fake) Send(_ context.Context, set, addr string) (SendResult, error) {
	if err := validSet(set); err != nil {
		return SendResult{}, err
	}
	if !f.HasSet(set) {
		return SendResult{}, fmt.Errorf("fake worker %s: send set %s: %w", f.Node, set, ErrNoSet)
	}
	if f.SendTo == nil {
		return SendResult{}, fmt.Errorf("fake worker %s cannot send set %s", f.Node, set)
	}
	if err := f.awaitLate(context.Background(), set); err != nil { // the receiver checks every digest
		return SendResult{}, err
	}
	there, err := f.SendTo(set, addr)
	return SendResult{AlreadyThere: there}, err
}

// DropSet implements Sets.
func (f *Fake) DropSet(_ context.Context, set string) error {
	if err := validSet(set); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.FailDrop != nil {
		if f.FailDrops == 0 {
			return f.FailDrop
		}
		if f.FailDrops--; f.FailDrops == 0 {
			err := f.FailDrop
			f.FailDrop = nil
			return err
		}
		return f.FailDrop
	}
	delete(f.sets, set)
	delete(f.pre.rounds, set) // its pre-dumps, as the worker's DropSet
	delete(f.late, set)
	return nil
}

// Sockets implements Sets: the set must be on this node; its sockets are
// FakeSockets[set] (none when unset), or FailVerify.
func (f *Fake) Sockets(ctx context.Context, set, label string) (SetSockets, error) {
	if err := f.awaitLate(ctx, set); err != nil {
		return SetSockets{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Verifies++
	return f.sockets(set, label)
}

func (f *Fake) sockets(set, label string) (SetSockets, error) {
	if f.FailVerify != nil {
		return SetSockets{}, f.FailVerify
	}
	if !f.sets[set] {
		return SetSockets{}, fmt.Errorf("fake worker %s: set %s: %w", f.Node, set, ErrNoSet)
	}
	out := SetSockets{Manifest: fakeManifest(""), Sockets: []cut.Socket{}}
	if f.pendingLocked(set) {
		out.Manifest = unhashed(out.Manifest) // held as received (RecheckSockets)
	}
	if raw, ok := f.FakeSockets[set]; ok {
		if err := json.Unmarshal(raw, &out.Sockets); err != nil {
			return SetSockets{}, fmt.Errorf("fake worker %s: FakeSockets of %s: %w", f.Node, set, err)
		}
	}
	for i := range out.Sockets {
		out.Sockets[i].Container = label
	}
	return out, nil
}

var _ SetRechecker = (*Fake)(nil)

// RecheckSockets implements SetRechecker: as Sockets (the fake hashes nothing);
// Rechecks counts the calls.
func (f *Fake) RecheckSockets(_ context.Context, set, label string) (SetSockets, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Rechecks++
	if h := f.late[set]; h != nil && h.lost {
		return SetSockets{}, fmt.Errorf("fake worker %s: set %s: %w (%w)", f.Node, set, ErrUnhashed, imageset.ErrUnhashed)
	}
	return f.sockets(set, label)
}

// VerifyCounts returns Verifies and Rechecks (under the fake's lock).
func (f *Fake) VerifyCounts() (verifies, rechecks int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Verifies, f.Rechecks
}

// Preflight implements Restorer: the sets of req not on this node are Missing,
// PreflightProblems are reported as they are; a Prepare request is only recorded
// (Prepared), its containers held (PreparedHolds) until their restore here or a
// Release request, and, with Ready, answered by PrepareReady when set.
func (f *Fake) Preflight(ctx context.Context, req PreflightRequest) (PreflightReport, error) {
	f.mu.Lock()
	var rep PreflightReport
	if req.Release {
		for _, c := range req.Containers {
			delete(f.prepHeld, c.Name)
		}
		f.mu.Unlock()
		return rep, nil
	}
	if req.Prepare {
		f.prepared = append(f.prepared, req)
		if f.prepHeld == nil {
			f.prepHeld = map[string]bool{}
		}
		for _, c := range req.Containers {
			f.prepHeld[c.Name] = true
		}
		ready := f.PrepareReady
		f.mu.Unlock()
		if req.Ready && ready != nil {
			return rep, ready(ctx, req)
		}
		return rep, nil
	}
	defer f.mu.Unlock()
	for _, s := range req.Sets {
		if !f.sets[s.Set] {
			rep.Missing = append(rep.Missing, s.Set)
		}
	}
	rep.Problems = append(rep.Problems, f.PreflightProblems...)
	return rep, nil
}

// Prepared returns the Prepare requests this node got, in order.
func (f *Fake) Prepared() []PreflightRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]PreflightRequest(nil), f.prepared...)
}

// PreparedHolds returns, sorted, the containers (by name) whose Prepare hold (their
// network keepers, on a worker) is still on: neither restored here nor released.
func (f *Fake) PreparedHolds() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.prepHeld))
}

// RestoredKept returns, in order, the containers restored here whose restore found
// their Prepare hold on (on a worker: their networks kept by keepers).
func (f *Fake) RestoredKept() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.restoredKept...)
}

// Restore implements Restorer: a set on this node restores as a container whose id is
// the requested name (or the set), unless FailRestore says otherwise. The set is used
// up unless o.Keep, as on a worker; a repeated restore of a set into the name it was
// restored into answers with that container (locked again if asked), as a worker's.
func (f *Fake) Restore(_ context.Context, set string, o RestoreOptions) (container.Ref, error) {
	f.mu.Lock()
	hook := f.OnRestore
	f.mu.Unlock()
	if hook != nil {
		hook(cmp.Or(o.Name, set))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.FailRestore[set]; err != nil {
		if f.LeaveFailed && o.Name != "" {
			f.restored[o.Name] = true
			delete(f.gone, o.Name)
		}
		return container.Ref{}, err
	}
	id := o.Name
	if id == "" {
		id = set
	}
	if f.prepHeld[id] { // a worker's restore ends Prepare's hold
		f.restoredKept = append(f.restoredKept, id)
		delete(f.prepHeld, id)
	}
	if !f.restored[id] || f.restoredSet[id] != set {
		if !f.sets[set] {
			return container.Ref{}, fmt.Errorf("fake worker %s: set %s: %w", f.Node, set, ErrNoSet)
		}
	}
	if f.restored[id] {
		if f.restoredSet[id] == set && set != "" {
			// Restored from this set already: a repeated request whose answer was lost.
			if !o.LockUntil.IsZero() {
				f.locked[id] = true
			}
			return container.Ref{ID: id, Name: id}, nil
		}
		return container.Ref{}, fmt.Errorf("fake worker %s: container name %s is taken", f.Node, id)
	}
	f.restored[id] = true
	delete(f.gone, id)
	if f.restoredSet == nil {
		f.restoredSet = map[string]string{}
	}
	f.restoredSet[id] = set
	if h := f.late[set]; h != nil && h.lost {
		return container.Ref{}, fmt.Errorf("fake worker %s: refusing to restore set %s: %w (%w)", f.Node, set, ErrUnhashed, imageset.ErrUnhashed)
	}
	if !o.Keep {
		delete(f.sets, set) // consumed, as a worker's restore consumes it
		delete(f.late, set)
	} else {
		f.startHashLocked(set) // its received pages are hashed once it was restored
	}
	return container.Ref{ID: id, Name: id}, nil
}

// Restored lists the containers restored on this node and not removed.
func (f *Fake) Restored() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.restored {
		out = append(out, id)
	}
	return out
}

// RemoveContainer implements Restorer.
func (f *Fake) RemoveContainer(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.restored, name)
	delete(f.restoredSet, name)
	delete(f.locked, name) // its lock goes with it, as on a worker
	if f.gone == nil {
		f.gone = map[string]bool{}
	}
	f.gone[name] = true
	return nil
}

func fakeKey(service string, slot int) string { return fmt.Sprintf("%s.%d", service, slot) }

// PlaceTask implements Tasks: the set stays (the worker places a linked copy).
func (f *Fake) PlaceTask(_ context.Context, set string, o TaskOptions) (TaskPlacement, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fakeKey(o.Service, o.Slot)
	if err := f.FailPlace[k]; err != nil {
		return TaskPlacement{}, err
	}
	if !f.sets[set] {
		return TaskPlacement{}, fmt.Errorf("fake worker %s: set %s: %w", f.Node, set, ErrNoSet)
	}
	if f.tasks == nil {
		f.tasks, f.claimed = map[string]*FakeTask{}, map[string]string{}
	}
	f.tasks[k] = &FakeTask{Set: set, Locked: !o.LockUntil.IsZero(), WaitMap: !o.AddressMapUntil.IsZero()}
	delete(f.claimed, k)
	return TaskPlacement{}, nil
}

// SetAddressMap implements Tasks.
func (f *Fake) SetAddressMap(_ context.Context, service string, slot int, addresses map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tasks[fakeKey(service, slot)]
	if t == nil {
		return fmt.Errorf("fake worker %s: no set placed for %s slot %d: %w", f.Node, service, slot, node.ErrNotFound)
	}
	t.Addresses = addresses
	return nil
}

// UnplaceTask implements Tasks: an unclaimed placement goes back to the sets.
func (f *Fake) UnplaceTask(_ context.Context, service string, slot int, set string) (TaskRelease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fakeKey(service, slot)
	t := f.tasks[k]
	claimed := f.claimed[k]
	if t == nil {
		return TaskRelease{Claimed: claimed}, nil
	}
	delete(f.tasks, k)
	if set != "" { // unclaimed: its images were never rewritten
		f.sets[set] = true
	}
	return TaskRelease{Removed: true, Claimed: claimed}, nil
}

// StartTask plays the runtime wrapper for a swarm task container id of service slot
// starting on this node: with a placed set it claims it and returns it (the container
// is then restored, locked if the placement said so); without one it returns nil (a
// fresh start).
func (f *Fake) StartTask(service string, slot int, id string) *FakeTask {
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
func (f *Fake) Placed() []string {
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
func (f *Fake) PlacedTask(service string, slot int) *FakeTask {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tasks[fakeKey(service, slot)]
}

// IsLocked tells whether container id is locked.
func (f *Fake) IsLocked(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.locked[id]
}

// Stopped returns the containers ended by Stop or by a dump that did not leave them
// running, sorted.
func (f *Fake) Stopped() []string {
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

// Held returns the containers currently locked or frozen ("locked:ID", "frozen:ID").
func (f *Fake) Held() []string {
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
func (f *Fake) Hold(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locked[c], f.frozen[c] = true, true
}

// Dumps returns how many times c was dumped.
func (f *Fake) Dumps(c string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dumps[c]
}
