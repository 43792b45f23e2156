package api

import (
	"errors"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
)

// Prefix of every subject of this API.
const Prefix = "swarmckpt.v1.api"

// Operations (the last subject token).
const (
	OpSnapshot = "snapshot"
	OpList     = "list"
	OpInspect  = "inspect"
	OpRemove   = "rm"
	OpAbort    = "abort"
	OpRestore  = "restore"
	OpMigrate  = "migrate"
	OpStatus   = "status"
	OpPolicy   = "policy"
	OpHeld     = "held"
	OpNode     = "node"
)

// Subject is the subject of an operation.
func Subject(op string) string { return Prefix + "." + op }

// ProgressSubject carries the Events of one snapshot, restore or migration.
func ProgressSubject(id string) string { return "swarmckpt.v1.progress." + id }

// Error codes. ONLY APPEND.
const (
	CodeBadRequest = "bad_request" // the request is invalid (CLI exit 2)
	CodeNotFound   = "not_found"   // stack or snapshot does not exist (exit 3)
	CodeBusy       = "busy"        // the stack is being snapshotted already (exit 4)
	CodeNoWorker   = "no_worker"   // a node has no live worker (exit 1)
	CodeAborted    = "aborted"     // the snapshot was aborted (exit 5)
	CodeCorrupt    = "corrupt"     // a manifest or image failed to decode/verify (exit 1)
	CodeFailed     = "failed"      // anything else (exit 1)
)

// Error is a failure reported by the coordinator.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Sentinels matched by (*Error).Is through the code.
var (
	ErrBadRequest = errors.New("bad request")
	ErrNotFound   = errors.New("not found")
	ErrBusy       = errors.New("busy")
	ErrNoWorker   = errors.New("no live worker")
	ErrAborted    = errors.New("aborted")
	ErrCorrupt    = errors.New("corrupt")
)

// Is maps codes to sentinels.
func (e *Error) Is(target error) bool {
	switch e.Code {
	case CodeBadRequest:
		return target == ErrBadRequest
	case CodeNotFound:
		return target == ErrNotFound
	case CodeBusy:
		return target == ErrBusy
	case CodeNoWorker:
		return target == ErrNoWorker
	case CodeAborted:
		return target == ErrAborted
	case CodeCorrupt:
		return target == ErrCorrupt
	}
	return false
}

