package coordinator_test

// High availability (issue 20): a lab with two coordinators (lab up --coordinators 2:
// NATS and etcd in a control-plane process, the coordinators elect a leader). The
// leader is killed with -9 while a blocking snapshot of bank holds containers frozen
// and locked: the standby leads within seconds, the snapshot ends committed or
// aborted, nothing stays frozen, locked or journaled, the bank's money is conserved
// and every holder kept its state, `swarmckpt status` names the new leader (and the
// old one, restarted by its supervisor, as standby), and a next snapshot commits.
// Then the leader is killed mid-restore and mid-migration, the moment the operation's
// journal in etcd reaches stopping or restoring: the new leader rolls it back from
// the parked snapshot and deletes the journal, with the same checks (and no service
// left at 0 without its containers); last mid swarm-mode restore, which the new
// leader rolls back to bank_holder's swarm tasks at their replicas.

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
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

// status runs `swarmckpt status --output json`, waiting 5 s at most for the answer (a
// request delivered to a leader in the instant it died is lost: the next poll asks
// again, instead of waiting for the CLI's default 15 s).
func (fl *faultLab) status(t *testing.T) (*api.StatusResult, error) {
	out, code := fl.ctl(20*time.Second, "status", "--output", "json", "--timeout", "5s")
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
	// Mid-restore and mid-migration (issue 20): killed once the operation's journal
	// says its stop is done (restoring) or begins (stopping); the new leader rolls it
	// back from the parked snapshot.
	fl.killLeaderMidRestore(t, []string{"restore", "ha-start"}, restore.StepRestoring, false, before)
	fl.killLeaderMidRestore(t, []string{"migrate", "bank", "--from", fl.node(2), "--whole-stack"}, restore.StepRestoring, true, before)
	fl.killLeaderMidRestore(t, []string{"restore", "ha-start"}, restore.StepStopping, true, before)
	fl.killLeaderMidRestore(t, []string{"migrate", "bank", "--from", fl.node(3), "--whole-stack"}, restore.StepStopping, false, before)
	// A swarm-mode restore, journaled too: killed once its stop is done (the services
	// at 0, the checkpoint's containers ended), the new leader puts the checkpoint back
	// as swarm tasks (bank_holder at its replicas again, with its state).
	fl.killLeaderMidRestore(t, []string{"restore", "ha-start", "--mode", "swarm"}, restore.StepRestoring, false, before)
	fl.swarmTasksRun(t, 5)
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
		killed, now := fl.killLeader(t, leader, hostLost, "containers frozen by snapshot "+id)
		select {
		case err := <-exited:
			t.Logf("snapshot CLI ended %v after the kill (%v):\n%s", time.Since(killed).Round(time.Millisecond), err, tail(out.String(), 1500))
			// The CLI sent its request again (same id and request id) to the new leader,
			// which answered with the outcome of the dead leader's snapshot.
			if o := out.String(); !strings.Contains(o, "sending the snapshot request again") || !strings.Contains(o, now.Coordinator+" (started") {
				t.Errorf("the snapshot CLI did not send its request again to the new leader %s:\n%s", now.Coordinator, o)
			}
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
		fl.afterFailover(t, f, before, now.Coordinator, leader)
		return
	}
	t.Fatal("5 snapshots ended before any froze a container")
}

// killLeader kills the leading coordinator with -9 (with its supervisor SIGSTOPped
// first when hostLost, and continued once the standby leads) and waits until another
// coordinator leads and answers the CLI (failing after 30 s, and if that took more than
// 15 s). It returns when it killed and the status naming the new leader.
func (fl *faultLab) killLeader(t *testing.T, leader store.Candidate, hostLost bool, during string) (time.Time, *api.StatusResult) {
	t.Helper()
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
	t.Logf("killed the leader %s (pid %d; supervisor stopped: %v) with %s", leader.Name, leader.PID, hostLost, during)
	// Once it is gone (a zombie under its stopped supervisor), its connections are
	// closed: no status request of the polls below is delivered to it.
	for !processGone(leader.PID) {
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("the leader (pid %d) still runs 10 s after kill -9", leader.PID)
		}
		time.Sleep(time.Millisecond)
	}
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
	// The takeover's time is when the new leader won the election (its record, on
	// this host's clock); the status answering it is polled.
	answered := time.Since(killed)
	took := answered
	if since := now.Coordinators[0].LeaderSince; !since.IsZero() {
		took = since.Sub(killed)
	}
	t.Logf("%s leads %v after the kill (answered the CLI's status %v after it)", now.Coordinator, took.Round(10*time.Millisecond), answered.Round(10*time.Millisecond))
	if took > 15*time.Second {
		t.Errorf("the standby led %v after the leader's death, want within the leader TTL (5 s) and a few seconds", took)
	}
	if hostLost {
		if err := syscall.Kill(supervisor, syscall.SIGCONT); err != nil {
			t.Fatalf("continue the supervisor (pid %d): %v", supervisor, err)
		}
	}
	return killed, now
}

