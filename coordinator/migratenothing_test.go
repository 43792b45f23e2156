package coordinator_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// TestWholeStackMigrationOfNothingRefused (fault seeds 3035, 3188): a --whole-stack
// migration that would move no container (--from a node where none of the stack's
// containers runs, --to the node where all run) is refused before anything is
// touched, as a partial migration is: no snapshot taken, nothing stopped. It used to
// stop the whole stack and restore every container where it ran.
func TestWholeStackMigrationOfNothingRefused(t *testing.T) {
	onOne := bankStack()
	for i := range onOne.Containers {
		onOne.Containers[i].Node = "lab-1"
	}
	e, _, _ := newMigrateEnvConfig(t, nil, func(c *coordinator.Config) { c.Resolver = stack.Static{"bank": onOne} })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, req := range []api.MigrateRequest{
		{ID: "none-to", Stack: "bank", To: "lab-1", Algorithm: "blocking", WholeStack: true},
		{ID: "none-from", Stack: "bank", From: "lab-2", Algorithm: "blocking", WholeStack: true},
		{ID: "none-to-direct", Stack: "bank", To: "lab-1", Algorithm: "blocking", WholeStack: true, Copy: api.CopyDirect},
	} {
		_, err := e.svc.Migrate(ctx, req)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeBadRequest || !strings.Contains(ae.Message, "nothing to move") {
			t.Errorf("migrate %+v: %v, want refused (bad request: nothing to move)", req, err)
		}
		if m, _ := e.store.Get(ctx, req.ID); m != nil {
			t.Errorf("migrate %s: a snapshot was taken (%s) though nothing was to move", req.ID, m.State)
		}
	}
	for n, ex := range e.execs {
		for _, c := range onOne.Containers {
			if d := ex.Dumps(c.ContainerID); d > 0 {
				t.Errorf("node %s dumped %s %d times for a migration of nothing", n, c.ContainerID, d)
			}
		}
	}
}
