package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
	"github.com/swarmckpt/swarmckpt/metrics"
	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Snapshot takes a snapshot of a stack and returns its manifest once committed or
// aborted. An aborted snapshot is returned together with an *api.Error (CodeAborted).
func (s *Service) Snapshot(ctx context.Context, req api.SnapshotRequest) (*store.Manifest, error) {
	m, err := s.snapshot(ctx, req, nil, nil)
	if req.Exit && m != nil && m.State == store.StateCommitted { // committed, even if short of copies (replicate.go)
		// Its containers wait, frozen, for the commit (coordinator/restore/park.go): end them now.
		if serr := s.restores.StopParked(ctx, m, false); serr != nil {
			err = serr
		}
	}
	return m, err
}

// snapshot takes a snapshot. held, when not nil, is the stack's lock, already taken by
// the caller (a restore or migration holds it throughout); it stays held.
func (s *Service) snapshot(ctx context.Context, req api.SnapshotRequest, stream streamPlan, held store.Lock) (*store.Manifest, error) {
	if err := validSnapshotRequest(req); err != nil { // validate.go: before anything is locked or written
		return nil, err
	}
	if req.Algorithm == "" {
		req.Algorithm = DefaultAlgorithm
	}
	alg, err := s.cfg.Algorithms(req.Algorithm)
	if err != nil {
		return nil, api.Errorf(api.CodeBadRequest, "algorithm %q: %v", req.Algorithm, err)
	}
	if req.ID == "" {
		req.ID = NewID(req.Stack, time.Now())
	}
	if err := protocol.ValidToken(req.ID); err != nil {
		return nil, api.Errorf(api.CodeBadRequest, "snapshot id %q: %v", req.ID, err)
	}
	if m, ok, err := s.resentSnapshot(ctx, req); ok { // resend.go
		return m, err
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = s.cfg.SnapshotTimeout
	}
	start := time.Now()
	st, err := s.cfg.Resolver.Resolve(ctx, req.Stack)
	if err != nil {
		if errors.Is(err, stack.ErrNotFound) {
			return nil, api.Errorf(api.CodeNotFound, "%v", err)
		}
		return nil, api.Errorf(api.CodeFailed, "resolve stack: %v", err)
	}
	st, excluded, err := excludeServices(st, req.Exclude) // exclude.go
	if err != nil {
		return nil, err
	}
	if st, err = onlyContainers(st, req.Only); err != nil { // exclude.go
		return nil, err
	}
	lock, err := held, error(nil)
	if lock == nil {
		lock, err = s.lockStack(ctx, req.Stack, req.ID)
	}
	if err != nil {
		return nil, err
	}
	unlock := func() {
		if held != nil {
			return
		}
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := lock.Unlock(uctx); err != nil {
			s.log.Warn("stack unlock failed (the lease lapses by itself)", "stack", req.Stack, "err", err)
		}
	}
	epoch, err := s.nextEpoch(ctx, req.Stack)
	if err != nil {
		unlock()
		return nil, api.Errorf(api.CodeFailed, "%v", err)
	}
	now := time.Now().UTC()
	m := &store.Manifest{ID: req.ID, Stack: req.Stack, Algorithm: alg.Name(), State: store.StatePreparing,
		Epoch: epoch, LeaveRunning: !req.Exit, Coordinator: s.cfg.Name, CreatedAt: now, UpdatedAt: now, Purpose: req.Purpose,
		CarryVolumes: req.CarryVolumes, Excluded: excluded, Partial: len(req.Only) > 0, RequestID: req.RequestID}
	for _, c := range st.Containers {
		m.Containers = append(m.Containers, store.Container{Service: c.Service, Slot: c.Slot, TaskID: c.TaskID,
			Node: c.Node, NodeID: c.NodeID, ContainerID: c.ContainerID, Image: c.Image, IPs: c.IPs, Networks: c.Networks, Aliases: c.Aliases})
	}
	for _, w := range st.Warnings {
		m.Warnings = append(m.Warnings, w.String())
	}
	if err := s.cfg.Store.Create(ctx, m); err != nil {
		unlock()
		if errors.Is(err, store.ErrExists) {
			if m, ok, err := s.resentSnapshot(ctx, req); ok { // created meanwhile by this request's first delivery
				return m, err
			}
			return nil, api.Errorf(api.CodeBadRequest, "%v: pick another id", err)
		}
		return nil, api.Errorf(api.CodeFailed, "%v", err)
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "resolved", Message: fmt.Sprintf("%d containers on %s, algorithm %s", len(m.Containers), strings.Join(st.Nodes(), ","), m.Algorithm)})
	if req.Timeout <= 0 { // holdbudget.go: the timeout, and so the holds' deadlines, follow the work
		var how string
		timeout, how = s.snapshotBudget(ctx, m)
		s.event(ctx, api.Event{ID: m.ID, Phase: "budget", Message: fmt.Sprintf("may take %v (%s)", timeout.Round(time.Second), how)})
	}
	for _, w := range st.Warnings {
		s.event(ctx, api.Event{ID: m.ID, Phase: "warning", Message: w.String()})
	}

	r := newRun(s, m, lock, alg, timeout)
	var planErr error
	if stream != nil {
		r.streamTo, planErr = stream(m)
	}
	if planErr == nil {
		planErr = r.sendPlans(ctx, req.Exit)
	}
	if err := planErr; err != nil {
		r.finishEarly(ctx, err.Error())
		s.cfg.Metrics.Aborted(m.Algorithm, failureClass(r.m.Reason))
		unlock()
		var ae *api.Error
		if errors.As(err, &ae) {
			return m, ae
		}
		return m, api.Errorf(api.CodeFailed, "%v", err)
	}
	mach := r.newMachine(ctx, algorithms.Config{Timeout: r.ticks(timeout), FirstEpoch: epoch, Resend: r.ticks(2 * time.Second)}) // continue.go
	r.mach = mach
	s.mu.Lock()
	s.runs[m.ID] = r
	s.mu.Unlock()
	s.cfg.Metrics.Phase(m.Algorithm, metrics.PhasePrepare, time.Since(start))
	go r.loop(context.WithoutCancel(ctx), start)
	<-r.done
	s.mu.Lock()
	delete(s.runs, m.ID)
	s.mu.Unlock()
	var replErr error
	if r.m.State == store.StateCommitted { // the copies are made under the stack's lock: no rm meets them half made
		replErr = s.replicate(ctx, r.m, req.Replicas) // replicate.go: the copies on other nodes
	}
	unlock()
	s.recordOutcome(r.m, start)
	if r.m.State != store.StateCommitted {
		// An aborted snapshot's partial images are collected (best effort).
		s.collectAborted(ctx, r.m)
		// It returns once its containers are released (or says which are not, and
		// until when): a caller, Ctrl-C included, may rely on what it says.
		if held := s.awaitReleased(context.WithoutCancel(ctx), r.m); len(held) > 0 {
			// Until their deadline, the abort is re-sent to what is still held (released.go).
			mc := *r.m // read only by followRelease
			go s.followRelease(context.WithoutCancel(ctx), &mc, time.Now().Add(r.timeout+10*time.Second))
			return r.m, api.Errorf(api.CodeAborted, "snapshot %s aborted: %s; still held after %s (the coordinator re-sends the abort until they are released, at their deadline at the latest):\n  - %s",
				m.ID, r.m.Reason, releaseWait, strings.Join(held, "\n  - "))
		}
		return r.m, api.Errorf(api.CodeAborted, "snapshot %s aborted: %s; every container was released", m.ID, r.m.Reason)
	}
	return r.m, replErr
}

