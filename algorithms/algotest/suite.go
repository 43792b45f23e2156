package algotest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/protocol"
)

func isBusy(err error) bool { return errors.Is(err, algorithms.ErrBusy) }

// TestConfig is the coordinator config the suite uses: short timeouts keep runs small.
func TestConfig() algorithms.Config {
	return algorithms.Config{Timeout: 40, WatchdogGrace: 10, FirstEpoch: 1}
}

func newDriver(t testing.TB, alg algorithms.Algorithm, n int, seed uint64, f Faults) *Driver {
	t.Helper()
	d, err := NewDriver(alg, Options{Containers: Topology(n, 2), Config: TestConfig(), Seed: seed, Faults: f})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustCheck(t testing.TB, d *Driver, alg algorithms.Algorithm) {
	t.Helper()
	if err := d.Check(alg.Guarantees().ConsistentCut); err != nil {
		t.Fatalf("invariants violated:\n%v", err)
	}
}

// Run is the conformance suite every algorithm must pass.
func Run(t *testing.T, alg algorithms.Algorithm) {
	t.Run("commits", func(t *testing.T) {
		d := newDriver(t, alg, 6, 1, Faults{})
		d.Traffic("c0", "c1", 10)
		if err := d.Request("s1"); err != nil {
			t.Fatal(err)
		}
		d.Settle()
		mustCheck(t, d, alg)
		if got := d.Committed(); len(got) != 1 || got[0] != "s1" {
			t.Fatalf("committed %v, outcomes %+v; want s1 committed", got, d.Outcomes)
		}
	})
	t.Run("sequential snapshots under traffic", func(t *testing.T) {
		d := newDriver(t, alg, 7, 2, Faults{})
		for i := 1; i <= 3; i++ {
			for range 5 {
				d.RandomTraffic()
			}
			if err := d.Request(fmt.Sprintf("s%d", i)); err != nil {
				t.Fatal(err)
			}
			for d.DeliverOne(false) {
				d.RandomTraffic()
			}
		}
		d.Settle()
		mustCheck(t, d, alg)
		if got := d.Committed(); len(got) != 3 {
			t.Fatalf("committed %v, outcomes %+v; want 3", got, d.Outcomes)
		}
	})
	t.Run("second request refused", func(t *testing.T) {
		d := newDriver(t, alg, 4, 3, Faults{})
		if err := d.Request("s1"); err != nil {
			t.Fatal(err)
		}
		err := d.Request("s2")
		var be *algorithms.BusyError
		if !errors.Is(err, algorithms.ErrBusy) || !errors.As(err, &be) || be.Active != "s1" || be.Requested != "s2" {
			t.Fatalf("second request: err = %v, want *BusyError{Active: s1, Requested: s2}", err)
		}
		if err := d.Request("s1"); err != nil {
			t.Fatalf("duplicate of the active request: %v, want ignored", err)
		}
		d.Settle()
		mustCheck(t, d, alg)
		if got := d.Committed(); len(got) != 1 || got[0] != "s1" {
			t.Fatalf("committed %v; want only s1", got)
		}
		if err := d.Request("s3"); err != nil {
			t.Fatalf("request after the end: %v", err)
		}
		d.Settle()
		mustCheck(t, d, alg)
	})
	t.Run("participant never answers", func(t *testing.T) {
		d := newDriver(t, alg, 5, 4, Faults{})
		d.Mute("c3")
		if err := d.Request("s1"); err != nil {
			t.Fatal(err)
		}
		d.Settle()
		mustCheck(t, d, alg)
		if len(d.Outcomes) != 1 || d.Outcomes[0].Committed || !strings.Contains(d.Outcomes[0].Reason, "c3") {
			t.Fatalf("outcomes %+v; want s1 aborted naming c3", d.Outcomes)
		}
	})
	t.Run("decision lost, watchdogs release", func(t *testing.T) {
		d := newDriver(t, alg, 5, 5, Faults{})
		if err := d.Request("s1"); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			d.DeliverOne(true)
		}
		// The coordinator dies for good: nobody sends a decision. Watchdogs must
		// release every container.
		d.coord = alg.NewCoordinator(d.opts.Config)
		d.Accepted = map[string]uint64{}
		d.Outcomes = nil
		d.Settle()
		if h := d.Held(); len(h) > 0 {
			t.Fatalf("containers still held without a coordinator: %v", h)
		}
	})
	t.Run("coordinator restart aborts undecided", func(t *testing.T) {
		d := newDriver(t, alg, 5, 6, Faults{})
		if err := d.Request("s1"); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			d.DeliverOne(true)
		}
		d.CrashCoordinator()
		d.Settle()
		mustCheck(t, d, alg)
		if len(d.Outcomes) != 1 || d.Outcomes[0].Committed {
			t.Fatalf("outcomes %+v; want s1 aborted by the restarted coordinator", d.Outcomes)
		}
		if err := d.Request("s2"); err != nil {
			t.Fatal(err)
		}
		d.Settle()
		mustCheck(t, d, alg)
		if got := d.Committed(); len(got) != 1 || got[0] != "s2" {
			t.Fatalf("committed %v; want s2 after the restart", got)
		}
		if d.Outcomes[1].Epoch <= d.Outcomes[0].Epoch {
			t.Fatalf("epochs %d then %d; want strictly increasing across a restart", d.Outcomes[0].Epoch, d.Outcomes[1].Epoch)
		}
	})
	t.Run("coordinator restart after decision resends it", func(t *testing.T) {
		d := newDriver(t, alg, 4, 7, Faults{})
		if err := d.Request("s1"); err != nil {
			t.Fatal(err)
		}
		for len(d.Outcomes) == 0 && d.DeliverOne(true) {
		}
		d.Drop(protocol.ContainerAddr("c1")) // the decision to c1 is lost
		d.CrashCoordinator()
		d.Settle()
		mustCheck(t, d, alg)
		if len(d.Outcomes) != 1 {
			t.Fatalf("outcomes %+v; want exactly one", d.Outcomes)
		}
	})
	t.Run("failed commit aborts and keeps the old state", func(t *testing.T) {
		d := newDriver(t, alg, 5, 8, Faults{})
		if err := d.Request("s1"); err != nil {
			t.Fatal(err)
		}
		d.Settle()
		d.Traffic("c0", "c1", 10)
		d.FailNextCommit("commit refused: stack lock lost")
		if err := d.Request("s2"); err != nil {
			t.Fatal(err)
		}
		d.Settle()
		mustCheck(t, d, alg)
		if len(d.Outcomes) != 2 || d.Outcomes[1].Committed || d.Outcomes[1].Reason != "commit refused: stack lock lost" {
			t.Fatalf("outcomes %+v; want s2 aborted with the commit's failure as its reason", d.Outcomes)
		}
		// The algorithm state is the one of s1: a third snapshot never builds on s2
		// (the driver refuses to reuse the images of a snapshot that was not committed).
		d.Traffic("c1", "c2", 5)
		if err := d.Request("s3"); err != nil {
			t.Fatal(err)
		}
		d.Settle()
		mustCheck(t, d, alg)
		if got := d.Committed(); len(got) != 2 || got[1] != "s3" {
			t.Fatalf("committed %v, outcomes %+v; want s1 and s3", got, d.Outcomes)
		}
	})
	t.Run("abort request aborts with its reason", func(t *testing.T) {
		d := newDriver(t, alg, 5, 9, Faults{})
		if err := d.Request("s1"); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			d.DeliverOne(true)
		}
		d.RequestAbort("s1", "aborted by the user")
		d.RequestAbort("s1", "again") // after the decision: ignored
		d.Settle()
		mustCheck(t, d, alg)
		if len(d.Outcomes) != 1 || d.Outcomes[0].Committed || d.Outcomes[0].Reason != "aborted by the user" {
			t.Fatalf("outcomes %+v; want s1 aborted with the requested reason, as given", d.Outcomes)
		}
		d.RequestAbort("s0", "unknown snapshot") // not the active one: ignored
		if err := d.Request("s2"); err != nil {
			t.Fatal(err)
		}
		d.Settle()
		mustCheck(t, d, alg)
		if got := d.Committed(); len(got) != 1 || got[0] != "s2" {
			t.Fatalf("committed %v; want s2", got)
		}
	})
	t.Run("commit being written ignores aborts and timeouts", func(t *testing.T) {
		d := newDriver(t, alg, 4, 10, Faults{})
		d.HoldCommits()
		if err := d.Request("s1"); err != nil {
			t.Fatal(err)
		}
		for d.DeliverOne(true) {
		}
		if len(d.held) != 1 {
			t.Fatalf("%d commit outcomes pending, want 1 (outcomes %+v)", len(d.held), d.Outcomes)
		}
		d.RequestAbort("s1", "too late")
		for range TestConfig().Timeout + 1 {
			d.coord.Tick()
		}
		d.process()
		if d.InFlight() != 0 {
			t.Fatalf("%d messages sent while the commit was being written, want none", d.InFlight())
		}
		d.ReleaseCommits()
		d.Settle()
		mustCheck(t, d, alg)
		if got := d.Committed(); len(d.Outcomes) != 1 || len(got) != 1 {
			t.Fatalf("outcomes %+v; want s1 committed once", d.Outcomes)
		}
	})
	t.Run("duplicates and reordering", func(t *testing.T) {
		for seed := uint64(10); seed < 30; seed++ {
			d := newDriver(t, alg, 6, seed, Faults{Dup: 400})
			if _, err := d.RandomSchedule(300); err != nil {
				t.Fatal(err)
			}
			d.Settle()
			if err := d.Check(alg.Guarantees().ConsistentCut); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			if len(d.Committed()) == 0 && len(d.Accepted) > 0 {
				t.Fatalf("seed %d: nothing committed without losses: %+v", seed, d.Outcomes)
			}
		}
	})
	t.Run("resend turns losses into delays", func(t *testing.T) {
		commits := func(resend uint64) (committed, decided int) {
			for seed := uint64(200); seed < 230; seed++ {
				cfg := TestConfig()
				cfg.Resend = resend
				d, err := NewDriver(alg, Options{Containers: Topology(6, 2), Config: cfg, Seed: seed, Faults: Faults{Drop: 150, Dup: 50}})
				if err != nil {
					t.Fatal(err)
				}
				for i := 1; i <= 3; i++ {
					if err := d.Request(fmt.Sprintf("s%d", i)); err != nil {
						t.Fatal(err)
					}
					for range 200 {
						if !d.DeliverOne(false) {
							d.Tick()
						}
					}
				}
				d.Settle()
				if err := d.Check(alg.Guarantees().ConsistentCut); err != nil {
					t.Fatalf("seed %d resend %d: %v", seed, resend, err)
				}
				committed += len(d.Committed())
				decided += len(d.Outcomes)
			}
			return committed, decided
		}
		without, n1 := commits(0)
		with, n2 := commits(4)
		t.Logf("15%% message loss: %d/%d snapshots committed without resend, %d/%d with Resend=4", without, n1, with, n2)
		if with <= without {
			t.Fatalf("resend did not help: %d commits with, %d without", with, without)
		}
	})
	t.Run("faults", func(t *testing.T) {
		for seed := uint64(100); seed < 140; seed++ {
			f := Faults{Drop: 30, Dup: 100, CoordinatorCrash: 20, WorkerCrash: 10}
			cfg := TestConfig()
			cfg.Resend = seed % 5 // every other value re-sends
			if err := runSchedule(alg, cfg, seed, f, 8, 400); err != nil {
				t.Fatalf("seed %d resend %d: %v", seed, cfg.Resend, err)
			}
		}
	})
	t.Run("skipping ticks equals ticking", func(t *testing.T) { testTickSkipping(t, alg) })
}

