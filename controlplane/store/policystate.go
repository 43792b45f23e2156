package store

import (
	"context"
	"encoding/json"
	"time"
)

// PolicyState is what the coordinator's policy reconciler keeps per stack, so that a
// restarted coordinator continues a stack's schedule without a doubled run and
// finishes the retention of a run its predecessor started.
type PolicyState struct {
	Stack string `json:"stack"`
	// Policy is the effective policy last derived from the stack's labels (JSON of
	// coordinator/policy.Policy); empty while the labels are in error.
	Policy json.RawMessage `json:"policy,omitempty"`
	// LabelErrors are the stack's label errors (nothing of its policy is applied).
	LabelErrors []string `json:"label_errors,omitempty"`
	// Schedule is the schedule Next was computed from.
	Schedule string    `json:"schedule,omitempty"`
	Next     time.Time `json:"next,omitzero"`
	// Running is the id of the scheduled snapshot in progress, stored before it
	// starts.
	Running string `json:"running,omitempty"`
	// Last is the outcome of the last scheduled run.
	Last *PolicyRun `json:"last,omitempty"`
	// Skipped counts the runs skipped because the previous one still went on.
	Skipped int `json:"skipped,omitempty"`
	// Fences are the nodes lost while they ran part of the stack, whose containers
	// of it must not come back with them (coordinator/nodeloss): written before the
	// stack is restored elsewhere, removed once the node came back and was cleared.
	Fences []Fence `json:"fences,omitempty"`
	// UpdatedAt is when the reconciler last changed this record.
	UpdatedAt time.Time `json:"updated_at"`

	// Revision is the store's version of this record, for compare-and-swap (0: not
	// stored yet). Not serialized.
	Revision int64 `json:"-"`
}

// Fence is the record of one lost node of a stack (PolicyState.Fences).
type Fence struct {
	// Node is the lost node.
	Node string `json:"node"`
	// Snapshot is the snapshot the stack is restored from.
	Snapshot string `json:"snapshot"`
	// At is when the node was declared lost (before the restore began).
	At time.Time `json:"at"`
	// Keep are the containers the restore created (filled in after it): never
	// removed, wherever they run.
	Keep []string `json:"keep,omitempty"`
}

// PolicyRun is the outcome of one scheduled run.
type PolicyRun struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
	// Result: committed, aborted, skipped or failed.
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	// Removed lists the snapshots retention removed after it.
	Removed []string `json:"removed,omitempty"`
}

// Policies keeps the reconciler's per-stack records.
type Policies interface {
	// PutPolicy stores p if the stored record's revision is p.Revision (0: there is
	// none), ErrConflict otherwise. Sets p.Revision.
	PutPolicy(ctx context.Context, p *PolicyState) error
	// ListPolicies returns every record, sorted by stack.
	ListPolicies(ctx context.Context) ([]*PolicyState, error)
	// DeletePolicy removes a stack's record; absent: no error.
	DeletePolicy(ctx context.Context, stack string) error
}
