package restore

import "github.com/swarmckpt/swarmckpt/controlplane/store"

// The steps of a restore or migration, journaled (store.Operation.Step) before each
// one begins, so that a coordinator started after a crash knows what the dead one
// may have changed (docs/restore.md, "Journal").
const (
	// StepBegun: the stack is locked and nothing is stopped; the parked snapshot
	// (a restore's checkpoint of what runs, a migration's own) may be being taken or
	// be committed, its containers frozen and locked since their dump.
	StepBegun = "begun"
	// StepStopping: the stop begins: the parked containers are ended, the services
	// scaled to 0, the standalone containers of an earlier restore removed; in swarm
	// mode (Operation.Mode) the sets are copied to the candidate nodes
	// (Operation.Nodes) meanwhile.
	StepStopping = "stopping"
	// StepRestoring: the stop is done (Operation.Stopped recorded); the snapshot's
	// containers are being restored on their targets (swarm mode: sets placed for
	// every slot on every candidate node, the services scaled up with
	// Operation.Constraints, the tasks restored from their placements).
	StepRestoring = "restoring"
	// StepRestored: every container runs restored (journaled before they are
	// unlocked); what is left is their unlock, bookkeeping (the restore's record, the
	// migration's unused streamed copies) and, for a post-copy migration, the end of
	// each source once it served its last page (the post-copy window).
	StepRestored = "restored"
)

// Action is what a recovering coordinator does with an interrupted operation.
type Action string

const (
	// ActRelease: nothing was stopped; the parked containers, if their snapshot
	// committed, are released (they run on as before). An uncommitted one the
	// snapshot recovery aborted, which released them already.
	ActRelease Action = "release"
	// ActRollBack: the stop may have begun: stop what still runs of the stack
	// (idempotent: the parked containers ended, the services at 0, every standalone
	// container of the stack removed, the half-restored ones included, placements
	// taken back, constraints removed), then put the parked snapshot back: a
	// swarm-mode restore's checkpoint as swarm tasks (the services at the replicas
	// they had), else (or if that fails) on its original nodes. A post-copy
	// migration's sources are not ended but put back where they were (their page
	// servers stopped, their networks given back, released).
	ActRollBack Action = "roll back"
	// ActScaleBack: the stop may have begun, but nothing was parked (nothing ran, or
	// the restore discarded the running state): the services are scaled back to the
	// replicas the stop found, as a failed restore without a checkpoint does.
	ActScaleBack Action = "scale back"
	// ActRollForward: the restore completed; the restored containers are unlocked,
	// its bookkeeping finished, and a post-copy migration's sources ended once each
	// served its last page (a source that failed first: data loss, reported).
	ActRollForward Action = "roll forward"
)

// Decide is the roll-forward/back rule: a restore that completed is finished
// (ActRollForward); one interrupted before its stop is released (ActRelease); one
// interrupted from its stop on is rolled back to the parked snapshot (ActRollBack;
// ActScaleBack when nothing was parked). Never forward through a restore that did
// not complete: the parked snapshot is on the original nodes and known good, and
// putting it back is the path every failed restore takes. An unknown step (a newer
// coordinator's journal) is rolled back too: it is the safe direction. Pure.
func Decide(op *store.Operation) Action {
	switch op.Step {
	case StepBegun:
		return ActRelease
	case StepRestored:
		return ActRollForward
	}
	if op.Parked == "" {
		return ActScaleBack
	}
	return ActRollBack
}