// afterFailover checks what every failover must leave: every daemon running, the bank
// with its money and each holder with its state (transfer counters not below before),
// no leftovers, newLeader leading and the killed leader back (a new pid) as standby,
// and no stack lock held.
func (fl *faultLab) afterFailover(t *testing.T, f fault, before map[int]int64, newLeader string, killed store.Candidate) {
	t.Helper()
	fl.daemonsUp(t)
	fl.stateKept(t, f, before)
	fl.noLeftovers(t, f, time.Time{}, 1, true) // a leader was killed: failed dumps' logs may stay
	fl.noStaleKeys(t, f)
	after := fl.coordinatorsUp(t, 2)
	if after.Coordinators[0].Name != newLeader || after.Coordinators[1].Name != killed.Name || after.Coordinators[1].PID == killed.PID {
		t.Errorf("status after the failover: %+v; want %s leading and %s restarted (new pid) standing by", after.Coordinators, newLeader, killed.Name)
	}
	if len(after.Operations) != 0 {
		t.Errorf("stack locks still held after the failover: %+v", after.Operations)
	}
	out, _ := fl.ctl(20*time.Second, "status")
	t.Logf("swarmckpt status after the failover:\n%s", out)
}

// processGone says whether pid ended with all its threads, its files (sockets) closed:
// no such process, or a zombie not yet reaped (its supervisor stopped) whose other
// threads all exited (a thread group's leader is a zombie while they still exit,
// and they hold its files until the last one does).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) == 0 || (f[0] != "Z" && f[0] != "X") {
		return false
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return err != nil || len(tasks) <= 1
}

