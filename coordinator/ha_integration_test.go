package coordinator_test

// High availability (issue 20): a lab with two coordinators (lab up --coordinators 2:
// NATS and etcd in a control-plane process, the coordinators elect a leader). The
// leader is killed with -9 while a blocking snapshot of bank holds containers frozen
// and locked: the standby leads within seconds, the snapshot ends committed or
// aborted, nothing stays frozen, locked or journaled, the bank's money is conserved
// and every holder kept its state, `swarmckpt status` names the new leader (and the
// old one, restarted by its supervisor, as standby), and a next snapshot commits.

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

// status runs `swarmckpt status --output json`.
func (fl *faultLab) status(t *testing.T) (*api.StatusResult, error) {
	out, code := fl.ctl(20*time.Second, "status", "--output", "json")
	if code != 0 {
		return nil, fmt.Errorf("status exit %d: %s", code, tail(out, 800))
	}
	var st api.StatusResult
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("status output: %v: %s", err, tail(out, 800))
	}
	return &st, nil
}

// coordinatorsUp waits until status lists n coordinators, the first leading.
func (fl *faultLab) coordinatorsUp(t *testing.T, n int) *api.StatusResult {
	t.Helper()
	var st *api.StatusResult
	waitLong(t, fmt.Sprintf("%d coordinators, one leading", n), func() bool {
		var err error
		st, err = fl.status(t)
		return err == nil && len(st.Coordinators) == n && st.Coordinators[0].Leader && st.Coordinator == st.Coordinators[0].Name
	})
	return st
}

// frozenSomewhere says whether a worker of the lab journals a frozen and locked hold.
func (fl *faultLab) frozenSomewhere() bool {
	for _, n := range fl.p.Nodes {
		hs, _ := watchdog.Journal{Dir: filepath.Join(fl.p.RunDir, n.Name, "holds")}.List()
		for _, h := range hs {
			if h.Frozen && h.Locked {
				return true
			}
		}
	}
	return false
}

func TestIntegrationLeaderFailover(t *testing.T) {
	fl := setupFaults(t, "ha", "--coordinators", "2")
	st := fl.coordinatorsUp(t, 2)
	if len(st.Nodes) != 3 {
		t.Fatalf("status nodes = %+v, want the lab's 3", st.Nodes)
	}
	for _, n := range st.Nodes {
		if !n.Live || !n.Member || n.CRIUVersion == "" || n.WorkerAddr == "" {
			t.Errorf("status node %+v: want live, a memberlist member, with its CRIU version and worker address from the membership", n)
		}
	}
	_, before := fl.checkSnapshot(t, "ha-start")
	// Killed and restarted by its supervisor at once: the restarted process revokes
	// its dead predecessor's lease, so the standby leads before the TTL.
	fl.killLeaderMidSnapshot(t, "ha-kill", false, before)
	// The supervisor stopped too (a host lost): the standby leads once the dead
	// leader's lease lapses (--leader-ttl 5 s).
	fl.killLeaderMidSnapshot(t, "ha-host", true, before)
	fl.checkSnapshot(t, "ha-after")
}

// killLeaderMidSnapshot starts blocking snapshots of bank until one holds a container
// frozen and locked, kills the leading coordinator with -9 then (with its supervisor
// SIGSTOPped first when hostLost, and continued once the standby leads), and checks
// that the standby leads, the snapshot ends committed or aborted, nothing stays held
// or locked, the bank kept its money and state, and the killed coordinator is back as
// a standby.
func (fl *faultLab) killLeaderMidSnapshot(t *testing.T, prefix string, hostLost bool, before map[int]int64) {
	t.Helper()
	f := fault{op: "snapshot", victim: "coordinator (leader)"}
	for try := range 5 {
		st := fl.coordinatorsUp(t, 2)
		leader := st.Coordinators[0]
		id := fmt.Sprintf("%s-%d", prefix, try)
		cmd := exec.Command(fl.bin, "snapshot", "bank", "--id", id, "--algorithm", "blocking", "--nats", fl.nats, "--data-dir", fl.dir)
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		frozen, ended := false, false
		for !frozen && !ended {
			frozen = fl.frozenSomewhere()
			select {
			case err := <-exited:
				exited <- err
				ended = true
			case <-time.After(2 * time.Millisecond):
			}
		}
		if !frozen {
			t.Logf("try %d: snapshot %s ended before a container was seen frozen; again", try+1, id)
			<-exited
			continue
		}
		supervisor := ppid(leader.PID)
		if hostLost {
			if err := syscall.Kill(supervisor, syscall.SIGSTOP); err != nil {
				t.Fatalf("stop the leader's supervisor (pid %d): %v", supervisor, err)
			}
		}
		if err := syscall.Kill(leader.PID, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 the leader %s (pid %d): %v", leader.Name, leader.PID, err)
		}
		killed := time.Now()
		t.Logf("killed the leader %s (pid %d; supervisor stopped: %v) with containers frozen by snapshot %s", leader.Name, leader.PID, hostLost, id)
		var now *api.StatusResult
		for now == nil {
			s, err := fl.status(t)
			if err == nil && len(s.Coordinators) > 0 && s.Coordinators[0].Leader && s.Coordinators[0].Name != leader.Name && s.Coordinator == s.Coordinators[0].Name {
				now = s
				break
			}
			if time.Since(killed) > 30*time.Second {
				t.Fatalf("no standby leads 30 s after the leader's death: %+v, %v", s, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		took := time.Since(killed)
		t.Logf("%s leads %v after the kill", now.Coordinator, took.Round(10*time.Millisecond))
		if took > 15*time.Second {
			t.Errorf("the standby led %v after the leader's death, want within the leader TTL (5 s) and a few seconds", took)
		}
		if hostLost {
			if err := syscall.Kill(supervisor, syscall.SIGCONT); err != nil {
				t.Fatalf("continue the supervisor (pid %d): %v", supervisor, err)
			}
		}
		select {
		case err := <-exited:
			t.Logf("snapshot CLI ended (%v):\n%s", err, tail(out.String(), 1500))
		case <-time.After(100 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("the snapshot CLI still runs 100 s after the leader died:\n%s", out.String())
		}
		var final store.State
		waitLong(t, "snapshot "+id+" committed or aborted", func() bool {
			o, code := fl.ctl(20*time.Second, "inspect", id, "--output", "json")
			var m store.Manifest
			if code != 0 || json.Unmarshal([]byte(o), &m) != nil {
				return false
			}
			final = m.State
			return m.State.Final()
		})
		t.Logf("snapshot %s of the dead leader: %s", id, final)
		released := fl.waitNothingHeld(t, f, killed)
		t.Logf("everything released %v after the kill", released.Round(time.Millisecond))
		fl.daemonsUp(t)
		fl.stateKept(t, f, before)
		fl.noLeftovers(t, f)
		after := fl.coordinatorsUp(t, 2)
		if after.Coordinators[0].Name != now.Coordinator || after.Coordinators[1].Name != leader.Name || after.Coordinators[1].PID == leader.PID {
			t.Errorf("status after the failover: %+v; want %s leading and %s restarted (new pid) standing by", after.Coordinators, now.Coordinator, leader.Name)
		}
		if len(after.Operations) != 0 {
			t.Errorf("stack locks still held after the failover: %+v", after.Operations)
		}
		out2, _ := fl.ctl(20*time.Second, "status")
		t.Logf("swarmckpt status after the failover:\n%s", out2)
		return
	}
	t.Fatal("5 snapshots ended before any froze a container")
}
