package sim

import (
	"reflect"
	"testing"
)

// TestLazyTicksChangeNothing: ticking only the container roles whose timer is due
// (algorithms.TickSkipper) gives the same reports, round by round, as ticking every
// role on every tick, with and without faults (crashed workers restart roles, lost
// decisions let watchdogs fire), also with a worker queue (Config.WorkerSlots).
func TestLazyTicksChangeNothing(t *testing.T) {
	faults := []Faults{{}, {Loss: 0.2, Dup: 0.05, WorkerCrashes: 2, Partitions: 1, CoordinatorCrash: true}}
	for _, alg := range realAlgorithms() {
		for fi, f := range faults {
			for _, g := range []Graph{Ring, AllToAll, Star} {
				cfg := small()
				cfg.Graph, cfg.Faults, cfg.Rounds, cfg.Seed = g, f, 3, 11
				if g == Star { // and the worker queue, every container a peer of every other
					cfg.WorkerSlots, cfg.AllPeers = 1, true
				}
				if fi > 0 {
					cfg.TimeoutTicks, cfg.WatchdogGraceTicks = 60, 10 // watchdogs fire within the run
				}
				lazy, err := runAll(cfg, alg, true)
				if err != nil {
					t.Fatal(err)
				}
				eager, err := runAll(cfg, alg, false)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(lazy, eager) {
					t.Fatalf("%s %s faults %+v: lazy ticking changed the run:\n%s\n---\n%s", alg.Name(), g, f,
						lazy[len(lazy)-1].String(), eager[len(eager)-1].String())
				}
			}
		}
	}
}
