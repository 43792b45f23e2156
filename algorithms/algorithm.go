package algorithms

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/swarmckpt/swarmckpt/protocol"
)

// Machine is one role of one algorithm: the coordinator role (one per stack, long-lived,
// one snapshot at a time) or the container role (one per container, run by the worker of
// the container's node, long-lived across snapshots). It never does I/O, never reads a
// clock, never starts a goroutine and never uses randomness; it is not safe for
// concurrent use (the caller serialises all calls).
//
// The caller's loop, like etcd raft's RawNode:
//
//	for {
//		select { case m := <-inbox: err := sm.Step(m) /* refuse/log err */
//		         case <-ticker: sm.Tick() }
//		if sm.HasReady() {
//			rd := sm.Ready()
//			execute rd (see Ready for the order)
//			sm.Advance()
//		}
//	}
type Machine interface {
	// Step feeds one message: a protocol message from another process, or the result of
	// an executed Action (TypeActionDone, built with Done). Duplicated, reordered and
	// stale messages are tolerated and ignored as needed. A returned error is about this
	// message only (e.g. ErrBusy for a second snapshot request); the machine stays usable.
	Step(m protocol.Envelope) error
	// Tick advances logical time by one tick (deadlines and watchdogs are in ticks).
	Tick()
	// HasReady reports whether Ready has anything to execute.
	HasReady() bool
	// Ready returns the actions and messages accumulated so far and hands them over: the
	// next Ready only holds what was produced after this call.
	Ready() Ready
	// Advance tells the machine the last Ready was executed (actions done in order,
	// messages handed to the transport). Call it once per Ready, before the next Ready.
	Advance()
}

// TickSkipper is an optional interface of a Machine whose Tick only counts down a
// timer (the container roles' watchdog) until the timer fires. A caller that runs very
// many mostly idle machines (the simulator: a million container roles) uses it to call
// Tick only on the tick a timer fires, and SkipTicks for the ticks in between; this must
// leave the machine exactly as calling Tick on every tick would.
type TickSkipper interface {
	// TicksUntilDue returns n > 0 when the n-th next call of Tick is the first one that
	// may change anything but the countdown (the timer fires then), and 0 when no timer
	// runs: Tick does nothing until the next Step.
	TicksUntilDue() uint64
	// SkipTicks has the effect of n calls of Tick.
	SkipTicks(n uint64)
}

// SkipWatchdog is SkipTicks for a machine whose only timer is a watchdog counting down
// in *left (0: not running; ended: the machine ignores ticks): n ticks short of it
// count it down; n reaching it leaves one and calls tick, the Tick that fires it (the
// rest of the n ticks do nothing once it fired).
func SkipWatchdog(left *uint64, ended bool, n uint64, tick func()) {
	if *left == 0 || ended || n == 0 {
		return
	}
	if n < *left {
		*left -= n
		return
	}
	*left = 1
	tick()
}

// Ready is what the caller must execute, in this order:
//
//  1. Actions, in slice order, each completed before the next starts. In particular
//     ActPersist, ActCommit and ActAbort are durable writes that must be on stable
//     storage BEFORE any later action runs and BEFORE any message of this Ready is sent.
//     Container actions (lock, freeze, dump, thaw, unlock) are executed on the container
//     by its worker; the caller then feeds each one's outcome back with Step(Done(...)),
//     at any time later (before or after Advance), exactly once per container action.
//     The outcome of ActCommit is fed back the same way, once, with
//     Step(CommitDone(...)): the coordinator role sends the decision only then.
//  2. Messages, after every action of this Ready completed, in any order (the transport
//     may reorder, duplicate or lose them; the algorithms cope).
//
// Ready values are never modified by the machine after they are returned.
type Ready struct {
	Actions  []Action
	Messages []protocol.Envelope
}

// Empty reports whether there is nothing to do.
func (rd Ready) Empty() bool { return len(rd.Actions) == 0 && len(rd.Messages) == 0 }

// ActionKind is what an Action asks for.
type ActionKind uint8

