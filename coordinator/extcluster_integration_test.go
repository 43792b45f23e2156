package coordinator_test

// An external control plane (issue 20, "Done when" 2): the lab's coordinator runs on
// a 3-member etcd cluster with TLS and authentication and a 3-server NATS cluster with
// TLS and per-role users (Debian's etcd and nats-server: lab up
// --external-control-plane), as on an operator's cluster. Blocking snapshots of bank
// run one after the other; during one (containers frozen and locked) the etcd leader
// is killed with -9, during another the NATS server the coordinator is connected to,
// during a third the etcd leader at the commit instant; then 2 of the 3 etcd members
// (quorum lost) and then every NATS server are killed and kept down 20 s. Each
// snapshot must end committed or aborted, nothing may stay frozen, locked or
// journaled, the bank's money is conserved and every holder kept its state, the
// killed servers come back (their supervisors restart them, as systemd would), a
// failed snapshot's CLI error names the cause and what to do, and a next snapshot
// commits.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/swarmckpt/swarmckpt/controlplane/embedded"
	"github.com/swarmckpt/swarmckpt/controlplane/etcdstore"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

func TestIntegrationExternalControlPlane(t *testing.T) {
	fl := setupFaults(t, "xcp", "--external-control-plane")
	x := fl.p.Daemons.External
	if x == nil || len(x.Etcd) != 3 || len(x.NATS) != 3 {
		t.Fatalf("lab plan without a 3+3 external control plane: %+v", x)
	}
	fl.etcdRefusesAnonymous(t)
	_, before := fl.checkSnapshot(t, "xcp-start")
	ctx := context.Background()
	fl.killMidSnapshot(t, "xcp-etcd", "etcd leader", func() string {
		var leader string
		waitLong(t, "an etcd leader", func() bool {
			var err error
			leader, err = fl.p.EtcdLeader(ctx)
			return err == nil
		})
		return leader
	}, before)
	var leader string
	waitLong(t, "an etcd leader after the kill", func() bool {
		var err error
		leader, err = fl.p.EtcdLeader(ctx)
		return err == nil
	})
	t.Logf("etcd leader now: %s", leader)
	fl.killMidSnapshot(t, "xcp-nats", "NATS server of the coordinator", func() string {
		coord := fl.p.Daemons.CoordinatorName(fl.p.Name, 1)
		for _, m := range x.NATS {
			if names, err := x.NATSConnections(ctx, m); err == nil && slices.Contains(names, coord) {
				return m.Name
			}
		}
		t.Logf("the coordinator %s is on no NATS server's /connz; killing %s", coord, x.NATS[0].Name)
		return x.NATS[0].Name
	}, before)
	// The etcd leader killed at the commit instant: every container's image set is
	// durable (the CLI printed each one's "durable"), the commit's transaction is next.
	n := fl.containersOf(t, "xcp-start")
	etcdLeader := func() []string {
		var l string
		waitLong(t, "an etcd leader", func() bool {
			var err error
			l, err = fl.p.EtcdLeader(ctx)
			return err == nil
		})
		return []string{l}
	}
	o := fl.outageMidSnapshot(t, "xcp-commit", outage{what: "etcd leader at the commit", victims: etcdLeader,
		when: func(out string) bool { return strings.Count(out, " durable") >= n }}, before)
	t.Logf("etcd leader killed at the commit: snapshot %s", o.state)
	// Quorum loss: 2 of the 3 etcd members killed and kept down for 20 s.
	o = fl.outageMidSnapshot(t, "xcp-quorum", outage{what: "etcd quorum (2 of 3 members)", down: 20 * time.Second,
		victims: func() []string { return []string{x.Etcd[0].Name, x.Etcd[1].Name} }}, before)
	fl.saysWhy(t, o, "etcd")
	// Every NATS server killed and kept down for 20 s.
	o = fl.outageMidSnapshot(t, "xcp-natsdown", outage{what: "every NATS server", down: 20 * time.Second,
		victims: func() []string { return []string{x.NATS[0].Name, x.NATS[1].Name, x.NATS[2].Name} }}, before)
	fl.saysWhy(t, o, "NATS")
	fl.checkSnapshot(t, "xcp-after")
}

// containersOf is how many containers snapshot id has.
func (fl *faultLab) containersOf(t *testing.T, id string) int {
	t.Helper()
	out, code := fl.ctl(20*time.Second, "inspect", id, "--output", "json")
	var m store.Manifest
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || len(m.Containers) == 0 {
		t.Fatalf("inspect %s: exit %d: %s", id, code, out)
	}
	return len(m.Containers)
}

