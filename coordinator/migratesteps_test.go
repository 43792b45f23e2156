package coordinator_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/worker"
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
		if got, want := strings.Join(names, ","), "plan,prepare,snapshot,dump,preflight,stop,restore,record"; got != want {
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

// TestMigratePreparesTargetsEarly: the targets of a partial migration are asked to
// get ready for the restore (network keepers) while the moving containers are dumped,
// before the pre-flight: a migration that its pre-flight refuses saw them prepared
// once (the early request, naming the restored containers), one that goes ahead twice.
func TestMigratePreparesTargetsEarly(t *testing.T) {
	waitPrepared := func(t *testing.T, e *env, n string, want int) []string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			var names []string
			for _, p := range e.execs[n].Prepared() {
				for _, c := range p.Containers {
					names = append(names, c.Name)
				}
			}
			if len(names) >= want || time.Now().After(deadline) {
				return names
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Run("Refused", func(t *testing.T) {
		e, _ := newMigrateEnv(t)
		e.execs["lab-1"].PreflightProblems = []string{"no space left for the restore: free some"}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "early1", Stack: "bank", From: "lab-2", Algorithm: "blocking"})
		if err == nil || !strings.Contains(err.Error(), "no space left") {
			t.Fatalf("err = %v, want the pre-flight's refusal", err)
		}
		// bank_holder.2 goes to lab-3, .5 to lab-1 (TestMigratePartial).
		if got := waitPrepared(t, e, "lab-3", 1); len(got) != 1 || !strings.HasPrefix(got[0], "bank_holder-2-") {
			t.Fatalf("lab-3 prepared %v, want the early request for bank_holder.2 only", got)
		}
	})
	t.Run("Migrated", func(t *testing.T) {
		e, _ := newMigrateEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "early2", Stack: "bank", From: "lab-2", Algorithm: "blocking"}); err != nil {
			t.Fatal(err)
		}
		if got := waitPrepared(t, e, "lab-3", 2); len(got) != 2 || got[0] != got[1] {
			t.Fatalf("lab-3 prepared %v, want bank_holder.2 twice (early, then after the pre-flight)", got)
		}
	})
}

// TestMigrateFreezesAfterTargetsReady: a partial migration asks its targets (and its
// source, for a put-back) to get ready and, by default, waits until they are (their
// network keepers run) before it locks, freezes or dumps anything on the source; a
// node not ready within MigratePrepareWait is not waited for further: the migration
// goes ahead (its restore waits for the keepers, as without the wait).
func TestMigrateFreezesAfterTargetsReady(t *testing.T) {
	t.Run("Ready", func(t *testing.T) {
		var (
			mu      sync.Mutex
			readies []string // per Ready prepare: what the source held when it was ready
		)
		var e *env
		// The wait is on by default (restore.DefaultPrepareWait).
		e, _, _ = newMigrateEnvConfig(t, nil, nil, func(f *worker.Fake) {
			f.PrepareReady = func(ctx context.Context, req worker.PreflightRequest) error {
				// The keepers "start" for up to 500 ms: a coordinator that does not wait
				// for them locks and freezes the source (lab-2) meanwhile.
				src := e.execs["lab-2"]
				deadline := time.Now().Add(500 * time.Millisecond)
				for len(src.Held()) == 0 && src.Dumps("ctr2")+src.Dumps("ctr5") == 0 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				mu.Lock()
				defer mu.Unlock()
				readies = append(readies, f.Node+": held "+strings.Join(src.Held(), ","))
				return nil
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "ready1", Stack: "bank", From: "lab-2", Algorithm: "blocking"})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		// bank_holder.2 goes to lab-3, .5 to lab-1 (TestMigratePartial): one Ready
		// prepare each, and one of the source (lab-2) for both, all answered before
		// anything was held on the source.
		if len(readies) != 3 {
			t.Fatalf("Ready prepares %v, want one per target (lab-1, lab-3) and one of the source (lab-2)", readies)
		}
		for _, r := range readies {
			if !strings.HasSuffix(r, ": held ") {
				t.Errorf("a target was ready only after the source was held (%s): the freeze must come after the keepers run", r)
			}
		}
		var prep int64 = -1
		for _, st := range res.Steps {
			if st.Step == "prepare" {
				prep = st.MS
			}
		}
		if prep < 400 {
			t.Errorf("prepare step %d ms, want the ~500 ms the targets took to be ready", prep)
		}
	})
	t.Run("Late", func(t *testing.T) {
		release := make(chan struct{})
		var (
			mu      sync.Mutex
			waiting int // Ready prepares still unanswered
		)
		e, _, _ := newMigrateEnvConfig(t, nil, func(c *coordinator.Config) { c.MigratePrepareWait = 200 * time.Millisecond }, func(f *worker.Fake) {
			f.PrepareReady = func(ctx context.Context, req worker.PreflightRequest) error {
				mu.Lock()
				waiting++
				mu.Unlock()
				defer func() { mu.Lock(); waiting--; mu.Unlock() }()
				select { // keepers that never get ready during this migration
				case <-release:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		})
		defer close(release)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "late1", Stack: "bank", From: "lab-2", Algorithm: "blocking"}); err != nil {
			t.Fatalf("migrate with targets not ready in time: %v; want it to go ahead without them", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if waiting != 3 {
			t.Fatalf("%d Ready prepares still waiting when the migration ended, want 3 (it went ahead without them)", waiting)
		}
		if got := e.execs["lab-2"].Dumps("ctr2"); got != 1 {
			t.Fatalf("bank_holder.2 (ctr2) dumped %d times, want 1", got)
		}
	})
}
