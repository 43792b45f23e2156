package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms/registry"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// lineEnv is exactEnv's setup (three fake agents, a fake swarm running bank_holder at
// 3 replicas, a coordinator with an AgentRestorer) with the real algorithm registry,
// so that a snapshot's algorithm says whether its cut is trusted.
type lineEnv struct {
	*swarmEnv
	st  store.Store
	svc *coordinator.Service
}

func newLineEnv(t *testing.T) *lineEnv {
	e := &lineEnv{swarmEnv: newSwarmEnv(t), st: store.NewMemory()}
	ctx := context.Background()
	if err := e.sw.ScaleServices(ctx, "bank", map[string]uint64{"bank_holder": 3}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sw.Tasks(ctx, "bank"); err != nil {
		t.Fatal(err)
	}
	e.svc = serveRestores(t, e.swarmEnv, e.st, registry.Lookup)
	return e
}

// holderSocks are the sockets of one snapshot's connection bank_holder.1 (10.1.0.2,
// n1) <-> bank_holder.2 (10.1.0.3, n2): each end's rcv_nxt and write_seq (empty
// queues, so everything written was acknowledged).
type holderSocks struct{ in1, out1, in2, out2 uint32 }

// commit stores a committed snapshot id (epoch) of algorithm alg whose image sets are
// on their nodes and report socks.
func (e *lineEnv) commit(t *testing.T, id, alg string, epoch uint64, s holderSocks) *store.Manifest {
	t.Helper()
	m := bankManifest()
	m.ID, m.Algorithm, m.Epoch, m.CommittedAt = id, alg, epoch, time.Unix(int64(epoch), 0)
	for i := range m.Containers {
		c := &m.Containers[i]
		c.Images.Dir = "/fake/sets/" + node.SetID(id, c.Key())
	}
	e.putSets(m)
	set := func(k string) string { return node.SetID(id, k) }
	put := func(nodeName, set string, raw json.RawMessage) {
		if e.execs[nodeName].FakeSockets == nil {
			e.execs[nodeName].FakeSockets = map[string]json.RawMessage{}
		}
		e.execs[nodeName].FakeSockets[set] = raw
	}
	put("n1", set("bank_holder.1"), sockJSON(t, "10.1.0.2:40000", "10.1.0.3:9000", s.in1, s.out1))
	put("n2", set("bank_holder.2"), sockJSON(t, "10.1.0.3:9000", "10.1.0.2:40000", s.in2, s.out2))
	if err := e.st.Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *lineEnv) restore(t *testing.T, req api.RestoreRequest) (*api.RestoreResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req.OnOriginal = true
	return e.svc.Restore(ctx, req)
}

func (e *lineEnv) requireUntouched(t *testing.T, id string) {
	t.Helper()
	if e.sw.Stops != 0 || e.sw.Replicas("bank_holder") != 3 {
		t.Errorf("refused restore touched the stack: %d stops, %d replicas", e.sw.Stops, e.sw.Replicas("bank_holder"))
	}
	for _, n := range swarmNodes {
		if r := e.execs[n].Restored(); len(r) > 0 {
			t.Errorf("containers restored on %s by a refused restore: %v", n, r)
		}
	}
	if got, _ := e.st.Get(context.Background(), id); got == nil || len(got.Restores) != 0 {
		t.Errorf("refused restore recorded: %+v", got)
	}
}

var (
	consistentSocks = holderSocks{in1: 5000, out1: 1000, in2: 1000, out2: 5000}
	// bank_holder.2 holds 100 bytes bank_holder.1's checkpoint never sent (an orphan).
	orphanSocks = holderSocks{in1: 5000, out1: 1000, in2: 1100, out2: 5000}
)

// TestUncoordinatedRestoreChecksTheCut: an uncoordinated snapshot (no consistent-cut
// guarantee) is restored only if its cut checks out over the images; an inconsistent
// one is refused with nothing changed, naming the connection and both ways out.
func TestUncoordinatedRestoreChecksTheCut(t *testing.T) {
	t.Run("InconsistentRefused", func(t *testing.T) {
		e := newLineEnv(t)
		e.commit(t, "u1", "uncoordinated", 1, consistentSocks)
		e.commit(t, "u2", "uncoordinated", 2, orphanSocks)
		_, err := e.restore(t, api.RestoreRequest{ID: "u2"})
		for _, want := range []string{"restore of u2 refused: nothing was changed", "algorithm uncoordinated promises no consistent cut",
			"INCONSISTENT: 1 orphan", "bank_holder.1 -> bank_holder.2 [10.1.0.2:40000->10.1.0.3:9000]", "bank_holder.2 holds 100 byte(s) bank_holder.1 had not sent",
			"swarmckpt restore u2 --recovery-line", "swarmckpt restore u2 --force"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not say %q", err, want)
			}
		}
		e.requireUntouched(t, "u2")
	})
	t.Run("ConsistentRestored", func(t *testing.T) {
		e := newLineEnv(t)
		e.commit(t, "u1", "uncoordinated", 1, consistentSocks)
		res, err := e.restore(t, api.RestoreRequest{ID: "u1"})
		if err != nil || !strings.HasPrefix(res.CutCheck, "consistent: 2 directions checked") || len(res.From) != 0 {
			t.Fatalf("consistent uncoordinated cut: %+v %v", res, err)
		}
	})
	t.Run("Force", func(t *testing.T) {
		e := newLineEnv(t)
		e.commit(t, "u2", "uncoordinated", 2, orphanSocks)
		res, err := e.restore(t, api.RestoreRequest{ID: "u2", Force: true})
		if err != nil || !strings.Contains(res.CutCheck, "not checked (--force)") || len(res.Containers) != 3 {
			t.Fatalf("forced restore: %+v %v", res, err)
		}
		got, _ := e.st.Get(context.Background(), "u2")
		if len(got.Restores) != 1 || !strings.Contains(got.Restores[0].CutCheck, "--force") {
			t.Fatalf("record: %+v", got.Restores)
		}
	})
	t.Run("ConsistentCutAlgorithmNotChecked", func(t *testing.T) {
		// blocking promises a consistent cut: no check, even with sockets that would fail it.
		e := newLineEnv(t)
		e.commit(t, "b1", "blocking", 1, orphanSocks)
		res, err := e.restore(t, api.RestoreRequest{ID: "b1"})
		if err != nil || !strings.Contains(res.CutCheck, "not needed: algorithm blocking promises a consistent cut") {
			t.Fatalf("blocking: %+v %v", res, err)
		}
	})
	t.Run("UnreadableImagesRefused", func(t *testing.T) {
		e := newLineEnv(t)
		e.commit(t, "u1", "uncoordinated", 1, consistentSocks)
		e.execs["n3"].FailVerify = fmt.Errorf("image file images/pages-1.img: checksum mismatch")
		_, err := e.restore(t, api.RestoreRequest{ID: "u1"})
		if err == nil || !strings.Contains(err.Error(), "could not be checked") || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("unreadable images: %v", err)
		}
		e.requireUntouched(t, "u1")
	})
}