// lockStack takes stackName's lock for op (a snapshot id, or "restore-ID"): CodeBusy
// naming the holder if someone else has it.
func (s *Service) lockStack(ctx context.Context, stackName, op string) (store.Lock, error) {
	lock, _, err := s.lockStackAs(ctx, stackName, op)
	return lock, err
}

// lockStackAs is lockStack, also returning the lock's owner (the journal of a restore
// or migration is named after it).
func (s *Service) lockStackAs(ctx context.Context, stackName, op string) (store.Lock, string, error) {
	owner := s.cfg.Name + "/" + op
	if strings.HasPrefix(op, "restore-") || strings.HasPrefix(op, "migrate-") || strings.HasPrefix(op, "rm-") {
		// Two restores of one snapshot are two owners (a snapshot's id is unique).
		owner += "-" + NewID("", time.Now())[17:]
	}
	lock, err := s.cfg.Store.LockStack(ctx, stackName, owner, s.cfg.LockTTL)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, "", api.Errorf(api.CodeBusy, "%v: wait until it ends, then try again", err)
		}
		return nil, "", api.Errorf(api.CodeFailed, "lock stack: %v", err)
	}
	return lock, owner, nil
}

// Abort asks a running snapshot to abort.
func (s *Service) Abort(id, reason string) error {
	if err := api.ValidID(id); err != nil {
		return err
	}
	r := s.active(id)
	if r == nil {
		return api.Errorf(api.CodeNotFound, "snapshot %s is not running on this coordinator", id)
	}
	if reason == "" {
		reason = "aborted by the user"
	}
	r.requestAbort(reason)
	return nil
}

