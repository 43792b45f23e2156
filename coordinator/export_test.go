package coordinator

import (
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
)

// Internals the external tests reach.
var (
	SnapshotBudget = (*Service).snapshotBudget
	RestoreHold    = restore.HoldFor
	CarriedVolumes = restore.CarriedVolumes
	LiveWorkers    = func(s *Service) []store.Worker { return s.live.live() }
)