// testTickSkipping: a container role that implements algorithms.TickSkipper behaves,
// after SkipTicks(n), exactly as after n calls of Tick, whether or not its watchdog
// fires within them; the ticks before TicksUntilDue produce nothing.
func testTickSkipping(t *testing.T, alg algorithms.Algorithm) {
	cs := Topology(3, 1)
	coord := alg.NewCoordinator(TestConfig())
	err := coord.Step(protocol.Envelope{Version: protocol.Version, Type: protocol.TypeSnapshotRequest, Snapshot: "s1",
		From: protocol.ClientAddr("test"), To: protocol.Coordinator,
		Body: &protocol.SnapshotRequest{Algorithm: alg.Name(), Containers: cs}})
	if err != nil {
		t.Fatal(err)
	}
	var cmds []protocol.Envelope
	for _, m := range coord.Ready().Messages {
		if m.To == protocol.ContainerAddr(cs[0].ID) {
			cmds = append(cmds, m)
		}
	}
	if len(cmds) == 0 {
		t.Fatalf("the coordinator's first Ready sends nothing to %s", cs[0].ID)
	}
	started := func() algorithms.Machine {
		m := alg.NewContainer(algorithms.ContainerConfig{ID: cs[0].ID})
		for _, e := range cmds {
			if err := m.Step(e); err != nil {
				t.Fatal(err)
			}
		}
		m.Ready()
		m.Advance()
		return m
	}
	if _, ok := started().(algorithms.TickSkipper); !ok {
		t.Logf("%s: the container role does not implement algorithms.TickSkipper; nothing to check", alg.Name())
		return
	}
	due := started().(algorithms.TickSkipper).TicksUntilDue()
	if due == 0 {
		t.Fatalf("TicksUntilDue 0 after the snapshot's first command: the watchdog should run")
	}
	for _, n := range []uint64{1, due - 1, due, due + 5} {
		ticked, skipped := started(), started()
		for k := uint64(1); k <= n; k++ {
			ticked.Tick()
			if k < due && ticked.HasReady() {
				t.Fatalf("tick %d of %d before the watchdog is due produced %+v", k, due, ticked.Ready())
			}
		}
		skipped.(algorithms.TickSkipper).SkipTicks(n)
		if !reflect.DeepEqual(ticked, skipped) {
			t.Fatalf("SkipTicks(%d) (due in %d) differs from %d calls of Tick:\n%+v\n%+v", n, due, n, skipped, ticked)
		}
		if n >= due && !skipped.HasReady() {
			t.Fatalf("after %d ticks (due in %d) the watchdog did not fire", n, due)
		}
		want := uint64(0) // fired
		if n < due {
			want = due - n
		}
		if got := skipped.(algorithms.TickSkipper).TicksUntilDue(); got != want {
			t.Fatalf("after %d ticks TicksUntilDue = %d, want %d (0 once fired)", n, got, want)
		}
	}
}