func (s *Service) nextEpoch(ctx context.Context, stackName string) (uint64, error) {
	ms, err := s.cfg.Store.Headers(ctx, stackName)
	if err != nil {
		return 0, err
	}
	var max uint64
	for _, m := range ms {
		if m.Epoch > max {
			max = m.Epoch
		}
	}
	// The store remembers the last epoch of the stack: after `rm` of the latest
	// snapshots the stored manifests alone would hand out an epoch again, which the
	// containers' participants ignore as stale (the snapshot would hang until its
	// deadline).
	return s.cfg.Store.NextEpoch(ctx, stackName, max+1)
}

// run is one snapshot being driven.
type run struct {
	s       *Service
	m       *store.Manifest
	lock    store.Lock
	alg     algorithms.Algorithm
	mach    algorithms.Machine
	timeout time.Duration

	inbox  chan protocol.Envelope
	aborts chan string
	done   chan struct{}
	nodeOf map[string]string // container id -> node
	index  map[string]int    // container id -> position in m.Containers
	// streamTo: container key -> worker address its dump streams to (streamPlan).
	streamTo map[string]string

	decided bool
	// started is when the algorithm's run began (the end of the prepare phase).
	started time.Time
}

func newRun(s *Service, m *store.Manifest, lock store.Lock, alg algorithms.Algorithm, timeout time.Duration) *run {
	r := &run{s: s, m: m, lock: lock, alg: alg, timeout: timeout,
		inbox: make(chan protocol.Envelope, 1024), aborts: make(chan string, 16), done: make(chan struct{}),
		nodeOf: map[string]string{}, index: map[string]int{}}
	for i, c := range m.Containers {
		r.nodeOf[c.ContainerID] = c.Node
		r.index[c.ContainerID] = i
	}
	return r
}

func (r *run) ticks(d time.Duration) uint64 {
	t := uint64(d / r.s.cfg.TickPeriod)
	if t < 1 {
		t = 1
	}
	return t
}

func (r *run) deliver(env protocol.Envelope) {
	select {
	case r.inbox <- env:
	case <-r.done:
	}
}

func (r *run) requestAbort(reason string) {
	select {
	case r.aborts <- reason:
	case <-r.done:
	}
}

func (r *run) nodeFailed(node, why string) {
	for _, c := range r.m.Containers {
		if c.Node == node {
			r.requestAbort(fmt.Sprintf("node %s left the cluster (%s) while snapshotting %s: once 'swarmckpt status' shows it live, take the snapshot again", node, why, c.Key()))
			return
		}
	}
}

// participants is the algorithm's view: every container, with every other container
// of the stack as a peer (a conservative communication graph: the coordinator does not
// know which containers talk to each other).
func (r *run) participants() []protocol.Container {
	out := make([]protocol.Container, 0, len(r.m.Containers))
	for _, c := range r.m.Containers {
		pc := protocol.Container{ID: c.ContainerID, Node: c.Node}
		for _, p := range r.m.Containers {
			if p.ContainerID != c.ContainerID {
				pc.Peers = append(pc.Peers, p.ContainerID)
			}
		}
		out = append(out, pc)
	}
	return out
}

func (r *run) targets() []node.Target {
	out := make([]node.Target, 0, len(r.m.Containers))
	for _, c := range r.m.Containers {
		out = append(out, node.Target{ID: c.ContainerID, Service: c.Service, Slot: c.Slot, Node: c.Node, IPs: c.IPs,
			StreamTo: r.streamTo[c.Key()], Direct: c.Direct && r.streamTo[c.Key()] != "", PostCopy: c.PostCopy, PreCopy: c.PreCopy && r.streamTo[c.Key()] != "", CarryVolumes: r.m.CarryVolumes})
	}
	return out
}

