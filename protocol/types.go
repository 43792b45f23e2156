package protocol

import "strconv"

// Type identifies the kind of a message and the Go type of its Body.
type Type uint16

// Message types. ONLY APPEND TO THIS LIST: the numbers are on the wire. Never reuse,
// reorder or renumber an entry; retire one by leaving it in place with a comment.
const (
	TypeInvalid Type = iota // 0: never valid on the wire

	// TypeSnapshotRequest (CLI or scheduler -> coordinator): start a snapshot.
	// Body *SnapshotRequest.
	TypeSnapshotRequest // 1
	// TypeSnapshotResult (coordinator -> CLI): how a snapshot ended. Body *SnapshotResult.
	TypeSnapshotResult // 2
	// TypeLock (coordinator -> container): lock the container's network (and optionally
	// freeze it). Body *Lock.
	TypeLock // 3
	// TypeLockDone (container -> coordinator): the lock (and freeze) is in place, with the
	// per-connection counters at that moment. Body *Result.
	TypeLockDone // 4
	// TypeDump (coordinator -> container): record the container. Body *Dump.
	TypeDump // 5
	// TypeDumpDone (container -> coordinator): the container is recorded. Body *Result
	// (Dump set).
	TypeDumpDone // 6
	// TypeCommit (coordinator -> container): the snapshot is committed; release everything
	// still held for it. Body *Decision.
	TypeCommit // 7
	// TypeAbort (coordinator -> container): the snapshot is aborted; release everything
	// held for it and discard its images. Body *Decision.
	TypeAbort // 8
	// TypeMarker (coordinator -> container, container -> container): Chandy-Lamport
	// marker. From the coordinator it names the container's peers; from a peer it says
	// "the sender has recorded". Body *Marker.
	TypeMarker // 9
	// TypeDone (container -> coordinator): the container has recorded and every one of its
	// connections is open again (Chandy-Lamport). Body *Result.
	TypeDone // 10
	// TypeFailed (container -> coordinator): the container cannot take part any more
	// (an action failed, or its watchdog released it). Body *Result (Error set).
	TypeFailed // 11
	// TypeActionDone (worker -> its own container state machine, never between processes):
	// the outcome of one executed Action. Body *ActionResult.
	TypeActionDone // 12
	// TypeRelease (coordinator -> container): release this container now (thaw, unlock);
	// the snapshot goes on without holding it. Body *Decision.
	TypeRelease // 13
	// TypeAbortRequest (coordinator process or CLI -> coordinator role): abort the active
	// snapshot named by Snapshot and Epoch (the user asked, the stack lock was lost, a
	// node left the cluster). The role aborts it with Reason, as given; ignored once the
	// snapshot is decided or its commit is being written. Body *Decision.
	TypeAbortRequest // 14
	// TypeCommitDone (coordinator process -> its own coordinator role, never between
	// processes): the outcome of ActCommit. Error empty: the commit record is durable and
	// the role sends commit to every container; else why the commit was not written (no
	// image set, an inconsistent cut of an algorithm that promises a consistent one, the
	// store refused), and the role aborts the snapshot with that reason. Body *Result.
	TypeCommitDone // 15

	typeEnd // keep last: one past the highest known type
)

var typeNames = [...]string{
	TypeInvalid:         "invalid",
	TypeSnapshotRequest: "snapshot-request",
	TypeSnapshotResult:  "snapshot-result",
	TypeLock:            "lock",
	TypeLockDone:        "lock-done",
	TypeDump:            "dump",
	TypeDumpDone:        "dump-done",
	TypeCommit:          "commit",
	TypeAbort:           "abort",
	TypeMarker:          "marker",
	TypeDone:            "done",
	TypeFailed:          "failed",
	TypeActionDone:      "action-done",
	TypeRelease:         "release",
	TypeAbortRequest:    "abort-request",
	TypeCommitDone:      "commit-done",
}

// Known reports whether t is a type this build understands.
func (t Type) Known() bool { return t > TypeInvalid && t < typeEnd }

// String returns the type's stable name, or "type(N)" for an unknown one.
func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// TypeByName returns the type named s (as printed by String).
func TypeByName(s string) (Type, bool) {
	for i, n := range typeNames {
		if n == s && Type(i) != TypeInvalid {
			return Type(i), true
		}
	}
	return TypeInvalid, false
}

// Types returns every known type in wire order.
func Types() []Type {
	out := make([]Type, 0, typeEnd-1)
	for t := TypeInvalid + 1; t < typeEnd; t++ {
		out = append(out, t)
	}
	return out
}