// RunSchedule runs one random schedule with faults and checks the invariants.
func RunSchedule(alg algorithms.Algorithm, seed uint64, f Faults, containers, steps int) error {
	return runSchedule(alg, TestConfig(), seed, f, containers, steps)
}

func runSchedule(alg algorithms.Algorithm, cfg algorithms.Config, seed uint64, f Faults, containers, steps int) error {
	d, err := NewDriver(alg, Options{Containers: Topology(containers, 2), Config: cfg, Seed: seed, Faults: f})
	if err != nil {
		return err
	}
	if _, err := d.RandomSchedule(steps); err != nil {
		return err
	}
	d.Settle()
	return d.Check(alg.Guarantees().ConsistentCut)
}

// Fuzz is the body of every algorithm's fuzz target: random schedules and fault sets
// must keep the invariants. The seed corpus runs as part of go test.
func Fuzz(f *testing.F, alg algorithms.Algorithm) {
	f.Add(uint64(1), uint8(0), uint8(0), uint8(0), uint8(0), uint8(6), uint16(200))
	f.Add(uint64(2), uint8(50), uint8(100), uint8(0), uint8(0), uint8(5), uint16(300))
	f.Add(uint64(3), uint8(20), uint8(50), uint8(30), uint8(10), uint8(9), uint16(500))
	f.Add(uint64(4), uint8(200), uint8(200), uint8(50), uint8(50), uint8(3), uint16(400))
	f.Add(uint64(5), uint8(0), uint8(250), uint8(0), uint8(100), uint8(12), uint16(600))
	f.Fuzz(func(t *testing.T, seed uint64, drop, dup, ccrash, wcrash, n uint8, steps uint16) {
		containers := 2 + int(n)%14
		faults := Faults{Drop: int(drop), Dup: int(dup), CoordinatorCrash: int(ccrash) / 2, WorkerCrash: int(wcrash) / 2}
		cfg := TestConfig()
		cfg.Resend = seed % 7 // 0 (off) in one input of seven
		if err := runSchedule(alg, cfg, seed, faults, containers, int(steps)%1000); err != nil {
			t.Fatalf("seed=%d faults=%+v containers=%d steps=%d resend=%d:\n%v", seed, faults, containers, int(steps)%1000, cfg.Resend, err)
		}
	})
}
