package coordinator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// lateEnv is streamingEnv whose direct dumps land on targets that hash the received
// pages after the restore (worker --page-digests after-restore, the default), lab-3's
// hashes held until gate is closed; the coordinator verifies at the commit (Recheck)
// and for inspect --verify through the agents. It returns what stops the coordinator.
func lateEnv(t *testing.T, gate chan struct{}) (*env, *stack.FakeSwarm, context.CancelFunc) {
	var e *env
	e, sw, stop := newMigrateEnvConfig(t, nil, withAgentVerify, func(ex *worker.Fake) {
		ex.StreamTo = func(set, to string) error { e.execs[to].PutSet(set); return nil }
		ex.SendTo = func(set, to string) (bool, error) { e.execs[to].PutSet(set); return false, nil }
		ex.IntoTo = func(set, to string) (*imageset.Manifest, error) { return e.execs[to].ReceiveDirect(set), nil }
		ex.LateDigests = true
		if ex.Node == "lab-3" {
			ex.HashGate = gate
		}
	})
	return e, sw, stop
}

// withAgentVerify makes a test coordinator verify through the agents (the product's).
func withAgentVerify(c *coordinator.Config) {
	c.Verify = coordinator.AgentVerifier(c.Bus, 5*time.Second)
	c.VerifyCommit = coordinator.AgentCommitVerifier(c.Bus, 5*time.Second)
}

// pagesOf returns, for the moved containers of snapshot id (those not on lab-3 before),
// whether each record's pages are pending and its page file's digest.
func pagesOf(t *testing.T, e *env, id string) (pending []bool, digests []string) {
	t.Helper()
	m, err := e.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range bankNodes {
		if n == "lab-3" {
			continue
		}
		c := m.Containers[i]
		if c.Images == nil {
			t.Fatalf("%s has no image set in the record", c.Key())
		}
		pending = append(pending, c.Images.PagesPending)
		d := "?"
		for _, f := range c.Images.Files {
			if strings.HasSuffix(f.Name, "pages-1.img") {
				d = f.SHA256
			}
		}
		digests = append(digests, d)
	}
	return pending, digests
}

