package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
	"github.com/swarmckpt/swarmckpt/coordinator/stack"
)

// PolicySource lists the stacks' services with their labels and reports service
// changes: stack.Docker on a swarm manager, stack.FakeLabels in tests (conformance:
// stack/stacktest.Labels).
type PolicySource interface {
	// ServiceLabels lists every service of every stack with its labels.
	ServiceLabels(ctx context.Context) ([]stack.ServiceLabels, error)
	// WatchServices calls changed on every service create, update or remove until
	// ctx ends (nil) or the watch fails.
	WatchServices(ctx context.Context, changed func()) error
}

// Results of a scheduled run (store.PolicyRun.Result).
const (
	RunCommitted = "committed"
	RunAborted   = "aborted"
	RunSkipped   = "skipped"
	RunFailed    = "failed"
)

// reconciler is the policy controller, a reconcile loop in the manner of swarmkit's
// orchestrators: on every service event and every resync it reads the desired state
// (the stacks' labels, coordinator/policy.Derive), the observed one (the stored
// records, the running scheduled snapshots), decides with the pure functions of
// coordinator/policy (Due, Expired) and acts: it stores each stack's record, starts a
// due scheduled snapshot and removes the snapshots retention lets go. Nothing assumes
// the previous pass finished: a record says what runs (Running, stored before the
// snapshot starts) and when the next run is due, so a restarted coordinator goes on
// without a doubled run and finishes the retention of a run its predecessor committed.
type reconciler struct {
	s      *Service
	src    PolicySource
	log    *slog.Logger
	now    func() time.Time
	resync time.Duration
	kick   chan struct{}

	mu      sync.Mutex
	states  map[string]*store.PolicyState // by stack, as stored
	running map[string]string             // stack -> scheduled snapshot this process runs
	logged  map[string]string             // stack -> label errors last logged
	srcErr  string                        // last label source error logged
	wg      sync.WaitGroup
	// armed are the task containers armed for drains by this process, and their
	// stacks (drain.go).
	armed      map[string]bool
	armedStack map[string]string
	unarmable  map[string]bool // containers whose grace period is too short (logged once)
}

func newReconciler(s *Service) *reconciler {
	return &reconciler{s: s, src: s.cfg.Policies, log: s.log.With("component", "policy"), now: time.Now,
		resync: s.cfg.PolicyResync, kick: make(chan struct{}, 1),
		running: map[string]string{}, logged: map[string]string{}, armed: map[string]bool{}, armedStack: map[string]string{}}
}

