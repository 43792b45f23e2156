package coordinator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// TestMigrateTimesItsStepsAndHashesOnce: a partial migration reports the wall time
// of each of its steps, in order. Its commit checks the sets it just wrote by their
// stamps (AgentCommitVerifier: no full re-hash), and its pre-flight does not re-hash
// them again; without a commit verdict the pre-flight re-hashes every set it restores.
func TestMigrateTimesItsStepsAndHashesOnce(t *testing.T) {
	counts := func(e *env) (verifies, rechecks int) {
		for _, ex := range e.execs {
			v, r := ex.VerifyCounts()
			verifies, rechecks = verifies+v, rechecks+r
		}
		return
	}
	t.Run("CommitVerified", func(t *testing.T) {
		e, _, _ := newMigrateEnvConfig(t, nil, func(c *coordinator.Config) {
			c.Verify = coordinator.AgentVerifier(c.Bus, 5*time.Second)
			c.VerifyCommit = coordinator.AgentCommitVerifier(c.Bus, 5*time.Second)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "steps1", Stack: "bank", From: "lab-2", Algorithm: "blocking"})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range res.Steps {
			names = append(names, s.Step)
			if s.MS < 0 {
				t.Errorf("step %s took %d ms", s.Step, s.MS)
			}
		}
		if got, want := strings.Join(names, ","), "plan,snapshot,dump,preflight,stop,restore,record"; got != want {
			t.Fatalf("steps %s, want %s", got, want)
		}
		if res.Snapshot.Verdict == nil || res.Snapshot.Verdict.Error != "" {
			t.Fatalf("verdict %+v: want the commit's check without an error", res.Snapshot.Verdict)
		}
		// Two moved sets: each checked once at the commit by its stamps, never re-hashed.
		if v, r := counts(e); v != 0 || r != 2 {
			t.Fatalf("full re-hashes %d, stamp rechecks %d; want 0 and 2 (commit only)", v, r)
		}
	})
	t.Run("NoCommitVerdict", func(t *testing.T) {
		e, _ := newMigrateEnv(t) // no Verify: the commit checks nothing
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "steps2", Stack: "bank", From: "lab-2", Algorithm: "blocking"}); err != nil {
			t.Fatal(err)
		}
		if v, r := counts(e); v != 2 || r != 0 {
			t.Fatalf("full re-hashes %d, stamp rechecks %d; want 2 (pre-flight) and 0", v, r)
		}
	})
}