// sendPlans tells every node of the snapshot what it covers. A node without a live
// worker fails the snapshot before anything is locked.
func (r *run) sendPlans(ctx context.Context, exit bool) error {
	plan := node.Plan{Snapshot: r.m.ID, Stack: r.m.Stack, Algorithm: r.m.Algorithm, Epoch: r.m.Epoch,
		Containers: r.targets(), Exit: exit}
	b, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, c := range r.m.Containers {
		if seen[c.Node] {
			continue
		}
		seen[c.Node] = true
		if err := protocol.ValidToken(c.Node); err != nil {
			return api.Errorf(api.CodeFailed, "node %q of %s: %v", c.Node, c.Key(), err)
		}
		pctx, cancel := context.WithTimeout(ctx, r.s.cfg.PlanTimeout)
		out, err := r.s.cfg.Bus.Request(pctx, node.PlanSubject(c.Node), b)
		cancel()
		if err != nil {
			if errors.Is(err, bus.ErrNoResponders) || errors.Is(err, bus.ErrTimeout) {
				return api.Errorf(api.CodeNoWorker, "node %s (running %s) has no live worker: start 'swarmckpt worker' on it, then retry", c.Node, c.Key())
			}
			return api.Errorf(api.CodeFailed, "plan to node %s: %v", c.Node, err)
		}
		var rep node.PlanReply
		if err := json.Unmarshal(out, &rep); err != nil {
			return api.Errorf(api.CodeFailed, "node %s answered the plan with garbage: %v", c.Node, err)
		}
		if rep.Error != "" {
			if rep.Reason != "" { // e.g. no_space: its disk would not hold the dumps
				return api.Errorf(api.CodeFailed, "node %s refused the snapshot (%s): %s", c.Node, rep.Reason, rep.Error)
			}
			return api.Errorf(api.CodeFailed, "node %s refused the snapshot: %s", c.Node, rep.Error)
		}
	}
	return nil
}

// finishEarly aborts a manifest before the algorithm started.
func (r *run) finishEarly(ctx context.Context, reason string) {
	r.m.State, r.m.Reason, r.m.UpdatedAt = store.StateAborted, reason, time.Now().UTC()
	if err := r.s.cfg.Store.Update(context.WithoutCancel(ctx), r.m); err != nil {
		r.s.log.Warn("cannot record abort", "snapshot", r.m.ID, "err", err)
	}
	r.s.event(ctx, api.Event{ID: r.m.ID, Phase: "aborted", Message: reason})
	r.s.emit(ctx, events.Event{Kind: events.SnapshotAborted, Stack: r.m.Stack, Snapshot: r.m.ID, Reason: reason})
}

func (r *run) loop(ctx context.Context, start time.Time) {
	defer close(r.done)
	r.started = time.Now()
	log := r.s.log.With("snapshot", r.m.ID, "stack", r.m.Stack)
	req := protocol.Envelope{Version: protocol.Version, Type: protocol.TypeSnapshotRequest, Snapshot: r.m.ID,
		From: protocol.ClientAddr(r.s.cfg.Name), To: protocol.Coordinator,
		Body: &protocol.SnapshotRequest{Algorithm: r.m.Algorithm, Containers: r.participants()}}
	if err := r.mach.Step(req); err != nil {
		r.finishEarly(ctx, fmt.Sprintf("the %s algorithm refused the snapshot: %v", r.m.Algorithm, err))
		return
	}
	tick := time.NewTicker(r.s.cfg.TickPeriod)
	defer tick.Stop()
	lost := r.lock.Lost()
	for {
		for r.mach.HasReady() { // a commit's outcome makes another Ready: the decision
			r.process(ctx, start)
		}
		if r.decided {
			log.Info("snapshot ended", "state", r.m.State, "reason", r.m.Reason, "total", time.Since(start).Round(time.Millisecond))
			return
		}
		// A lost lock goes first: a message that arrived with it must not carry the
		// snapshot on to a commit that would be refused.
		select {
		case <-lost:
			lost = nil
			r.step(algorithms.AbortRequest(r.m.ID, r.m.Epoch, lockLost))
			continue
		default:
		}
		select {
		case env := <-r.inbox:
			r.observe(ctx, env)
			r.step(env)
		case reason := <-r.aborts:
			r.step(algorithms.AbortRequest(r.m.ID, r.m.Epoch, reason))
		case <-lost:
			lost = nil
			r.step(algorithms.AbortRequest(r.m.ID, r.m.Epoch, lockLost))
		case <-tick.C:
			r.mach.Tick()
		}
	}
}

// lockLost is the abort reason when the stack's lock is lost mid-snapshot.
const lockLost = "the stack lock was lost (etcd unreachable or lease expired)"

