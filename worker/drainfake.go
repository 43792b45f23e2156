package worker

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
)

// fakeDrain is the Fake's Drainer state (containers are named by their name = ID).
type fakeDrain struct {
	mu       sync.Mutex
	ckpt     map[string]string // held and checkpointed: container -> set
	into     map[string]string // held and checkpointed into another node: container -> its address
	armed    map[string]ArmOptions
	stops    map[string]HeldStop
	verdicts map[string]ociwrap.Verdict
}

// HoldStop has the Fake's wrapper hold the stop of an armed container (as a kill
// with signal would, for the armed budget); false when the kill passes at once.
func (f *Fake) HoldStop(name, signal string) bool {
	d := &f.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.armed[name]
	if !ok || ociwrap.DecideKill(true, ociwrap.Arm{BudgetMS: o.Budget.Milliseconds()}, signal) != ociwrap.KillHold {
		return false
	}
	if d.stops == nil {
		d.stops, d.verdicts = map[string]HeldStop{}, map[string]ociwrap.Verdict{}
	}
	d.stops[name] = HeldStop{ContainerID: name, Name: name, Signal: signal, Deadline: time.Now().Add(o.Budget), Armed: o}
	delete(d.verdicts, name)
	return true
}

// Verdict returns the verdict given for a held stop of name, if any.
func (f *Fake) Verdict(name string) (ociwrap.Verdict, bool) {
	f.drain.mu.Lock()
	defer f.drain.mu.Unlock()
	v, ok := f.drain.verdicts[name]
	return v, ok
}

// Arm implements Drainer.
func (f *Fake) Arm(_ context.Context, name string, o ArmOptions) error {
	if o.Budget <= 0 {
		return fmt.Errorf("fake worker %s: arm %s: a hold budget > 0 is required", f.Node, name)
	}
	f.drain.mu.Lock()
	defer f.drain.mu.Unlock()
	if f.drain.armed == nil {
		f.drain.armed = map[string]ArmOptions{}
	}
	f.drain.armed[name] = o
	return nil
}

// Disarm implements Drainer.
func (f *Fake) Disarm(_ context.Context, name string) error {
	d := &f.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.armed, name)
	if _, held := d.stops[name]; held {
		d.decide(name, ociwrap.VerdictRelease, "disarmed")
	}
	return nil
}

func (d *fakeDrain) decide(name, outcome, reason string) {
	if set, ok := d.ckpt[name]; ok {
		outcome = ociwrap.VerdictCheckpointed
		if reason == "" {
			reason = "set " + set
		}
		delete(d.ckpt, name)
		delete(d.into, name)
	}
	delete(d.stops, name)
	d.verdicts[name] = ociwrap.Verdict{Outcome: outcome, Reason: reason}
}

// HeldStops implements Drainer.
func (f *Fake) HeldStops(context.Context) ([]HeldStop, error) {
	f.drain.mu.Lock()
	defer f.drain.mu.Unlock()
	out := make([]HeldStop, 0, len(f.drain.stops))
	for name, h := range f.drain.stops {
		if _, done := f.drain.ckpt[name]; !done && !time.Now().Before(h.Deadline) {
			// As the wrapper does at the deadline: the stop goes on, no verdict.
			delete(f.drain.stops, name)
			continue
		}
		h.Set, h.Into = f.drain.ckpt[h.ContainerID], f.drain.into[h.ContainerID]
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ContainerID < out[j].ContainerID })
	return out, nil
}

// CheckpointHeld implements Drainer: the fake dump (FailDump applies) into setID, or
// with into, sent there through SendTo with none left here (the container ends only
// once it is there); the stop stays held until ReleaseHeld.
func (f *Fake) CheckpointHeld(ctx context.Context, name, setID, into string) (*imageset.Manifest, error) {
	f.drain.mu.Lock()
	_, held := f.drain.stops[name]
	_, done := f.drain.ckpt[name]
	f.drain.mu.Unlock()
	if !held {
		return nil, fmt.Errorf("%w: container %s on fake %s", ErrNotHeld, name, f.Node)
	}
	if done {
		return nil, fmt.Errorf("fake worker %s: %s: %w", f.Node, name, ErrCheckpointed)
	}
	var (
		m   *imageset.Manifest
		err error
	)
	if into != "" {
		m, err = f.dumpAndSend(ctx, name, setID, into, "its stop proceeds", func() {
			f.stopped[name] = true
			f.frozen[name], f.locked[name] = false, false
		})
	} else {
		m, err = f.Dump(ctx, name, setID, false)
	}
	f.drain.mu.Lock()
	defer f.drain.mu.Unlock()
	if err != nil {
		f.drain.decide(name, ociwrap.VerdictRelease, err.Error())
		return nil, err
	}
	if f.drain.ckpt == nil {
		f.drain.ckpt, f.drain.into = map[string]string{}, map[string]string{}
	}
	f.drain.ckpt[name] = setID
	if into != "" {
		f.drain.into[name] = into
	}
	return m, nil
}

// ReleaseHeld implements Drainer.
func (f *Fake) ReleaseHeld(_ context.Context, name, reason string) error {
	f.drain.mu.Lock()
	defer f.drain.mu.Unlock()
	if _, held := f.drain.stops[name]; !held {
		return fmt.Errorf("%w: container %s on fake %s", ErrNotHeld, name, f.Node)
	}
	f.drain.decide(name, ociwrap.VerdictRelease, reason)
	return nil
}

var _ Drainer = (*Fake)(nil)