// Errorf builds an Error.
func Errorf(code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

// Reply wraps every answer.
type Reply[T any] struct {
	Result *T     `json:"result,omitempty"`
	Error  *Error `json:"error,omitempty"`
}

// SnapshotRequest asks for a snapshot of a stack.
type SnapshotRequest struct {
	// ID of the new snapshot; the coordinator picks one when empty.
	ID    string `json:"id,omitempty"`
	Stack string `json:"stack"`
	// Algorithm name; "" means blocking.
	Algorithm string `json:"algorithm,omitempty"`
	// Exit stops the containers after the dump (default: leave them running).
	Exit bool `json:"exit,omitempty"`
	// Timeout of the whole snapshot; 0 means the coordinator's default.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Replicas is how many nodes keep every image set (the original and N-1 copies on
	// other nodes); 0 means the stack's swarmckpt.replicas label, else 1.
	Replicas int `json:"replicas,omitempty"`
	// Exclude names services of the stack left out of the snapshot (their containers
	// keep running untouched; a restore starts them fresh); nil means the services the
	// stack's policy excludes (swarmckpt.exclude).
	Exclude []string `json:"exclude,omitempty"`
	// CarryVolumes packs the containers' local named volumes into the snapshot, so
	// that a restore on another node recreates them with their content.
	CarryVolumes bool `json:"carry_volumes,omitempty"`
	// Purpose is set by the coordinator on the snapshots it takes by itself (stored
	// as the manifest's Purpose); never on the wire.
	Purpose string `json:"-"`
	// Only, when set, names the containers (SERVICE.SLOT) the snapshot takes: the
	// others run on untouched (a partial migration's moving containers; the manifest
	// is then Partial). A name the stack does not run fails the snapshot. Set by the
	// coordinator; never on the wire.
	Only []string `json:"-"`
	// RequestID identifies this request (the CLI picks one at random): it is stored
	// with the snapshot, so that the same request sent again to a new leader, because
	// the leader it went to died before answering, is recognised: the new leader
	// reports the outcome of the snapshot begun under ID, or takes it if none was.
	RequestID string `json:"request_id,omitempty"`
}

// SnapshotResult is the outcome of a snapshot (also on abort, with Error set).
type SnapshotResult struct {
	Snapshot *store.Manifest `json:"snapshot"`
}

// ListRequest lists snapshots (of one stack, or all).
type ListRequest struct {
	Stack string `json:"stack,omitempty"`
}

// ListResult holds the snapshots, oldest first.
type ListResult struct {
	Snapshots []*store.Manifest `json:"snapshots"`
}

// InspectRequest shows one snapshot; Verify runs the cut checker on its images.
type InspectRequest struct {
	ID     string `json:"id"`
	Verify bool   `json:"verify,omitempty"`
}

// InspectResult is one snapshot.
type InspectResult struct {
	Snapshot *store.Manifest `json:"snapshot"`
}

// RemoveRequest deletes a snapshot and its images.
type RemoveRequest struct {
	ID string `json:"id"`
}

// RemoveResult says what was removed.
type RemoveResult struct {
	ID string `json:"id"`
	// ImagesRemoved counts the snapshot's image sets (one per container) of which
	// every copy on the workers is gone now (a migration's streamed copy or a set a
	// restore sent count with their set, not apart); Warnings lists the copies that
	// could not be deleted (their nodes will collect them when their worker starts).
	ImagesRemoved int      `json:"images_removed"`
	Warnings      []string `json:"warnings,omitempty"`
}

// AbortRequest aborts a running snapshot.
type AbortRequest struct {
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

// AbortResult acknowledges an abort.
type AbortResult struct {
	ID string `json:"id"`
}

// RestoreRequest restores a committed snapshot.
type RestoreRequest struct {
	ID string `json:"id"`
	// Targets maps SERVICE.SLOT to a node; unmapped containers go to nodes other than
	// their original ones.
	Targets map[string]string `json:"targets,omitempty"`
	// OnOriginal puts every container not in Targets back on its own original node.
	OnOriginal bool `json:"on_original,omitempty"`
	// Mode is ModeExact (default: standalone containers on their original addresses)
	// or ModeSwarm (swarm's own replacement tasks, restored on new addresses with the
	// set's connections kept by rewriting both ends; swarm picks the nodes, Targets
	// must be empty). See docs/restore.md.
	Mode string `json:"mode,omitempty"`
	// Constraints (ModeSwarm) are added to the services' placement constraints
	// before swarm starts the replacement tasks, e.g. "node.hostname!=lab-1".
	Constraints []string `json:"constraints,omitempty"`
	// Force restores a snapshot whose algorithm promises no consistent cut
	// (uncoordinated) without checking its cut first.
	Force bool `json:"force,omitempty"`
	// RecoveryLine (uncoordinated snapshots) restores the newest consistent
	// combination of the stack's snapshots of the same algorithm up to ID, checked
	// over the images: each container from the snapshot the line chose for it.
	RecoveryLine bool `json:"recovery_line,omitempty"`
	// DiscardRunning (either mode) replaces what runs of the stack without
	// checkpointing it first: a failed restore then cannot put it back with its state
	// (its services are started again fresh from their images).
	DiscardRunning bool `json:"discard_running,omitempty"`
}

// Restore modes.
const (
	ModeExact = "exact"
	ModeSwarm = "swarm"
)

// RestoreResult is the outcome of a restore.
type RestoreResult struct {
	ID      string            `json:"id"`
	Targets map[string]string `json:"targets"`
	// Containers is the new container id per SERVICE.SLOT.
	Containers map[string]string `json:"containers,omitempty"`
	TotalMS    int64             `json:"total_ms"`
	// Mode is the restore mode used.
	Mode string `json:"mode,omitempty"`
	// Before is the snapshot of what ran of the stack before this restore replaced
	// it (unless DiscardRunning): 'swarmckpt restore BEFORE --on-original' undoes the
	// restore (a swarm-mode restore's: 'swarmckpt restore BEFORE --mode swarm' too); 'swarmckpt rm BEFORE' when it is not needed.
	Before string `json:"before,omitempty"`
	// Addresses (ModeSwarm) is the address map applied: old IP -> new IP.
	Addresses map[string]string `json:"addresses,omitempty"`
	// Closed (ModeSwarm) lists connections closed at restore (none when every
	// connection stays inside the restored set).
	Closed []string `json:"closed,omitempty"`
	// CutCheck says how the restored cut was checked (its summary), or why not.
	CutCheck string `json:"cut_check,omitempty"`
	// From and RolledBack (RecoveryLine): per SERVICE.SLOT the snapshot it was
	// restored from and how many checkpoints it rolled back.
	From       map[string]string `json:"from,omitempty"`
	RolledBack map[string]int    `json:"rolled_back,omitempty"`
}

// MigrateRequest moves a stack (cold) to or away from a node.
type MigrateRequest struct {
	Stack     string `json:"stack"`
	To        string `json:"to,omitempty"`
	From      string `json:"from,omitempty"`
	Algorithm string `json:"algorithm,omitempty"`
	ID        string `json:"id,omitempty"`
	// Mode is the restore mode (RestoreRequest.Mode).
	Mode string `json:"mode,omitempty"`
	// CarryVolumes moves the containers' local named volumes with them
	// (SnapshotRequest.CarryVolumes).
	CarryVolumes bool `json:"carry_volumes,omitempty"`
	// Copy is how the moving containers' images reach their targets: CopyStreamed,
	// CopyDirect, CopyPostCopy or CopyPreCopy (the last two refused where a node
	// involved does not announce them: post-copy-migrate, or pre-copy on a kernel
	// without soft-dirty, as on this project's machines). Empty: the stack's
	// swarmckpt.migration label (cold is CopyStreamed), else CopyStreamed.
	Copy string `json:"copy,omitempty"`
	// WholeStack moves the whole stack cold (every container dumped, stopped and
	// restored, those that stay on their node too). Default: only the moving
	// containers (those on From, or those not on To) are dumped, stopped and
	// restored; the others run on untouched (exact mode: as standalone containers on
	// their own addresses; swarm mode: their tasks stopped by swarm are checkpointed
	// through the drain hold and restored as swarm's replacement tasks).
	WholeStack bool `json:"whole_stack,omitempty"`
}

// Migration copy modes (MigrateRequest.Copy).
const (
	// CopyStreamed: each moving container's images stream to its target while they
	// are dumped, and the dumping node keeps its copy (the rollback's).
	CopyStreamed = "streamed"
	// CopyDirect: the memory pages go straight from CRIU to a page server of the
	// target, no copy is written on the dumping node; the target's set is the
	// snapshot's only copy (the rollback sends it back from there).
	CopyDirect = "direct"
	// CopyPostCopy: the container restarts on the target before its pages arrived
	// (worker DumpLazy). Exact mode; asks the dumping nodes and the targets for
	// node.FeaturePostCopy and node.FeaturePostCopyMigrate; standalone containers only.
	// The source serves the pages until the last one arrived (restore.finishPostCopy).
	CopyPostCopy = "post-copy"
	// CopyPreCopy: iterative pre-dumps while the container runs (node.OpPreCopy; the
	// worker's policy, worker/migrate NextRound, decides when to stop), then a short
	// final dump of the pages dirtied since, streamed with the pre-dumps as for
	// CopyStreamed. Exact mode; needs soft-dirty page tracking on the dumping nodes
	// (node.FeaturePreCopy), refused otherwise before anything is touched.
	CopyPreCopy = "pre-copy"
)

// HeldRequest asks which containers of a snapshot that is not running are still held
// (network-locked or frozen) on their nodes: a CLI whose coordinator restarted during
// the snapshot asks the new one.
type HeldRequest struct {
	ID string `json:"id"`
}

// HeldResult names each container still held: where, what, until when (empty: every
// one was released). The coordinator waits up to 5 s for the release first; a node
// that does not answer is named too.
type HeldResult struct {
	Held []string `json:"held,omitempty"`
}

// NodeRequest sets a node's swarm availability (swarmckpt node drain|activate).
// For AvailabilityDrain the coordinator first migrates, off Node, every stack with
// containers there whose policy says swarmckpt.on-drain: migrate (one migration per
// stack, --from Node), then sets the node to drain; the other stacks are left to
// swarm (a fresh restart elsewhere). Progress goes to ProgressSubject(ID).
type NodeRequest struct {
	ID           string `json:"id,omitempty"`
	Node         string `json:"node"`
	Availability string `json:"availability"`
	// Mode is the migrations' restore mode; "" means each stack's swarmckpt.mode
	// label, else swarm (the moved tasks stay swarm tasks).
	Mode string `json:"mode,omitempty"`
}

// Node availabilities (NodeRequest.Availability), swarm's.
const (
	AvailabilityActive = "active"
	AvailabilityDrain  = "drain"
)

// NodeResult is the outcome of a NodeRequest.
type NodeResult struct {
	Node         string `json:"node"`
	Availability string `json:"availability"`
	// Migrated are the labelled stacks moved off the node, in order.
	Migrated []NodeMigration `json:"migrated,omitempty"`
	// LeftToSwarm are the stacks with containers on the node that are not labelled
	// swarmckpt.on-drain: migrate: swarm restarts their tasks fresh elsewhere.
	LeftToSwarm []string `json:"left_to_swarm,omitempty"`
}

// NodeMigration is one stack's migration off a drained node.
type NodeMigration struct {
	Stack    string `json:"stack"`
	Snapshot string `json:"snapshot"`
	// Moved counts the stack's containers that were on the node.
	Moved int    `json:"moved"`
	MS    int64  `json:"ms"`
	Error string `json:"error,omitempty"`
	// Tasks are the swarm-mode stack's tasks that were on the node, moved by the
	// drain hold (no snapshot: only they stopped).
	Tasks []NodeTask `json:"tasks,omitempty"`
}

// NodeTask is one held task of a swarm-mode stack drained off a node.
type NodeTask struct {
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	// Target is the node its replacement runs on; Set the checkpoint it was restored from.
	Target string `json:"target,omitempty"`
	Set    string `json:"set,omitempty"`
	// Copy is how the set reached Target: streamed (sent after the checkpoint) or
	// direct (dumped straight into Target, its only copy there).
	Copy string `json:"copy,omitempty"`
	// DowntimeMS: from the hold of its stop to its replacement seen running.
	DowntimeMS int64 `json:"downtime_ms,omitempty"`
	// Fresh says the task was not moved with its memory (Reason: why): swarm
	// restarts it fresh.
	Fresh  bool   `json:"fresh,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// MigrateResult is the outcome of a migration.
type MigrateResult struct {
	Snapshot *store.Manifest `json:"snapshot"`
	Restore  *RestoreResult  `json:"restore"`
	// Copy is the copy mode used (MigrateRequest.Copy, or the default it resolved to).
	Copy string `json:"copy,omitempty"`
	// Moved are the tasks a swarm-mode migration of only the moving tasks moved
	// through the drain hold, each checkpointed into its own set (no Snapshot then).
	Moved []NodeTask `json:"moved,omitempty"`
	// Steps is the wall time of each step of the migration, in order (a partial
	// migration's: plan, prepare (until the targets' network keepers run, before
	// anything is frozen), snapshot (dump and commit; dump is the longest container's
	// dump inside it), preflight, stop, restore (transfer, restore, unlock), record); empty
	// from coordinators older than it and for --whole-stack and --mode swarm.
	Steps []StepTime `json:"steps,omitempty"`
}

// StepTime is the wall time of one step of an operation.
type StepTime struct {
	Step string `json:"step"`
	MS   int64  `json:"ms"`
}

// StatusRequest asks for the coordinator's view of the cluster.
type StatusRequest struct{}

// StatusResult is the leading coordinator's view: live workers, every coordinator,
// the nodes and the running operations (swarmckpt status).
type StatusResult struct {
	Coordinator string         `json:"coordinator"` // the coordinator that answered (the leader)
	Workers     []store.Worker `json:"workers"`
	// Started is when this coordinator process started: a CLI that sees it change
	// during a request knows the coordinator restarted (or another one leads now) and
	// the request was lost.
	Started time.Time `json:"started,omitzero"`
	// Coordinators are every coordinator on the store, the leader first, then the
	// standbys in the order they would take over.
	Coordinators []store.Candidate `json:"coordinators,omitempty"`
	// Nodes are the nodes heard from (heartbeats) or in the memberlist membership,
	// sorted by name.
	Nodes []NodeStatus `json:"nodes,omitempty"`
	// Operations are the held stack locks: the snapshots, restores, migrations and
	// removals running, with the coordinator that runs each.
	Operations []Operation `json:"operations,omitempty"`
	// Warnings say what could not be read (the status is partial then).
	Warnings []string `json:"warnings,omitempty"`
}

// NodeStatus is one node in StatusResult.
type NodeStatus struct {
	Node string `json:"node"`
	// Live: its agent's heartbeats reach the coordinator.
	Live bool `json:"live"`
	// Member: its agent is an alive member of the memberlist membership (gossip);
	// false also when the coordinator runs without --gossip.
	Member bool `json:"member"`
	// WorkerAddr, CRIUVersion and Features come from the membership metadata (from
	// the heartbeat for a node that is not a member).
	WorkerAddr  string   `json:"worker_addr,omitempty"`
	CRIUVersion string   `json:"criu_version,omitempty"`
	Features    []string `json:"features,omitempty"`
}

// Operation is one held stack lock.
type Operation struct {
	Stack string `json:"stack"`
	// Owner is the lock's owner as stored: COORDINATOR/OPERATION.
	Owner       string `json:"owner"`
	Coordinator string `json:"coordinator"`
	// Kind is snapshot, restore, migrate or rm; ID the snapshot the operation is of
	// (or takes).
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// PolicyRequest asks for the effective policy of one stack ("" for every stack with
// a swarmckpt.* label).
type PolicyRequest struct {
	Stack string `json:"stack,omitempty"`
}

// PolicyResult lists the stacks' policies, sorted by stack.
type PolicyResult struct {
	Stacks []StackPolicy `json:"stacks"`
}

// StackPolicy is one stack's policy as the coordinator's reconciler applies it.
type StackPolicy struct {
	Stack string `json:"stack"`
	// Policy is the effective policy with, per label, the services it came from; nil
	// while LabelErrors holds anything (nothing of the labels is applied then).
	Policy      *policy.Policy `json:"policy,omitempty"`
	LabelErrors []string       `json:"label_errors,omitempty"`
	// Next is the next scheduled run (zero without a schedule).
	Next time.Time `json:"next,omitzero"`
	// Running is the scheduled snapshot in progress.
	Running string `json:"running,omitempty"`
	// Last is the last scheduled run's outcome.
	Last *store.PolicyRun `json:"last,omitempty"`
	// Skipped counts the scheduled runs skipped because the previous one (or a
	// manual operation on the stack) still went on.
	Skipped int `json:"skipped,omitempty"`
	// Kept counts the committed scheduled snapshots of the stack now stored.
	Kept int `json:"kept"`
	// Fences are the lost nodes the stack was restored away from (on-node-loss):
	// cleared once each node came back and its superseded containers were removed.
	Fences []store.Fence `json:"fences,omitempty"`
}

// Event is one progress event.
type Event struct {
	At        time.Time `json:"at"`
	ID        string    `json:"id"`
	Container string    `json:"container,omitempty"` // SERVICE.SLOT
	Node      string    `json:"node,omitempty"`
	// Phase: resolved, locked, dumped, committed, aborted, restoring, restored, ...
	Phase   string `json:"phase"`
	Message string `json:"message,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
	MS      int64  `json:"ms,omitempty"`
}
