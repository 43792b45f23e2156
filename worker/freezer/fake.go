package freezer

import (
	"context"
	"fmt"
	"sync"

	"github.com/swarmckpt/swarmckpt/worker/container"
)

// Fake is an in-memory Freezer. Containers with Pid <= 0 behave as gone (ErrNoCgroup).
type Fake struct {
	mu     sync.Mutex
	frozen map[string]bool
	fail   map[string]error // by operation ("freeze", "thaw"): injected failures
}

var _ Freezer = (*Fake)(nil)

// NewFake returns a Fake with nothing frozen.
func NewFake() *Fake { return &Fake{frozen: map[string]bool{}} }

// Fail makes every later Freeze (op "freeze") or Thaw (op "thaw") fail with err,
// changing nothing; a nil err ends that.
func (f *Fake) Fail(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[string]error{}
	}
	f.fail[op] = err
}

func (f *Fake) set(c container.Ref, v bool) error {
	if c.Pid <= 0 {
		return fmt.Errorf("freezer %s: %w", c, ErrNoCgroup)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	op := "thaw"
	if v {
		op = "freeze"
	}
	if err := f.fail[op]; err != nil {
		return fmt.Errorf("freezer %s: %s: %w", c, op, err)
	}
	f.frozen[c.ID] = v
	return nil
}

// Freeze implements Freezer.
func (f *Fake) Freeze(_ context.Context, c container.Ref) error { return f.set(c, true) }

// Thaw implements Freezer.
func (f *Fake) Thaw(_ context.Context, c container.Ref) error { return f.set(c, false) }

// Frozen implements Freezer.
func (f *Fake) Frozen(_ context.Context, c container.Ref) (bool, error) {
	if c.Pid <= 0 {
		return false, fmt.Errorf("freezer %s: %w", c, ErrNoCgroup)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.frozen[c.ID], nil
}