// step feeds the coordinator role one message (from a container, or of this process:
// an abort request, a commit's outcome).
func (r *run) step(env protocol.Envelope) {
	if err := r.mach.Step(env); err != nil {
		r.s.log.Debug("algorithm refused message", "snapshot", r.m.ID, "type", env.Type, "from", env.From, "err", err)
	}
}

// observe turns worker messages into progress events, and records the image set each
// dump-done carries.
func (r *run) observe(ctx context.Context, env protocol.Envelope) {
	i, ok := r.index[env.From.ID]
	if !ok {
		return
	}
	c := r.m.Containers[i]
	e := api.Event{ID: r.m.ID, Container: c.Key(), Node: c.Node}
	var dump *protocol.DumpStats
	switch env.Type {
	case protocol.TypeLockDone:
		e.Phase = "locked"
	case protocol.TypeDumpDone:
		e.Phase = "dumped"
		if res, ok := env.Body.(*protocol.Result); ok && res.Dump != nil {
			e.Bytes = int64(res.Dump.ImageBytes)
			dump = res.Dump
		}
	case protocol.TypeDone:
		e.Phase = "done"
	case protocol.TypeFailed:
		e.Phase = "failed"
		if res, ok := env.Body.(*protocol.Result); ok {
			e.Message = res.Error
		}
	default:
		return
	}
	r.s.event(ctx, e)
	if dump != nil {
		r.addImages(ctx, env, i, dump)
	}
}

// addImages records the image set of container i that its dump-done (env) carries.
func (r *run) addImages(ctx context.Context, env protocol.Envelope, i int, st *protocol.DumpStats) {
	if st.Images == nil || env.Epoch != r.m.Epoch || r.m.Containers[i].Images != nil {
		return // none (commit names it), another epoch's, or a duplicate
	}
	img := *st.Images
	if c := r.m.Containers[i]; c.Direct && c.StreamedTo != "" && st.ReusedFrom == "" {
		img.Node = c.StreamedTo // dumped into its target: the only copy is there
	}
	r.m.Containers[i].Images = &img
	r.m.Containers[i].FreezeMS = st.FreezeMS
	r.m.Containers[i].DumpMS = st.DumpMS
	c := r.m.Containers[i]
	r.s.event(ctx, api.Event{ID: r.m.ID, Container: c.Key(), Node: c.Node, Phase: "durable", Bytes: img.Bytes(), MS: st.FreezeMS})
}

// process executes one Ready of the coordinator role.
func (r *run) process(ctx context.Context, start time.Time) {
	rd := r.mach.Ready()
	var outcomes []protocol.Envelope
	for _, act := range rd.Actions {
		switch act.Kind {
		case algorithms.ActPersist:
			r.m.Record = act.Record
			if r.m.State == store.StatePreparing {
				r.m.State = store.StateDumping
			}
			r.save(ctx)
		case algorithms.ActCommit:
			// Its outcome is stepped back once this Ready is done: the role then sends
			// the decision (commit, or abort with the failure as the reason).
			t0 := time.Now()
			r.s.cfg.Metrics.Phase(r.m.Algorithm, metrics.PhaseRun, t0.Sub(r.started))
			err := r.commit(ctx, act, start)
			r.s.cfg.Metrics.Phase(r.m.Algorithm, metrics.PhaseCommit, time.Since(t0))
			r.decided = err == nil
			outcomes = append(outcomes, algorithms.CommitDone(act, err))
		case algorithms.ActAbort:
			r.m.Record = act.Record
			r.abort(ctx, act.Reason)
			r.decided = true
		}
	}
	deadline := time.Now().Add(r.timeout + 10*time.Second).UnixMilli()
	for _, env := range rd.Messages {
		if env.Deadline.Ticks > 0 {
			env.Deadline.UnixMilli = time.Now().Add(time.Duration(env.Deadline.Ticks) * r.s.cfg.TickPeriod).UnixMilli()
		} else if env.Deadline.UnixMilli == 0 && (env.Type == protocol.TypeLock || env.Type == protocol.TypeMarker) {
			env.Deadline.UnixMilli = deadline
		}
		r.send(ctx, env)
	}
	r.mach.Advance()
	for _, env := range outcomes {
		r.step(env)
	}
}

func (r *run) send(ctx context.Context, env protocol.Envelope) {
	subj, err := node.SubjectFor(env.To, func(c string) (string, bool) { n, ok := r.nodeOf[c]; return n, ok })
	if err != nil {
		r.s.log.Warn("cannot route message", "to", env.To, "err", err)
		return
	}
	b, err := protocol.Encode(env)
	if err != nil {
		r.s.log.Warn("cannot encode message", "type", env.Type, "err", err)
		return
	}
	if err := r.s.cfg.Bus.Publish(ctx, subj, b); err != nil {
		r.s.log.Warn("cannot send message", "subject", subj, "type", env.Type, "err", err)
	}
}