// TestMigrateDirectLateDigests: migrate --copy direct no longer waits for the target to
// hash the received pages: the migration restores and returns while lab-3's hash is
// held, its record commits with those pages' digests pending (PagesPending, counted
// in the header); once lab-3 hashed them the coordinator fills them into the record,
// also when the coordinator that ran the migration was stopped meanwhile (the next
// one picks them up from the target at start). inspect --verify and a restore of the
// snapshot wait for them; a set whose pages will never be hashed (its worker
// restarted without resuming) is recorded unverified and its restore refused.
func TestMigrateDirectLateDigests(t *testing.T) {
	want := worker.FakeImageFiles()[0].SHA256
	t.Run("FilledAfterTheRestore", func(t *testing.T) {
		gate := make(chan struct{})
		e, _, _ := lateEnv(t, gate)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// The hash is held: a migration that waited for it would time out here.
		res, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "late1", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true, Copy: api.CopyDirect})
		if err != nil {
			m, _ := e.store.Get(ctx, "late1")
			if m != nil {
				t.Logf("verdict at the commit: %+v", m.Verdict)
			}
			t.Fatal(err)
		}
		if got := len(e.execs["lab-3"].Restored()); got != 5 {
			t.Fatalf("%d containers restored on lab-3, want 5", got)
		}
		pending, digests := pagesOf(t, e, "late1")
		for i := range pending {
			if !pending[i] || digests[i] != "" {
				t.Fatalf("moved container %d right after the migration: pending %v digest %q, want pending without a digest", i, pending[i], digests[i])
			}
		}
		if res.Snapshot == nil || res.Snapshot.PagesPending != 4 {
			t.Fatalf("migration's snapshot header: %+v, want 4 sets with pending pages", res.Snapshot)
		}
		if h := e.execs["lab-3"].Hashed(); len(h) != 0 {
			t.Fatalf("lab-3 hashed %v before its gate opened", h)
		}
		close(gate)
		waitFor(t, "the page digests filled into the record", func() bool {
			pending, digests := pagesOf(t, e, "late1")
			for i := range pending {
				if pending[i] || digests[i] != want {
					return false
				}
			}
			return true
		})
		hs, err := e.store.Headers(ctx, "bank")
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if h.ID == "late1" && h.PagesPending != 0 {
				t.Errorf("header still counts %d sets with pending pages", h.PagesPending)
			}
		}
		if n := len(e.execs["lab-3"].Hashed()); n != 4 {
			t.Errorf("lab-3 hashed %d sets, want the 4 it received", n)
		}
	})

	t.Run("CoordinatorStoppedMeanwhile", func(t *testing.T) {
		gate := make(chan struct{})
		e, sw, stop := lateEnv(t, gate)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "late2", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true, Copy: api.CopyDirect}); err != nil {
			t.Fatal(err)
		}
		// The coordinator goes before lab-3 hashed the pages: nothing filled.
		stop()
		close(gate)
		waitFor(t, "lab-3 hashed the received pages", func() bool { return len(e.execs["lab-3"].Hashed()) == 4 })
		pending, _ := pagesOf(t, e, "late2")
		for i := range pending {
			if !pending[i] {
				t.Fatalf("moved container %d filled although its coordinator stopped before the hash", i)
			}
		}
		// The next coordinator finds them from the headers and asks lab-3, which kept
		// the digests with the sets.
		asks := e.execs["lab-3"].DigestAsks()
		t.Cleanup(e.startMigrateCoordinator(sw, e.store, withAgentVerify))
		waitFor(t, "the next coordinator filled the page digests", func() bool {
			pending, digests := pagesOf(t, e, "late2")
			for i := range pending {
				if pending[i] || digests[i] != want {
					return false
				}
			}
			return true
		})
		if n := e.execs["lab-3"].DigestAsks() - asks; n < 4 {
			t.Errorf("lab-3 answered %d digest requests from the next coordinator, want one per set (4)", n)
		}
	})

	t.Run("InspectVerifyWaits", func(t *testing.T) {
		gate := make(chan struct{})
		e, _, _ := lateEnv(t, gate)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "late3", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true, Copy: api.CopyDirect}); err != nil {
			t.Fatal(err)
		}
		go func() { time.Sleep(200 * time.Millisecond); close(gate) }() // the hash ends while inspect waits
		res, err := api.Call[api.InspectResult](ctx, e.client, api.OpInspect, api.InspectRequest{ID: "late3", Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		v := res.Snapshot.Verdict
		if v == nil || v.Error != "" || !v.Consistent {
			t.Fatalf("inspect --verify of a snapshot whose pages were pending: verdict %+v, want it verified once they came", v)
		}
		for _, c := range res.Snapshot.Containers {
			if c.Images.PagesPending {
				t.Errorf("%s still pending in inspect's answer", c.Key())
			}
		}
	})

	t.Run("NeverHashedRefused", func(t *testing.T) {
		gate := make(chan struct{})
		e, _, _ := lateEnv(t, gate)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := e.svc.Migrate(ctx, api.MigrateRequest{ID: "late4", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true, Copy: api.CopyDirect}); err != nil {
			t.Fatal(err)
		}
		// lab-3's worker restarts before the hash and cannot resume it.
		e.execs["lab-3"].Restart(false)
		waitFor(t, "the sets recorded unverified", func() bool {
			m, err := e.store.Get(ctx, "late4")
			if err != nil {
				return false
			}
			n := 0
			for _, c := range m.Containers {
				if c.Images != nil && c.Images.PagesUnverified != "" {
					n++
				}
			}
			return n == 4
		})
		m, err := e.store.Get(ctx, "late4")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range m.Containers {
			if u := c.Images.PagesUnverified; u != "" && (!strings.Contains(u, "lab-3") || !strings.Contains(u, "never")) {
				t.Errorf("%s unverified because %q, want lab-3 named and why", c.Key(), u)
			}
		}
		restored := len(e.execs["lab-3"].Restored())
		_, err = e.svc.Restore(ctx, api.RestoreRequest{ID: "late4"})
		for _, w := range []string{"refused, nothing was changed", "never hashed", "restore another snapshot"} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Fatalf("restore of a snapshot whose pages were never hashed: %v, want it refused with %q", err, w)
			}
		}
		if got := len(e.execs["lab-3"].Restored()); got != restored {
			t.Errorf("the refused restore restored %d containers", got-restored)
		}
		res, err := api.Call[api.InspectResult](ctx, e.client, api.OpInspect, api.InspectRequest{ID: "late4", Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		if v := res.Snapshot.Verdict; v == nil || !strings.Contains(v.Error, "never hashed") {
			t.Errorf("inspect --verify of a snapshot whose pages were never hashed: verdict %+v, want it to say so", v)
		}
	})
}

// TestCommitAcceptsOnlyPendingPageFiles: the store commits a record whose set marks its
// pages pending with the page files' digests left out, and nothing else without one.
func TestCommitAcceptsOnlyPendingPageFiles(t *testing.T) {
	files := func(pagesDigest, otherDigest string) []store.File {
		return []store.File{{Name: "images/pages-1.img", Size: 10, SHA256: pagesDigest}, {Name: "images/core-1.img", Size: 5, SHA256: otherDigest}}
	}
	good := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name    string
		img     store.ImageSet
		wantErr bool
	}{
		{"pending pages", store.ImageSet{Node: "n", Durable: true, PagesPending: true, Files: files("", good)}, false},
		{"pages without a digest, not pending", store.ImageSet{Node: "n", Durable: true, Files: files("", good)}, true},
		{"pending, another file without a digest", store.ImageSet{Node: "n", Durable: true, PagesPending: true, Files: files(good, "")}, true},
	} {
		m := &store.Manifest{ID: "x", Containers: []store.Container{{Service: "s", Slot: 1, Images: &tc.img}}}
		if err := m.Complete(); (err != nil) != tc.wantErr {
			t.Errorf("%s: Complete %v, want error %v", tc.name, err, tc.wantErr)
		}
	}
}
