package coordinator_test

// An external control plane (issue 20, "Done when" 2): the lab's coordinator runs on
// a 3-member etcd cluster with TLS and authentication and a 3-server NATS cluster with
// TLS and per-role users (Debian's etcd and nats-server: lab up
// --external-control-plane), as on an operator's cluster. Blocking snapshots of bank
// run one after the other; during one (containers frozen and locked) the etcd leader
// is killed with -9, during another the NATS server the coordinator is connected to.
// Each snapshot must end committed or aborted, nothing may stay frozen, locked or
// journaled, the bank's money is conserved and every holder kept its state, the
// killed server comes back (its supervisor restarts it, as systemd would), and a
// next snapshot commits.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/swarmckpt/swarmckpt/controlplane/embedded"
	"github.com/swarmckpt/swarmckpt/controlplane/etcdstore"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
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
	fl.checkSnapshot(t, "xcp-after")
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
	f := fault{op: "snapshot", victim: what}
	for try := range 5 {
		name := victim()
		pid := fl.p.ExternalPid(name)
		if pid == 0 {
			t.Fatalf("no process of %s (%s) runs", what, name)
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
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %s %s (pid %d): %v", what, name, pid, err)
		}
		killed := time.Now()
		t.Logf("killed %s %s (pid %d) with containers frozen by snapshot %s", what, name, pid, id)
		var cliErr error
		select {
		case cliErr = <-exited:
		case <-time.After(3 * time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("the snapshot CLI still runs 3 min after %s died:\n%s", what, out.String())
		}
		cliEnded := time.Now()
		t.Logf("snapshot CLI ended %v after the kill (%v):\n%s", cliEnded.Sub(killed).Round(time.Millisecond), cliErr, tail(out.String(), 1500))
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
		t.Logf("snapshot %s: %s", id, final)
		released := fl.waitNothingHeld(t, f, cliEnded)
		t.Logf("everything released %v after the CLI ended", released.Round(time.Millisecond))
		waitLong(t, what+" "+name+" restarted by its supervisor", func() bool {
			now := fl.p.ExternalPid(name)
			return now != 0 && now != pid
		})
		fl.daemonsUp(t)
		fl.stateKept(t, f, before)
		fl.noLeftovers(t, f, time.Time{}, 1, true) // a daemon was killed: failed dumps' logs may stay
		return
	}
	t.Fatal("5 snapshots ended before any froze a container")
}