// etcd is a client of the lab's etcd (the control plane's, with the coordinators'
// client certificate), to read the journal of restores and migrations.
func (fl *faultLab) etcd(t *testing.T) *clientv3.Client {
	t.Helper()
	cr := embedded.EtcdCredentialsPath(fl.dir)
	b, err := os.ReadFile(cr.CA)
	pool := x509.NewCertPool()
	if err != nil || !pool.AppendCertsFromPEM(b) {
		t.Fatalf("lab etcd CA %s: %v", cr.CA, err)
	}
	cert, err := tls.LoadX509KeyPair(cr.Cert, cr.Key)
	if err != nil {
		t.Fatalf("lab etcd client certificate: %v", err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{fl.p.Daemons.EtcdURL()}, DialTimeout: 2 * time.Second,
		TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("lab etcd client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// journaled are the restores and migrations journaled in etcd (store.Operation under
// <prefix>/operations/).
func journaled(cli *clientv3.Client) ([]store.Operation, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, etcdstore.DefaultPrefix+"/operations/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var ops []store.Operation
	for _, kv := range r.Kvs {
		var op store.Operation
		if err := json.Unmarshal(kv.Value, &op); err != nil {
			return nil, fmt.Errorf("journal %s: %w", kv.Key, err)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// killLeaderMidRestore runs `swarmckpt ARGS` (a restore or a migration of bank) and
// kills the leader with -9 (its supervisor restarting it at once, or stopped when
// hostLost) the moment the operation's journal in etcd reaches step (stopping: the
// stop begins; restoring: the stop is done and the snapshot's containers are being
// restored), or at the first poll after it passed it. It checks that the standby
// leads, rolls the operation back (or forward, had it completed meanwhile) and deletes
// its journal, records that on the snapshot, that nothing stays held or locked or at 0
// replicas, the bank kept its money and each holder its state, and `status` shows the
// new leader and no operation.
func (fl *faultLab) killLeaderMidRestore(t *testing.T, args []string, step string, hostLost bool, before map[int]int64) {
	t.Helper()
	steps := []string{restore.StepBegun, restore.StepStopping, restore.StepRestoring, restore.StepRestored}
	if !slices.Contains(steps, step) {
		t.Fatalf("step %q is none of %v", step, steps)
	}
	f := fault{op: args[0], victim: "coordinator (leader) at step " + step}
	cli := fl.etcd(t)
	st := fl.coordinatorsUp(t, 2)
	leader := st.Coordinators[0]
	if ops, err := journaled(cli); err != nil || len(ops) != 0 {
		t.Fatalf("journal before %v: %+v, %v; want empty", args, ops, err)
	}
	cmd := exec.Command(fl.bin, append(args, "--nats", fl.nats, "--data-dir", fl.dir)...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var op *store.Operation
	for op == nil {
		ops, err := journaled(cli)
		if err != nil {
			t.Fatalf("read the journal: %v", err)
		}
		for i := range ops {
			// A step passed between two polls (a stop with little to do) is
			// killed in the next: still mid-operation.
			if slices.Index(steps, ops[i].Step) >= slices.Index(steps, step) {
				op = &ops[i]
			}
		}
		if op != nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("%v ended (%v) before its journal reached step %s:\n%s", args, err, step, out.String())
		case <-time.After(2 * time.Millisecond):
		}
	}
	killed, now := fl.killLeader(t, leader, hostLost, fmt.Sprintf("%s of %s journaled at step %s, %v after it began (parked %s)",
		op.Kind, op.Snapshot, op.Step, time.Since(start).Round(time.Millisecond), op.Parked))
	select {
	case err := <-exited:
		t.Logf("%v ended (%v):\n%s", args, err, tail(out.String(), 1500))
	case <-time.After(100 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%v still runs 100 s after the leader died:\n%s", args, out.String())
	}
	var left []store.Operation
	waitLong(t, "the journal of "+op.ID+" deleted by the new leader", func() bool {
		ops, err := journaled(cli)
		left = ops
		return err == nil && len(ops) == 0
	})
	recovered := time.Since(killed)
	t.Logf("the %s's journal deleted (recovered) %v after the kill", op.Kind, recovered.Round(10*time.Millisecond))
	// The new leader logged what it did, and recorded it on the snapshot.
	logOf := map[string]string{}
	for i := 1; i <= 2; i++ {
		logOf[fl.p.Daemons.CoordinatorName(fl.p.Name, i)] = filepath.Join(fl.dir, fmt.Sprintf("coordinator-%d.log", i))
	}
	b, err := os.ReadFile(logOf[now.Coordinator])
	if err != nil {
		t.Fatalf("the new leader's log: %v", err)
	}
	action := ""
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, op.ID) {
			continue
		}
		if strings.Contains(l, "recovery of the operation failed") {
			t.Errorf("the new leader %s failed to recover the %s: %s", now.Coordinator, op.Kind, l)
		}
		if strings.Contains(l, "recovered the operation") {
			action = l
		}
	}
	if action == "" {
		t.Errorf("the new leader %s did not log that it recovered operation %s (journal left: %+v)", now.Coordinator, op.ID, left)
	} else {
		t.Logf("new leader: %s", action)
	}
	o, code := fl.ctl(20*time.Second, "inspect", op.Snapshot, "--output", "json")
	var m store.Manifest
	if code != 0 || json.Unmarshal([]byte(o), &m) != nil || len(m.Restores) == 0 {
		t.Errorf("inspect %s after the failover: exit %d, no restore recorded:\n%s", op.Snapshot, code, tail(o, 1500))
	} else {
		last := m.Restores[len(m.Restores)-1]
		switch {
		case last.At.Before(op.UpdatedAt):
			t.Errorf("no restore of %s recorded since the %s's step %s (%v); the last: %+v", op.Snapshot, op.Kind, op.Step, op.UpdatedAt, last)
		case last.OK:
			t.Logf("the %s of %s was rolled forward (it had completed)", op.Kind, op.Snapshot)
		case strings.Contains(last.Error, "put the stack back from"):
			t.Logf("the %s of %s was rolled back: %s", op.Kind, op.Snapshot, last.Error)
		default:
			t.Errorf("the %s of %s ended neither rolled forward nor put back: %+v", op.Kind, op.Snapshot, last)
		}
	}
	fl.waitNothingHeld(t, f, time.Now())
	t.Logf("everything released %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	fl.noServiceAtZeroWithout(t, f)
	fl.afterFailover(t, f, before, now.Coordinator, leader)
}

// noServiceAtZeroWithout: every bank holder runs, as a task of bank_holder or as a
// restored standalone container (a restore in exact mode leaves the service at 0 with
// its standalone containers running): never both absent.
func (fl *faultLab) noServiceAtZeroWithout(t *testing.T, f fault) {
	t.Helper()
	running := 0
	for i := 1; i <= 3; i++ {
		o, err := fl.dockerOn(fl.node(i), "ps", "--filter", "label=com.docker.stack.namespace=bank", "--format", "{{.Names}}")
		if err != nil {
			t.Fatalf("docker ps on %s: %v: %s", fl.node(i), err, o)
		}
		for _, n := range strings.Fields(o) {
			if strings.Contains(n, "holder") {
				running++
			}
		}
	}
	if running < 5 {
		t.Errorf("%s: %d bank holders run after the failover, want 5 (a service left at 0?)", f, running)
	}
}

// swarmTasksRun: bank_holder is at n replicas with n tasks running (the swarm-mode
// put-back), polled for a while (the manager reports a task running shortly after its
// container started).
func (fl *faultLab) swarmTasksRun(t *testing.T, n int) {
	t.Helper()
	var out string
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, err := fl.dockerOn(fl.node(1), "service", "ps", "bank_holder", "--filter", "desired-state=running", "--format", "{{.CurrentState}}")
		out = o
		running := 0
		for _, l := range strings.Split(o, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "Running") {
				running++
			}
		}
		if err == nil && running == n {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("bank_holder runs %d tasks 30 s after the swarm-mode put-back, want %d (a service left at 0?): %v\n%s", running, n, err, out)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	o, _ := fl.dockerOn(fl.node(1), "service", "ls", "--filter", "name=bank_holder", "--format", "{{.Name}} {{.Replicas}}")
	t.Logf("after the swarm-mode restore's rollback: %s", strings.TrimSpace(o))
}