// Action kinds. Container actions come from container roles; Persist, Commit and Abort
// from coordinator roles.
const (
	ActInvalid ActionKind = iota
	// ActPersist: durably store Record, replacing the previous record of the same
	// role: of the coordinator when Container is "" (after a crash RecoverCoordinator is
	// given the last one), else of that container's role (a ContainerRecord; after a
	// worker restart NewContainer is given the last one in ContainerConfig.Record).
	ActPersist
	// ActLock: lock the network of Container: every connection if Peers is nil, else
	// only the connections to Peers. Packets are dropped, never delivered.
	ActLock
	// ActUnlock: undo ActLock for the same connections (nil Peers: all). Idempotent.
	ActUnlock
	// ActFreeze: freeze every process of Container (cgroup freezer).
	ActFreeze
	// ActThaw: undo ActFreeze. Idempotent.
	ActThaw
	// ActDump: record Container (CRIU images with its TCP queues), or, with ReuseFrom
	// set, reuse its images of that earlier snapshot. The result carries DumpStats.
	ActDump
	// ActCommit: check the snapshot (every image set present; the cut consistent if the
	// algorithm promises it) and durably store Record, which marks it committed (the
	// commit point); then step the outcome back with CommitDone. Success: the role
	// sends commit to every container. Failure (nothing stored): the role aborts the
	// snapshot with the failure as its reason (ActAbort) and keeps the algorithm state
	// it had before the snapshot. At most once per snapshot; between ActCommit and its
	// outcome the role ignores container messages, timeouts and abort requests.
	ActCommit
	// ActAbort: durably store Record, which marks the snapshot aborted (Reason says
	// why), then report the outcome and collect partial images. Exactly once per
	// aborted snapshot.
	ActAbort
)

var actionNames = [...]string{"invalid", "persist", "lock", "unlock", "freeze", "thaw", "dump", "commit", "abort"}

// String returns the action's name, as used in ActionResult.Op.
func (k ActionKind) String() string {
	if int(k) < len(actionNames) {
		return actionNames[k]
	}
	return fmt.Sprintf("action(%d)", k)
}

// ParseActionKind is the inverse of String.
func ParseActionKind(s string) (ActionKind, bool) {
	for i, n := range actionNames {
		if n == s && i != 0 {
			return ActionKind(i), true
		}
	}
	return ActInvalid, false
}

// IsContainerAction reports whether k is executed on a container (and so must be
// acknowledged with Step(Done(...))).
func (k ActionKind) IsContainerAction() bool { return k >= ActLock && k <= ActDump }

// Action is one thing the caller must do. Only the fields of its Kind are set.
type Action struct {
	Kind ActionKind
	// Snapshot and Epoch identify the snapshot the action belongs to.
	Snapshot string
	Epoch    uint64
	// Container is the container acted on (container actions).
	Container string
	// Peers limits ActLock/ActUnlock to the connections with these peers; nil means all
	// connections of the container.
	Peers []string
	// LeaveRunning (ActDump): keep the container running after the dump.
	LeaveRunning bool
	// ReuseFrom (ActDump): reuse this earlier snapshot's images instead of dumping.
	ReuseFrom string
	// Record (ActPersist, ActCommit, ActAbort): opaque, deterministic bytes to store.
	Record []byte
	// Reason (ActAbort): why the snapshot was aborted.
	Reason string
}

// Done builds the message that reports the outcome of the container action a back to
// the container's machine: err nil on success; conns are the container's per-connection
// counters when the action completed (required for ActLock and ActDump, optional
// otherwise); stats describes the images of an ActDump (nil otherwise).
func Done(a Action, err error, conns []protocol.ConnCounter, stats *protocol.DumpStats) protocol.Envelope {
	r := &protocol.ActionResult{Op: a.Kind.String(), Peers: a.Peers, Conns: conns, Dump: stats}
	if err != nil {
		r.Error = err.Error()
		if r.Error == "" {
			r.Error = "unknown error"
		}
	}
	addr := protocol.ContainerAddr(a.Container)
	return protocol.Envelope{
		Version: protocol.Version, Type: protocol.TypeActionDone,
		Snapshot: a.Snapshot, Epoch: a.Epoch, From: addr, To: addr, Body: r,
	}
}

