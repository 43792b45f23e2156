package algotest_test

import (
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/algotest"
	"github.com/swarmckpt/swarmckpt/algorithms/registry"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// fastRun drives one snapshot over cs with a FIFO queue and no traffic model: the
// minimum any simulator must do. It returns the number of messages and whether the
// snapshot committed.
func fastRun(alg algorithms.Algorithm, cs []protocol.Container) (msgs int, committed bool) {
	co := alg.NewCoordinator(algotest.TestConfig())
	parts := make(map[string]algorithms.Machine, len(cs))
	for _, c := range cs {
		parts[c.ID] = alg.NewContainer(algorithms.ContainerConfig{ID: c.ID})
	}
	var q []protocol.Envelope
	drain := func(sm algorithms.Machine) {
		for sm.HasReady() {
			rd := sm.Ready()
			for _, a := range rd.Actions {
				switch {
				case a.Kind == algorithms.ActCommit:
					committed = true
					q = append(q, algorithms.CommitDone(a, nil)) // written: the role sends commit
				case a.Kind.IsContainerAction():
					q = append(q, algorithms.Done(a, nil, nil, &protocol.DumpStats{}))
				}
			}
			q = append(q, rd.Messages...)
			msgs += len(rd.Messages)
			sm.Advance()
		}
	}
	_ = co.Step(protocol.Envelope{Type: protocol.TypeSnapshotRequest, Snapshot: "s1", To: protocol.Coordinator,
		Body: &protocol.SnapshotRequest{Containers: cs}})
	drain(co)
	for i := 0; i < len(q); i++ {
		m := q[i]
		sm := co
		if m.To.Kind == protocol.KindContainer {
			sm = parts[m.To.ID]
		}
		_ = sm.Step(m)
		drain(sm)
	}
	return msgs, committed
}

// BenchmarkSnapshot10k runs one snapshot of 10,000 containers on 1,000 nodes per
// algorithm through the real state machines (the scale target of the simulator).
func BenchmarkSnapshot10k(b *testing.B) {
	cs := algotest.Topology(10000, 10)
	for _, alg := range registry.All() {
		b.Run(alg.Name(), func(b *testing.B) {
			var msgs int
			for b.Loop() {
				var ok bool
				msgs, ok = fastRun(alg, cs)
				if !ok {
					b.Fatal("snapshot did not commit")
				}
			}
			b.ReportMetric(float64(msgs), "msgs/snapshot")
		})
	}
}

func TestFastRunCommits(t *testing.T) {
	for _, alg := range registry.All() {
		msgs, ok := fastRun(alg, algotest.Topology(50, 5))
		if !ok || msgs == 0 {
			t.Errorf("%s: committed=%v msgs=%d", alg.Name(), ok, msgs)
		}
	}
}