func (r *run) save(ctx context.Context) {
	r.m.UpdatedAt = time.Now().UTC()
	if err := r.s.cfg.Store.Update(ctx, r.m); err != nil {
		r.s.log.Warn("cannot persist snapshot record", "snapshot", r.m.ID, "err", err)
	}
}

// commit executes ActCommit: it checks that every container's dump-done brought its
// image set, runs the cut checker, and commits the manifest with the role's record in
// one transaction. A non-nil error means nothing was committed: the role then aborts
// the snapshot with the error's text as the reason. A cut the checker finds
// inconsistent fails the commit when the algorithm promises a consistent one; for one
// that does not (uncoordinated) the verdict is only recorded, and restore finds a
// recovery line.
func (r *run) commit(ctx context.Context, act algorithms.Action, start time.Time) error {
	var missing []string
	for _, c := range r.m.Containers {
		if c.Images == nil {
			missing = append(missing, c.Key()+"@"+c.Node)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no image set arrived with the dump-done of %s (an agent older than this coordinator, or a lost message): upgrade swarmckpt on those nodes, then take the snapshot again",
			strings.Join(missing, ", "))
	}
	verify := r.s.cfg.Verify
	if r.s.cfg.VerifyCommit != nil {
		verify = r.s.cfg.VerifyCommit
	}
	if verify != nil {
		r.m.Verdict = verify(ctx, r.m)
		if v := r.m.Verdict; v != nil && !v.Consistent && v.Error == "" {
			if r.alg.Guarantees().ConsistentCut {
				r.s.log.Error("cut is NOT consistent: algorithm bug; snapshot aborted", "snapshot", r.m.ID, "algorithm", r.m.Algorithm, "summary", v.Summary)
				return fmt.Errorf("the cut is not consistent, which the %s algorithm promises (a bug: please report it with `swarmckpt inspect --verify %s`): %s: %s",
					r.m.Algorithm, r.m.ID, v.Summary, violations(v.Lines))
			}
			r.s.log.Info("committed cut is not consistent (the algorithm promises none: restore checks it, see restore --recovery-line)", "snapshot", r.m.ID, "summary", v.Summary)
		}
	}
	now := time.Now().UTC()
	r.m.Record = act.Record
	r.m.CommittedAt, r.m.UpdatedAt = now, now
	r.m.TotalMS = time.Since(start).Milliseconds()
	if err := r.s.cfg.Store.Commit(ctx, r.m, r.lock); err != nil {
		r.m.CommittedAt = time.Time{}
		return fmt.Errorf("commit refused: %w", err)
	}
	var bytes int64
	for _, c := range r.m.Containers {
		if c.Images != nil {
			bytes += c.Images.Bytes()
		}
	}
	r.s.event(ctx, api.Event{ID: r.m.ID, Phase: "committed", Bytes: bytes, MS: r.m.TotalMS})
	r.s.emit(ctx, events.Event{Kind: events.SnapshotCommitted, Stack: r.m.Stack, Snapshot: r.m.ID, MS: r.m.TotalMS})
	return nil
}

// violations lists the violation lines of a verdict (at most 5), for an abort's reason.
func violations(lines []string) string {
	var out []string
	n := 0
	for _, l := range lines {
		if strings.Contains(l, "VIOLATION") {
			n++
			if len(out) < 5 {
				out = append(out, l)
			}
		}
	}
	if n > len(out) {
		out = append(out, fmt.Sprintf("and %d more", n-len(out)))
	}
	return strings.Join(out, "; ")
}

func (r *run) abort(ctx context.Context, reason string) {
	r.m.State, r.m.Reason, r.m.UpdatedAt = store.StateAborted, reason, time.Now().UTC()
	if err := r.s.cfg.Store.Update(ctx, r.m); err != nil {
		r.s.log.Warn("cannot record abort", "snapshot", r.m.ID, "err", err)
	}
	r.s.event(ctx, api.Event{ID: r.m.ID, Phase: "aborted", Message: reason})
	r.s.emit(ctx, events.Event{Kind: events.SnapshotAborted, Stack: r.m.Stack, Snapshot: r.m.ID, Reason: reason})
}