// CommitDone builds the message that reports the outcome of ActCommit a back to the
// coordinator role: err nil when Record is durable, else why the commit was not made
// (its text becomes the abort's reason).
func CommitDone(a Action, err error) protocol.Envelope {
	r := &protocol.Result{}
	if err != nil {
		r.Error = err.Error()
		if r.Error == "" {
			r.Error = "commit failed"
		}
	}
	return protocol.Envelope{Version: protocol.Version, Type: protocol.TypeCommitDone, Snapshot: a.Snapshot, Epoch: a.Epoch,
		From: protocol.Coordinator, To: protocol.Coordinator, Body: r}
}

// AbortRequest builds the message that asks a coordinator role to abort its active
// snapshot (id, epoch) for reason: the user asked, the stack lock was lost, a node of
// the snapshot left. The role aborts with reason as given; it ignores the request once
// the snapshot is decided or while its commit is being written.
func AbortRequest(snapshot string, epoch uint64, reason string) protocol.Envelope {
	return protocol.Envelope{Version: protocol.Version, Type: protocol.TypeAbortRequest, Snapshot: snapshot, Epoch: epoch,
		From: protocol.Coordinator, To: protocol.Coordinator, Body: &protocol.Decision{Reason: reason}}
}

// Config configures a coordinator role. Times are in coordinator ticks.
type Config struct {
	// Timeout is how many ticks a snapshot may take from its request until it is
	// aborted. Default 600 (one minute at the coordinator's default 100 ms tick).
	Timeout uint64
	// WatchdogGrace is added to the remaining Timeout to form the Deadline.Ticks sent to
	// containers, so that their watchdogs fire only after the coordinator has given up.
	// Default 100.
	WatchdogGrace uint64
	// FirstEpoch is the epoch of the first snapshot of a fresh coordinator. Default 1.
	// It must be greater than every epoch used before for the stack (container roles
	// ignore older epochs): a coordinator that lost its record derives it from its store.
	FirstEpoch uint64
	// Resend is how many ticks the coordinator waits before sending the current
	// phase's command again to the containers that have not answered it (lost
	// messages then delay a snapshot instead of aborting it); 0, the default, never
	// re-sends. Must be well below Timeout to help, e.g. 20 with the default Timeout.
	Resend uint64
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config { return Config{Timeout: 600, WatchdogGrace: 100, FirstEpoch: 1} }

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.WatchdogGrace == 0 {
		c.WatchdogGrace = d.WatchdogGrace
	}
	if c.FirstEpoch == 0 {
		c.FirstEpoch = d.FirstEpoch
	}
	return c
}

// ContainerConfig configures a container role.
type ContainerConfig struct {
	// ID is the container this machine acts for.
	ID string
	// Recovering is set when the worker restarted and may have left the container
	// locked or frozen: the machine's first Ready then thaws and unlocks it.
	Recovering bool
	// Record is the last record this container's role asked to persist (ActPersist
	// with Container set), nil if none. A role rebuilt with it refuses (answers Failed
	// to) the snapshot it was taking part in before the restart: its locks were lost,
	// so that snapshot can no longer be consistent.
	Record []byte
}

// ContainerRecord is what a container role persists (ActPersist with Container set)
// when it starts taking part in a snapshot: the epoch. It is tiny and written once per
// snapshot per container, before any lock, freeze or dump of that snapshot.
type ContainerRecord struct {
	Epoch    uint64 `json:"epoch"`
	Snapshot string `json:"snapshot"`
}