// saysWhy checks that a snapshot the outage did not let commit failed with an error
// naming the cause (what) and what to do (a quoted 'swarmckpt ...' command).
func (fl *faultLab) saysWhy(t *testing.T, o outcome, what string) {
	t.Helper()
	if o.state == store.StateCommitted {
		return
	}
	if o.cliExit == 0 {
		t.Errorf("the snapshot was %s but its CLI exited 0:\n%s", o.state, o.cliOut)
	}
	// The error is the last thing printed, after the progress and the CLI's own logs
	// (which name NATS when its connection drops: not what is checked here).
	i := strings.LastIndex(o.cliOut, "swarmckpt snapshot: ")
	if i < 0 {
		t.Errorf("the snapshot CLI printed no error:\n%s", o.cliOut)
		return
	}
	if msg := o.cliOut[i:]; !strings.Contains(msg, what) || !strings.Contains(msg, "'swarmckpt ") {
		t.Errorf("the snapshot CLI's error does not name %s and what to do (a 'swarmckpt ...' command):\n%s", what, msg)
	}
}

// etcdRefusesAnonymous: the external etcd serves TLS with authentication on: a client
// with the CA but without credentials can read nothing.
func (fl *faultLab) etcdRefusesAnonymous(t *testing.T) {
	t.Helper()
	pool := x509.NewCertPool()
	b, err := os.ReadFile(embedded.NATSCAPath(fl.dir))
	if err != nil || !pool.AppendCertsFromPEM(b) {
		t.Fatalf("lab CA: %v", err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: fl.p.Daemons.External.EtcdEndpoints(), DialTimeout: 2 * time.Second,
		TLS: &tls.Config{RootCAs: pool}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := cli.Get(ctx, etcdstore.DefaultPrefix, clientv3.WithPrefix()); err == nil {
		t.Errorf("the external etcd let a client without credentials read %d keys", len(r.Kvs))
	}
}

// killMidSnapshot starts blocking snapshots of bank until one holds a container
// frozen and locked, kills -9 the external member victim() names then, and checks
// that the snapshot ends committed or aborted, nothing stays held or locked, the
// member is restarted by its supervisor, and the bank kept its money and state.
func (fl *faultLab) killMidSnapshot(t *testing.T, prefix, what string, victim func() string, before map[int]int64) {
	t.Helper()
	fl.outageMidSnapshot(t, prefix, outage{what: what, victims: func() []string { return []string{victim()} }}, before)
}

// outage is a fault of the external control plane during a snapshot.
type outage struct {
	what string
	// victims names the members killed with -9 together.
	victims func() []string
	// down is how long they stay down: their supervisors are stopped (SIGSTOP) before
	// the kill and continued after down, as a host whose members stay dead until an
	// operator or systemd brings them back; 0: restarted at once.
	down time.Duration
	// when says, from the snapshot CLI's output so far, that it is time to kill; nil:
	// once a container is frozen and network-locked.
	when func(out string) bool
}

// outcome is what outageMidSnapshot measured (from the kill).
type outcome struct {
	state    store.State   // the snapshot's final state
	cliExit  int           // the snapshot CLI's exit code
	cliOut   string        // its output
	cliAfter time.Duration // the CLI ended this long after the kill
	// heldDuring: while the members were still down, nothing was held any more this
	// long after the kill (0: something was still held when they came back).
	heldDuring    time.Duration
	releasedAfter time.Duration // nothing held this long after the kill
	nextCommit    time.Duration // a next snapshot committed this long after the members came back
}

// outageMidSnapshot starts blocking snapshots of bank until one reaches o.when, kills
// -9 the external members o.victims names then (kept down for o.down), and checks that
// the snapshot ends committed or aborted, nothing stays held or locked (within
// heldAfter of the CLI's end, and of the members' return), the members are restarted
// by their supervisors, the bank kept its money and state, and (for an outage) a next
// snapshot commits.
func (fl *faultLab) outageMidSnapshot(t *testing.T, prefix string, o outage, before map[int]int64) outcome {
	t.Helper()
	f := fault{op: "snapshot", victim: o.what}
	for try := range 5 {
		names := o.victims()
		pids := map[string]int{}
		for _, n := range names {
			if pids[n] = fl.p.ExternalPid(n); pids[n] == 0 {
				t.Fatalf("no process of %s (%s) runs", o.what, n)
			}
		}
		id := fmt.Sprintf("%s-%d", prefix, try)
		cmd := exec.Command(fl.bin, "snapshot", "bank", "--id", id, "--algorithm", "blocking", "--nats", fl.nats, "--data-dir", fl.dir)
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		ready, ended := false, false
		for !ready && !ended {
			if o.when != nil {
				ready = o.when(out.String())
			} else {
				ready = fl.frozenSomewhere()
			}
			select {
			case err := <-exited:
				exited <- err
				ended = true
			case <-time.After(2 * time.Millisecond):
			}
		}
		if !ready {
			t.Logf("try %d: snapshot %s ended before the moment to kill %s; again", try+1, id, o.what)
			<-exited
			continue
		}
		var sups []int
		if o.down > 0 {
			for _, n := range names {
				sup := ppid(pids[n])
				if sup <= 1 || !strings.Contains(cmdline(sup), "supervise") {
					t.Fatalf("the supervisor of %s (pid %d) is %d %q, not the lab's", n, pids[n], sup, cmdline(sup))
				}
				if err := syscall.Kill(sup, syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				sups = append(sups, sup)
			}
		}
		for _, n := range names {
			if err := syscall.Kill(pids[n], syscall.SIGKILL); err != nil {
				t.Fatalf("kill -9 %s %s (pid %d): %v", o.what, n, pids[n], err)
			}
		}
		killed := time.Now()
		t.Logf("killed %s %v (pids %v) during snapshot %s", o.what, names, pids, id)
		var res outcome
		var cliErr error
		cliDone := false
		if o.down > 0 {
			// The members stay down: does the snapshot end, and is everything released,
			// without them?
			for time.Since(killed) < o.down {
				if !cliDone {
					select {
					case cliErr = <-exited:
						cliDone, res.cliAfter = true, time.Since(killed)
					default:
					}
				}
				if res.heldDuring == 0 && fl.nothingHeld() {
					res.heldDuring = time.Since(killed)
				}
				time.Sleep(200 * time.Millisecond)
			}
			for _, sup := range sups {
				if err := syscall.Kill(sup, syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%s back after %v (supervisors continued); during the outage: CLI ended %v, nothing held %v after the kill (0: not within it)",
				o.what, o.down, res.cliAfter.Round(time.Millisecond), res.heldDuring.Round(time.Millisecond))
		}
		back := time.Now()
		if !cliDone {
			select {
			case cliErr = <-exited:
				res.cliAfter = time.Since(killed)
			case <-time.After(3 * time.Minute):
				_ = cmd.Process.Kill()
				t.Fatalf("the snapshot CLI still runs 3 min after %s came back:\n%s", o.what, out.String())
			}
		}
		res.cliOut, res.cliExit = out.String(), cmd.ProcessState.ExitCode()
		cliEnded := killed.Add(res.cliAfter)
		t.Logf("snapshot CLI ended %v after the kill (%v):\n%s", res.cliAfter.Round(time.Millisecond), cliErr, tail(res.cliOut, 1500))
		waitLong(t, "snapshot "+id+" committed or aborted", func() bool {
			o, code := fl.ctl(20*time.Second, "inspect", id, "--output", "json")
			var m store.Manifest
			if code != 0 || json.Unmarshal([]byte(o), &m) != nil {
				return false
			}
			res.state = m.State
			return m.State.Final()
		})
		t.Logf("snapshot %s: %s", id, res.state)
		if res.state == store.StateCommitted && res.cliExit != 0 {
			t.Errorf("snapshot %s committed but its CLI exited %d:\n%s", id, res.cliExit, res.cliOut)
		}
		from := cliEnded
		if back.After(from) {
			from = back
		}
		fl.waitNothingHeld(t, f, from)
		res.releasedAfter = time.Since(killed)
		t.Logf("everything released %v after the kill", res.releasedAfter.Round(time.Millisecond))
		for _, n := range names {
			waitLong(t, o.what+" "+n+" restarted by its supervisor", func() bool {
				now := fl.p.ExternalPid(n)
				return now != 0 && now != pids[n]
			})
		}
		fl.daemonsUp(t)
		fl.stateKept(t, f, before)
		fl.noLeftovers(t, f, time.Time{}, 1, true) // a daemon was killed: failed dumps' logs may stay
		if o.down > 0 {
			fl.checkSnapshot(t, id+"-after")
			res.nextCommit = time.Since(back)
			t.Logf("a next snapshot committed %v after %s came back", res.nextCommit.Round(time.Millisecond), o.what)
		}
		return res
	}
	t.Fatal("5 snapshots ended before the moment to kill")
	return outcome{}
}

// nothingHeld says whether no container of the lab is frozen, network-locked or
// journaled as held.
func (fl *faultLab) nothingHeld() bool {
	ctx := context.Background()
	fr, nl := &freezer.Cgroup{}, &netlock.NFT{}
	for _, n := range fl.p.Nodes {
		if hs, _ := (watchdog.Journal{Dir: filepath.Join(fl.p.RunDir, n.Name, "holds")}).List(); len(hs) > 0 {
			return false
		}
	}
	for _, refs := range fl.allContainers(fl.t) {
		for _, c := range refs {
			if fz, err := fr.Frozen(ctx, c); err == nil && fz {
				return false
			}
			if st, err := nl.State(ctx, c); err == nil && st.Locked() {
				return false
			}
		}
	}
	return true
}