// poke asks for a pass soon (a service changed).
func (r *reconciler) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run reconciles until ctx ends, then waits for the scheduled snapshots it started.
func (r *reconciler) run(ctx context.Context) {
	defer r.wg.Wait()
	go r.watch(ctx)
	r.wg.Add(1)
	go func() { defer r.wg.Done(); newLossWatcher(r).run(ctx) }() // nodeloss.go
	for {
		next := r.pass(ctx, r.now())
		wait := r.resync
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(r.now()), 10*time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// watch keeps a service event watch open (the resync covers its gaps).
func (r *reconciler) watch(ctx context.Context) {
	for ctx.Err() == nil {
		if err := r.src.WatchServices(ctx, r.poke); err != nil {
			r.log.Warn("service event watch failed; retrying in 5s (the periodic resync still runs)", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			r.poke()
		}
	}
}

// load reads the stored records (first pass, or after a conflict).
func (r *reconciler) load(ctx context.Context) error {
	ps, err := r.s.cfg.Store.ListPolicies(ctx)
	if err != nil {
		return err
	}
	r.states = map[string]*store.PolicyState{}
	for _, p := range ps {
		r.states[p.Stack] = p
	}
	return nil
}

// put stores st (r.mu held); on a conflict the records are read again next pass.
func (r *reconciler) put(ctx context.Context, st *store.PolicyState) error {
	st.UpdatedAt = r.now().UTC()
	if err := r.s.cfg.Store.PutPolicy(ctx, st); err != nil {
		r.states = nil
		return fmt.Errorf("store the policy record of stack %s: %w", st.Stack, err)
	}
	r.states[st.Stack] = st
	return nil
}

// pass is one reconcile pass at now; it returns the earliest next due time.
func (r *reconciler) pass(ctx context.Context, now time.Time) (next time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.states == nil {
		if err := r.load(ctx); err != nil {
			r.log.Warn("cannot read the policy records; retrying", "err", err)
			return now.Add(5 * time.Second)
		}
	}
	labels, err := r.src.ServiceLabels(ctx)
	if err != nil {
		if err.Error() != r.srcErr {
			r.log.Warn("cannot list the stacks' service labels; no policy changes until it works again", "err", err)
			r.srcErr = err.Error()
		}
		return now.Add(5 * time.Second)
	}
	r.srcErr = ""
	byStack := map[string][]policy.Service{}
	for _, l := range labels {
		byStack[l.Stack] = append(byStack[l.Stack], policy.Service{Name: l.Service, Labels: l.Labels})
	}
	stacks := make([]string, 0, len(byStack)+len(r.states))
	for st := range byStack {
		stacks = append(stacks, st)
	}
	for st := range r.states {
		if _, ok := byStack[st]; !ok {
			stacks = append(stacks, st)
		}
	}
	slices.Sort(stacks)
	for _, name := range stacks {
		if err := r.reconcile(ctx, name, byStack[name], now); err != nil {
			r.log.Warn("policy pass failed for a stack; retrying", "stack", name, "err", err)
			if r.states == nil {
				return now.Add(time.Second)
			}
		}
		r.drainArm(ctx, name, byStack[name]) // drain.go
		if st := r.states[name]; st != nil && !st.Next.IsZero() && (next.IsZero() || st.Next.Before(next)) {
			next = st.Next
		}
	}
	return next
}

// reconcile brings one stack's record and runs in line with its labels (r.mu held).
func (r *reconciler) reconcile(ctx context.Context, name string, services []policy.Service, now time.Time) error {
	p, derr := policy.DeriveOn(name, services, len(r.s.live.live())) // replicate.go's copies need as many nodes
	st := r.states[name]
	if p == nil && derr == nil {
		// No swarmckpt.* label (any more), or the stack is gone: forget its record once
		// no scheduled run of it goes on. Its snapshots stay.
		if st == nil {
			return nil
		}
		if st.Running != "" {
			if r.running[name] == st.Running {
				return nil // this process runs it: forgotten once it ends
			}
			c := *st
			if r.finishLeftover(ctx, &c, nil); c.Running != "" {
				return nil
			}
		}
		delete(r.logged, name)
		r.log.Info("stack has no swarmckpt label (any more): no policy", "stack", name)
		if err := r.s.cfg.Store.DeletePolicy(ctx, name); err != nil {
			return err
		}
		delete(r.states, name)
		return nil
	}
	if st == nil {
		st = &store.PolicyState{Stack: name}
	} else {
		c := *st
		st = &c
	}
	before, _ := json.Marshal(st)
	if st.Running != "" && r.running[name] != st.Running {
		r.finishLeftover(ctx, st, p)
	}
	if derr != nil {
		var errs []string
		for _, e := range policy.Errors(derr) {
			errs = append(errs, e.Error())
		}
		if text := strings.Join(errs, "; "); r.logged[name] != text {
			r.log.Error("stack's swarmckpt labels are in error: nothing of its policy is applied until they are fixed (swarmckpt policy "+name+")",
				"stack", name, "errors", text)
			r.logged[name] = text
			r.s.emit(ctx, events.Event{Kind: events.LabelError, Stack: name, Reason: text})
		}
		st.Policy, st.LabelErrors, st.Schedule, st.Next = nil, errs, "", time.Time{}
		return r.putIfChanged(ctx, st, before)
	}
	if r.logged[name] != "" {
		r.log.Info("stack's swarmckpt labels are valid again: its policy applies", "stack", name)
	}
	r.logged[name] = ""
	st.LabelErrors = nil
	st.Policy, _ = json.Marshal(p)
	if !p.Enabled || p.Schedule == "" {
		st.Schedule, st.Next = "", time.Time{}
		return r.putIfChanged(ctx, st, before)
	}
	sched, err := policy.ParseSchedule(p.Schedule) // Derive checked it
	if err != nil {
		return err
	}
	d := policy.Due(sched, policy.Timing{Spec: st.Schedule, Next: st.Next}, now, st.Running != "")
	st.Schedule, st.Next = d.Next.Spec, d.Next.Next
	switch d.Action {
	case policy.Wait:
		return r.putIfChanged(ctx, st, before)
	case policy.Skip:
		st.Skipped++
		r.log.Warn("scheduled snapshot skipped: the previous one still runs", "stack", name, "running", st.Running, "next", st.Next)
		return r.put(ctx, st)
	}
	gate := r.s.gate(name)
	if !gate.TryLock() {
		st.Skipped++
		r.log.Warn("scheduled snapshot skipped: a snapshot, restore, migration or rm of the stack asked for by a user runs", "stack", name, "next", st.Next)
		return r.put(ctx, st)
	}
	id := NewID(name, now)
	st.Running = id
	// Stored before the snapshot starts: a coordinator that dies from here on leaves
	// a record its successor finishes, and it never runs this due time again.
	if err := r.put(ctx, st); err != nil {
		gate.Unlock()
		return err
	}
	if d.Missed > 0 {
		r.log.Info("scheduled runs were missed while no coordinator ran: running once now", "stack", name, "missed", d.Missed)
	}
	r.log.Info("scheduled snapshot starts", "stack", name, "snapshot", id, "algorithm", p.Algorithm, "next", st.Next)
	r.running[name] = id
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer gate.Unlock()
		r.runScheduled(context.WithoutCancel(ctx), *p, id)
	}()
	return nil
}

func (r *reconciler) putIfChanged(ctx context.Context, st *store.PolicyState, before []byte) error {
	if after, _ := json.Marshal(st); string(after) == string(before) && st.Revision != 0 {
		return nil
	}
	return r.put(ctx, st)
}

// runScheduled takes one scheduled snapshot and applies retention after it commits.
func (r *reconciler) runScheduled(ctx context.Context, p policy.Policy, id string) {
	m, err := r.s.snapshot(ctx, api.SnapshotRequest{ID: id, Stack: p.Stack, Algorithm: p.Algorithm, Timeout: p.Timeout, Replicas: p.Replicas, Exclude: p.Excluded, Purpose: policy.PurposeScheduled}, nil, nil)
	run := &store.PolicyRun{ID: id, At: r.now().UTC()}
	switch {
	case err == nil:
		run.Result = RunCommitted
	case m != nil && m.State == store.StateAborted:
		run.Result, run.Error = RunAborted, err.Error()
	case errors.Is(err, api.ErrBusy):
		run.Result, run.Error = RunSkipped, err.Error()
	default:
		run.Result, run.Error = RunFailed, err.Error()
	}
	if err != nil {
		r.log.Warn("scheduled snapshot did not commit", "stack", p.Stack, "snapshot", id, "result", run.Result, "err", err)
	} else {
		r.log.Info("scheduled snapshot committed", "stack", p.Stack, "snapshot", id)
		run.Removed = r.retain(ctx, p)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.running, p.Stack)
	if r.states == nil {
		if err := r.load(ctx); err != nil {
			r.log.Warn("cannot record a scheduled run (the next pass finishes it from the snapshot)", "stack", p.Stack, "err", err)
			return
		}
	}
	st := r.states[p.Stack]
	if st == nil || st.Running != id {
		return
	}
	c := *st
	c.Running, c.Last = "", run
	if err := r.put(ctx, &c); err != nil {
		r.log.Warn("cannot record a scheduled run (the next pass finishes it from the snapshot)", "stack", p.Stack, "err", err)
	}
	r.poke()
}

// finishLeftover records the outcome of a scheduled run a previous coordinator (or
// a pass that lost its record) left in st.Running, and applies retention after a
// committed one by p, the stack's policy now (r.mu held). A run whose snapshot is still neither committed nor
// aborted stays (the coordinator's recovery aborts it).
func (r *reconciler) finishLeftover(ctx context.Context, st *store.PolicyState, p *policy.Policy) {
	run := &store.PolicyRun{ID: st.Running, At: r.now().UTC()}
	m, err := r.s.cfg.Store.Get(ctx, st.Running)
	switch {
	case errors.Is(err, store.ErrNotFound):
		run.Result, run.Error = RunFailed, "the coordinator stopped before the snapshot was created"
	case err != nil:
		r.log.Warn("cannot read a scheduled snapshot left by the previous coordinator", "snapshot", st.Running, "err", err)
		return
	case !m.State.Final():
		return
	case m.State == store.StateCommitted:
		run.Result, run.At = RunCommitted, m.CommittedAt
		if p != nil { // labels in error: nothing is applied, retention included
			run.Removed = r.retain(ctx, *p)
		}
	default:
		run.Result, run.Error, run.At = RunAborted, m.Reason, m.UpdatedAt
	}
	r.log.Info("scheduled run left by the previous coordinator finished", "stack", st.Stack, "snapshot", st.Running, "result", run.Result)
	st.Running, st.Last = "", run
}

// retain removes the scheduled snapshots of p's stack that retention lets go, with
// their image sets on every node (remove, under the stack lock); it returns their ids.
func (r *reconciler) retain(ctx context.Context, p policy.Policy) []string {
	if p.Retain < 1 {
		return nil
	}
	ms, err := r.s.cfg.Store.Headers(ctx, p.Stack)
	if err != nil {
		r.log.Warn("retention: cannot list the stack's snapshots (next run retries)", "stack", p.Stack, "err", err)
		return nil
	}
	holder, err := r.s.cfg.Store.LockHolder(ctx, p.Stack)
	if err != nil {
		r.log.Warn("retention: cannot read the stack lock (next run retries)", "stack", p.Stack, "err", err)
		return nil
	}
	inUse := map[string]bool{}
	if id := policy.InUse(holder); id != "" {
		inUse[id] = true
	}
	var removed []string
	for _, id := range policy.Expired(ms, p.Retain, inUse) {
		res, err := r.s.remove(ctx, id)
		if err != nil {
			r.log.Warn("retention: cannot remove a scheduled snapshot (next run retries)", "stack", p.Stack, "snapshot", id, "err", err)
			continue
		}
		r.log.Info("retention removed a scheduled snapshot", "stack", p.Stack, "snapshot", id, "image_sets", res.ImagesRemoved, "warnings", res.Warnings)
		removed = append(removed, id)
	}
	return removed
}

// describe answers the policy API from the stored records.
func (r *reconciler) describe(ctx context.Context, name string) (*api.PolicyResult, error) {
	ps, err := r.s.cfg.Store.ListPolicies(ctx)
	if err != nil {
		return nil, api.Errorf(api.CodeFailed, "read the policy records: %v", err)
	}
	res := &api.PolicyResult{Stacks: []api.StackPolicy{}}
	for _, st := range ps {
		if name != "" && st.Stack != name {
			continue
		}
		sp := api.StackPolicy{Stack: st.Stack, LabelErrors: st.LabelErrors, Next: st.Next, Running: st.Running, Last: st.Last, Skipped: st.Skipped, Fences: st.Fences}
		if len(st.Policy) > 0 {
			sp.Policy = &policy.Policy{}
			if err := json.Unmarshal(st.Policy, sp.Policy); err != nil {
				return nil, api.Errorf(api.CodeCorrupt, "policy record of stack %s: %v", st.Stack, err)
			}
		}
		ms, err := r.s.cfg.Store.Headers(ctx, st.Stack)
		if err != nil {
			return nil, api.Errorf(api.CodeFailed, "list the snapshots of stack %s: %v", st.Stack, err)
		}
		for _, m := range ms {
			if m.State == store.StateCommitted && policy.Scheduled(m) {
				sp.Kept++
			}
		}
		res.Stacks = append(res.Stacks, sp)
	}
	if name != "" && len(res.Stacks) == 0 {
		return nil, api.Errorf(api.CodeNotFound, "stack %s has no policy: none of its services carries a swarmckpt.* label (docs/policy.md), or the stack does not exist", name)
	}
	return res, nil
}
