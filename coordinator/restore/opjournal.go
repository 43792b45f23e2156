package restore

import (
	"context"
	"maps"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// opJournal keeps the journal of one restore or migration in etcd (store.Operation):
// each step is written before it begins, so that a coordinator started after this
// one died knows whether to finish the operation or put back what ran
// (recoverops.go; Decide). A nil opJournal journals nothing.
type opJournal struct {
	s  *Restores
	op *store.Operation
}

// beginOp journals a new operation at StepBegun, before anything is changed:
// it is refused (nothing changed) if the journal cannot be written, since a crash
// later would leave nothing to recover it by. targets, when known (a restore's,
// planned by its pre-flight, which had them prepare), are journaled with it: a
// recovery releases what the targets prepared.
func (s *Restores) beginOp(ctx context.Context, owner, kind, stackName, snapshot, parked string, targets map[string]string) (*opJournal, error) {
	op := &store.Operation{ID: owner, Kind: kind, Stack: stackName, Snapshot: snapshot, Parked: parked, Mode: api.ModeExact,
		Step: StepBegun, Coordinator: s.cfg.Name, UpdatedAt: time.Now().UTC(), Targets: maps.Clone(targets)}
	if err := s.cfg.Store.PutOperation(ctx, op); err != nil {
		return nil, api.Errorf(api.CodeFailed, "%s of %s refused, nothing was changed: cannot journal it in the store (%v); check that etcd answers, then try again", kind, snapshot, err)
	}
	return &opJournal{s: s, op: op}, nil
}

// step journals that step begins, after set (if not nil) recorded what it needs.
func (j *opJournal) step(ctx context.Context, step string, set func(op *store.Operation)) error {
	if j == nil {
		return nil
	}
	if set != nil {
		set(j.op)
	}
	j.op.Step, j.op.UpdatedAt = step, time.Now().UTC()
	if err := j.s.cfg.Store.PutOperation(context.WithoutCancel(ctx), j.op); err != nil {
		j.s.log.Error("cannot journal a restore step", "operation", j.op.ID, "step", step, "err", err)
		return err
	}
	return nil
}

// record journals what set records, at the step the operation is at (nil j: nothing).
func (j *opJournal) record(ctx context.Context, set func(op *store.Operation)) error {
	if j == nil {
		return nil
	}
	return j.step(ctx, j.op.Step, set)
}

// end deletes the journal: the operation ended (as asked, rolled back, or refused).
func (j *opJournal) end(ctx context.Context) {
	if j == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := j.s.cfg.Store.DeleteOperation(cctx, j.op.ID); err != nil {
		j.s.log.Error("cannot delete the journal of an ended restore (the next coordinator start acts on it again)", "operation", j.op.ID, "err", err)
	}
}
