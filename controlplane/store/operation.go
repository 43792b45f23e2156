package store

import (
	"context"
	"time"
)

// Operation is the journal of one restore or migration in progress: the coordinator
// writes it before each step that changes what runs, and deletes it when the
// operation ended (as asked, or rolled back). A coordinator that starts and finds one
// left by a dead predecessor knows from Step whether to finish the operation or put
// back what ran (coordinator/restore: Decide; docs/restore.md, "Journal").
type Operation struct {
	// ID names the operation: its stack lock's owner (coordinator/op-...).
	ID string `json:"id"`
	// Kind is restore, migrate, or keepers (a drain hold's network keepers).
	Kind  string `json:"kind"`
	Stack string `json:"stack"`
	// Snapshot is the snapshot being restored (a migration's own).
	Snapshot string `json:"snapshot"`
	// Mode is the restore mode (exact, swarm).
	Mode string `json:"mode,omitempty"`
	// Parked is the snapshot whose containers wait frozen since their dump for the
	// stop (a migration's own; a restore's checkpoint of what ran, its id chosen
	// before it is taken): what a rollback puts back. Empty: nothing ran (or the
	// running state is discarded).
	Parked string `json:"parked,omitempty"`
	// Step is the last step begun (coordinator/restore: Step*).
	Step string `json:"step"`
	// Targets are an exact restore's planned nodes (SERVICE.SLOT -> node).
	Targets map[string]string `json:"targets,omitempty"`
	// Nodes are a swarm-mode restore's candidate nodes (where sets were placed) and
	// Constraints the placement constraints it adds to the services.
	Nodes       []string `json:"nodes,omitempty"`
	Constraints []string `json:"constraints,omitempty"`
	// Stopped are the replicas the stop found (recorded once it is done; a partial
	// migration's, before it ends anything).
	Stopped map[string]uint64 `json:"stopped,omitempty"`
	// Ending are the services whose moved tasks a partial migration's stop began to
	// end (journaled before their end, with the nodes it paused): swarm may have
	// started their replacements, so a following coordinator finishes taking the
	// moved slots out of swarm's hands (the scale-down by them) before it puts the
	// moved containers back; the moved tasks of a service not named were never
	// ended, and are released (they run on as swarm tasks, with their state).
	Ending []string `json:"ending,omitempty"`
	// Paused are the swarm nodes a partial migration's stop set to pause for a moment
	// (journaled before each pause, dropped once they are active again): a following
	// coordinator sets those still paused active again before it puts anything back
	// (a container cannot join a swarm network on a paused node).
	Paused []string `json:"paused,omitempty"`
	// Kept are the moving tasks (SERVICE.SLOT) whose networks a drain hold had the
	// Nodes keep (Kind keepers, coordinator/restore KeepNetworks): a following
	// coordinator releases those keepers.
	Kept []string `json:"kept,omitempty"`
	// Coordinator is the coordinator that ran it.
	Coordinator string    `json:"coordinator"`
	UpdatedAt   time.Time `json:"updated_at"`

	// Revision is the store's version of this record, for compare-and-swap (0: not
	// stored yet). Not serialized.
	Revision int64 `json:"-"`
}

// Operations keeps the journals of restores and migrations in progress.
type Operations interface {
	// PutOperation stores op if the stored record's revision is op.Revision (0: there
	// is none), ErrConflict otherwise. Sets op.Revision.
	PutOperation(ctx context.Context, op *Operation) error
	// ListOperations returns every journaled operation, sorted by ID. One that does
	// not decode is an error wrapping ErrCorrupt naming its key.
	ListOperations(ctx context.Context) ([]*Operation, error)
	// DeleteOperation removes an operation's journal; absent: no error.
	DeleteOperation(ctx context.Context, id string) error
}