// TestRestoreRecoveryLine: --recovery-line restores each container from the newest
// snapshot that keeps the combination consistent; the receiver of an orphan moves
// back, and the restore uses (and records) the older image set.
func TestRestoreRecoveryLine(t *testing.T) {
	t.Run("ReceiverRollsBack", func(t *testing.T) {
		e := newLineEnv(t)
		e.commit(t, "u1", "uncoordinated", 1, consistentSocks)
		e.commit(t, "b9", "blocking", 3, consistentSocks) // another algorithm: not a candidate
		e.commit(t, "u2", "uncoordinated", 2, orphanSocks)
		e.commit(t, "u3", "uncoordinated", 4, orphanSocks) // newer than u2: not a candidate
		// Restoring bank_holder.2 from u2's set (or u3's) would fail: the line must use u1's.
		for _, n := range swarmNodes {
			e.execs[n].FailRestore = map[string]error{
				node.SetID("u2", "bank_holder.2"): fmt.Errorf("restored from the orphan's set"),
				node.SetID("u3", "bank_holder.2"): fmt.Errorf("restored from a newer snapshot")}
		}
		res, err := e.restore(t, api.RestoreRequest{ID: "u2", RecoveryLine: true})
		if err != nil {
			t.Fatalf("recovery line restore: %v", err)
		}
		wantFrom := map[string]string{"bank_holder.1": "u2", "bank_holder.2": "u1", "bank_holder.3": "u2"}
		wantBack := map[string]int{"bank_holder.1": 0, "bank_holder.2": 1, "bank_holder.3": 0}
		for k := range wantFrom {
			if res.From[k] != wantFrom[k] || res.RolledBack[k] != wantBack[k] {
				t.Errorf("%s from %s (%d back), want %s (%d back)", k, res.From[k], res.RolledBack[k], wantFrom[k], wantBack[k])
			}
		}
		if !strings.Contains(res.CutCheck, "recovery line: consistent") || len(res.Containers) != 3 {
			t.Errorf("result %+v", res)
		}
		got, _ := e.st.Get(context.Background(), "u2")
		if len(got.Restores) != 1 || got.Restores[0].From["bank_holder.2"] != "u1" || got.Restores[0].RolledBack["bank_holder.2"] != 1 {
			t.Errorf("record %+v", got.Restores)
		}
		// The snapshot's own manifest is not rewritten by the composite one.
		for _, c := range got.Containers {
			if !strings.Contains(c.Images.Dir, "u2.") {
				t.Errorf("snapshot u2's manifest now points at %s", c.Images.Dir)
			}
		}
	})
	t.Run("SenderRollsBackForLostBytes", func(t *testing.T) {
		// u2: bank_holder.1 had 500 more bytes acknowledged than bank_holder.2's
		// checkpoint received: the sender moves back.
		e := newLineEnv(t)
		e.commit(t, "u1", "uncoordinated", 1, consistentSocks)
		e.commit(t, "u2", "uncoordinated", 2, holderSocks{in1: 5000, out1: 1500, in2: 1000, out2: 5000})
		res, err := e.restore(t, api.RestoreRequest{ID: "u2", RecoveryLine: true})
		if err != nil || res.From["bank_holder.1"] != "u1" || res.From["bank_holder.2"] != "u2" || res.RolledBack["bank_holder.1"] != 1 {
			t.Fatalf("lost bytes: %+v %v", res, err)
		}
	})
	t.Run("NoLineRefused", func(t *testing.T) {
		e := newLineEnv(t)
		e.commit(t, "u1", "uncoordinated", 1, orphanSocks)
		e.commit(t, "u2", "uncoordinated", 2, orphanSocks)
		_, err := e.restore(t, api.RestoreRequest{ID: "u2", RecoveryLine: true})
		for _, want := range []string{"restore of u2 refused: nothing was changed", "no recovery line among the 2 committed uncoordinated snapshot(s)",
			"bank_holder.2 would have to go back past its oldest checkpoint", "orphan"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not say %q", err, want)
			}
		}
		e.requireUntouched(t, "u2")
	})
	t.Run("SwarmModeRefusesAnOlderContainer", func(t *testing.T) {
		e := newLineEnv(t)
		e.commit(t, "u1", "uncoordinated", 1, consistentSocks)
		e.commit(t, "u2", "uncoordinated", 2, orphanSocks)
		_, err := e.restore(t, api.RestoreRequest{ID: "u2", RecoveryLine: true, Mode: api.ModeSwarm})
		if err == nil || !strings.Contains(err.Error(), "restore it in exact mode") {
			t.Fatalf("swarm mode with a rolled-back line: %v", err)
		}
		e.requireUntouched(t, "u2")
	})
}

// TestMigrateRefusesAlgorithmWithoutConsistentCut: migrate stops the containers after
// their dump, so it needs a cut it can restore; nothing is snapshotted or stopped.
func TestMigrateRefusesAlgorithmWithoutConsistentCut(t *testing.T) {
	e := newLineEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := e.svc.Migrate(ctx, api.MigrateRequest{Stack: "bank", To: "n3", Algorithm: "uncoordinated"})
	if err == nil || !strings.Contains(err.Error(), "promises no consistent cut") || !strings.Contains(err.Error(), "--algorithm blocking") {
		t.Fatalf("migrate with uncoordinated: %v", err)
	}
	if ms, _ := e.st.List(ctx, "bank"); len(ms) != 0 || e.sw.Stops != 0 {
		t.Fatalf("a refused migrate snapshotted or stopped: %d snapshots, %d stops", len(ms), e.sw.Stops)
	}
}
