package coordinator

// Internals the external tests reach.
var (
	SnapshotBudget = (*Service).snapshotBudget
	RestoreHold    = restoreHold
	CarriedVolumes = carriedVolumes
)