// Encode returns the record's deterministic bytes: json.Marshal's (assembled by hand
// for a plain snapshot id, as every container writes one per snapshot).
func (r ContainerRecord) Encode() []byte {
	for i := 0; i < len(r.Snapshot); i++ {
		if c := r.Snapshot[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(r) // a struct of a number and a string always encodes
			return b
		}
	}
	b := make([]byte, 0, 32+len(r.Snapshot))
	b = append(b, `{"epoch":`...)
	b = strconv.AppendUint(b, r.Epoch, 10)
	b = append(b, `,"snapshot":"`...)
	b = append(b, r.Snapshot...)
	return append(b, `"}`...)
}

// DecodeContainerRecord parses what ContainerRecord.Encode wrote; nil gives the zero record.
func DecodeContainerRecord(b []byte) (ContainerRecord, error) {
	var r ContainerRecord
	if len(b) == 0 {
		return r, nil
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("algorithms: container record %q: %v: %w", b, err, ErrBadRecord)
	}
	return r, nil
}

// Algorithm is one checkpoint algorithm: how to build its two roles.
type Algorithm interface {
	// Name is the algorithm's name as used on the CLI and in SnapshotRequest.Algorithm.
	Name() string
	// NewCoordinator returns a fresh coordinator role.
	NewCoordinator(cfg Config) Machine
	// RecoverCoordinator rebuilds the coordinator role from the last record it asked to
	// store (ActPersist/ActCommit/ActAbort). A snapshot that was not decided is aborted
	// (its first Ready aborts it and releases every container); a decided one has its
	// decision re-sent. A nil record is the same as NewCoordinator.
	RecoverCoordinator(cfg Config, record []byte) (Machine, error)
	// NewContainer returns the role of one container, run by its worker.
	NewContainer(cfg ContainerConfig) Machine
	// Guarantees says what a committed snapshot of this algorithm promises.
	Guarantees() Guarantees
}

// Continuer is an Algorithm whose coordinator role carries state from one snapshot of
// a stack to the next (minimal: each container's last fresh image). The coordinator
// continues the role from the record its stack's last committed snapshot of this
// algorithm stored (ActCommit), which lives in the snapshot store (etcd), so a
// restarted coordinator continues too. An algorithm that is not a Continuer starts
// every snapshot with NewCoordinator.
type Continuer interface {
	Algorithm
	// ContinueCoordinator returns a coordinator role for a new snapshot that carries
	// the state of committed, the record of the stack's last committed snapshot of this
	// algorithm (nil: none, the same as NewCoordinator). It sends nothing for the
	// earlier snapshot (unlike RecoverCoordinator).
	ContinueCoordinator(cfg Config, committed []byte) (Machine, error)
}

// Guarantees is what a committed snapshot of an algorithm promises.
type Guarantees struct {
	// ConsistentCut: every committed snapshot is a consistent cut (for every connection
	// A->B, bytes B received at its recording <= bytes A sent at its recording).
	// False for uncoordinated, whose consistent cut is found at restore by a recovery line.
	ConsistentCut bool
}

// Errors returned by Step and RecoverCoordinator; match with errors.Is.
var (
	// ErrBusy: a snapshot request arrived while another snapshot is in progress.
	ErrBusy = errors.New("algorithms: a snapshot is already in progress")
	// ErrBadRequest: the snapshot request is invalid (empty, duplicate or unknown peers).
	ErrBadRequest = errors.New("algorithms: invalid snapshot request")
	// ErrUnexpected: the message is not one this role handles.
	ErrUnexpected = errors.New("algorithms: unexpected message for this role")
	// ErrBadRecord: a persisted record cannot be used.
	ErrBadRecord = errors.New("algorithms: unusable record")
)

// BusyError is returned by a coordinator's Step for a snapshot request while another
// snapshot is in progress. errors.Is(err, ErrBusy) is true.
type BusyError struct {
	// Active is the snapshot in progress, Requested the refused one.
	Active, Requested string
	// Epoch is the epoch of the active snapshot.
	Epoch uint64
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("algorithms: snapshot %q refused: snapshot %q (epoch %d) is in progress; retry after it ends", e.Requested, e.Active, e.Epoch)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }
