package coordinator

import "github.com/swarmckpt/swarmckpt/coordinator/api"

// The API's entry points check every name a request carries first (api.ValidID and
// friends): a bad one is refused with api.CodeBadRequest before anything is locked,
// frozen, written or sent to a node, whatever the client.

// validSnapshotRequest checks a snapshot's stack and, when given, its id.
func validSnapshotRequest(req api.SnapshotRequest) error {
	if err := api.ValidStack(req.Stack); err != nil {
		return err
	}
	if req.Replicas < 0 || req.Replicas > MaxReplicas {
		return api.Errorf(api.CodeBadRequest, "replicas %d: give a number from 1 to %d (on how many nodes each image set is kept)", req.Replicas, MaxReplicas)
	}
	if req.ID != "" {
		return api.ValidID(req.ID)
	}
	return nil
}

// validRestoreRequest checks the snapshot id and every SERVICE.SLOT=NODE target.
func validRestoreRequest(req api.RestoreRequest) error {
	if err := api.ValidID(req.ID); err != nil {
		return err
	}
	return api.ValidTargets(req.Targets)
}

// validMigrateRequest checks the stack, the id when given and the nodes named.
func validMigrateRequest(req api.MigrateRequest) error {
	if err := validSnapshotRequest(api.SnapshotRequest{ID: req.ID, Stack: req.Stack}); err != nil {
		return err
	}
	for _, n := range []string{req.To, req.From} {
		if n == "" {
			continue
		}
		if err := api.ValidNode(n); err != nil {
			return err
		}
	}
	return nil
}

// validListRequest checks the stack when one is given.
func validListRequest(req api.ListRequest) error {
	if req.Stack == "" {
		return nil
	}
	return api.ValidStack(req.Stack)
}
