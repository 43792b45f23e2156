package coordinator

import "github.com/swarmckpt/swarmckpt/coordinator/restore"

// Internals the external tests reach.
var (
	SnapshotBudget = (*Service).snapshotBudget
	RestoreHold    = restore.HoldFor
	CarriedVolumes = restore.CarriedVolumes
)
