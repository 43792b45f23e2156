package events

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Subject carries every Event (the coordinator publishes, `swarmckpt events` follows).
const Subject = "swarmckpt.v1.events"

// Kinds of Event. ONLY APPEND TO THIS LIST.
const (
	// DrainSeen: a node is draining (Node); its labelled tasks' stops will be held.
	DrainSeen = "drain-seen"
	// TaskHeld: the runtime wrapper holds the stop of an armed task (Node, Service,
	// Slot, Container), until Deadline.
	TaskHeld = "task-held"
	// Checkpointed: a held task was checkpointed with exit into Set (MS: the checkpoint).
	Checkpointed = "checkpointed"
	// Restored: a task's state was placed on (swarm mode: restored as the replacement
	// on) Target.
	Restored = "restored"
	// Released: a held stop was passed on without a checkpoint (Reason says why): the
	// task stops as under plain swarm.
	Released = "released"
	// HoldTimedOut: the checkpoint of a held task did not finish within its hold
	// budget; the stop went on as swarm's (stop signal, SIGKILL at stop_grace_period).
	HoldTimedOut = "hold-timed-out"
	// NodeLost: a node's worker and agent are gone and swarm reports it down.
	NodeLost = "node-lost"
	// RolledBack: a stack was restored, as a whole, from snapshot Snapshot.
	RolledBack = "rolled-back"
	// LabelError: a stack's swarmckpt.* labels are in error (Reason); nothing of its
	// policy applies until they are fixed.
	LabelError = "label-error"
	// SnapshotCommitted and SnapshotAborted: a snapshot of Stack ended (Reason: why it
	// aborted).
	SnapshotCommitted = "snapshot-committed"
	SnapshotAborted   = "snapshot-aborted"
	// NodeDrain: `swarmckpt node drain` moved the labelled stacks off Node and set it
	// to drain (or activate set it active: Reason says which).
	NodeDrain = "node-drain"
	// Migrated: a stack's containers on Node were migrated off it (Snapshot; none
	// for a swarm-mode stack, whose tasks there moved by the drain hold).
	Migrated = "migrated"
	// NodeLossFailed: a stack that had containers on a lost Node could not be
	// restored (Reason: no snapshot readable on a live node, or the restore failed).
	NodeLossFailed = "node-loss-failed"
	// Fenced: a lost Node came back and Stack's containers left on it from before the
	// loss were removed (Snapshot: the one the stack was rolled back to).
	Fenced = "fenced"
	// PagesLost: the source of a post-copy migration (Node, Container; Service and
	// Slot the moved container's, Set its set) failed before every memory page reached
	// the restored container on Target (Reason: what the wait for its pages said):
	// data loss for that container, which runs on but may miss memory.
	PagesLost = "pages-lost"
)

// Event is one thing the coordinator decided or did.
type Event struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	// What the event is about; only what applies is set.
	Stack     string `json:"stack,omitempty"`
	Node      string `json:"node,omitempty"`
	Service   string `json:"service,omitempty"`
	Slot      int    `json:"slot,omitempty"`
	Container string `json:"container,omitempty"`
	Snapshot  string `json:"snapshot,omitempty"`
	Set       string `json:"set,omitempty"`
	// Target is the node a task or stack went to.
	Target string `json:"target,omitempty"`
	// Reason says why (a release, a timeout, a failure, label errors).
	Reason   string    `json:"reason,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	MS       int64     `json:"ms,omitempty"`
	// Copy is how a held task's set reached its replacement's node (streamed,
	// direct).
	Copy string `json:"copy,omitempty"`
}

// Publisher is what every controller emits its events through.
type Publisher interface {
	// Publish emits e (At is set when zero). An error means e may not have reached
	// anyone; the event stream is best effort, the caller's work goes on.
	Publish(ctx context.Context, e Event) error
}

// Discard is a Publisher that drops every event.
type Discard struct{}

var _ Publisher = Discard{}

// Publish implements Publisher.
func (Discard) Publish(context.Context, Event) error { return nil }

// String is the event as one line (without its time): the kind, then what is set.
func (e Event) String() string {
	var b strings.Builder
	b.WriteString(e.Kind)
	add := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, quote(v))
		}
	}
	add("stack", e.Stack)
	add("node", e.Node)
	add("service", e.Service)
	if e.Slot != 0 {
		add("slot", fmt.Sprint(e.Slot))
	}
	add("container", e.Container)
	add("snapshot", e.Snapshot)
	add("set", e.Set)
	add("target", e.Target)
	add("copy", e.Copy)
	if !e.Deadline.IsZero() {
		add("deadline", e.Deadline.UTC().Format(time.RFC3339Nano))
	}
	if e.MS != 0 {
		add("ms", fmt.Sprint(e.MS))
	}
	add("reason", e.Reason)
	return b.String()
}

func quote(s string) string {
	if strings.ContainsAny(s, " \t\"=") {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// stamp sets e.At when it is zero.
func stamp(e Event) Event {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	return e
}
