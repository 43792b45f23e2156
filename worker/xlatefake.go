package worker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/xlate"
)

// fakeXlate is the Fake's Translations state (containers are named by their name = ID).
type fakeXlate struct {
	kept  map[string]Translation // container + " " + old
	inUse map[string]bool        // the same keys: InUse's answer (SetXlateInUse)
}

// Translate implements Translations: any container name runs, except one ended by
// Stop (node.ErrNotFound).
func (f *Fake) Translate(_ context.Context, name string, old, new netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, new = old.Unmap(), new.Unmap()
	if f.stopped[name] {
		return node.Mark(fmt.Errorf("fake worker %s: translate in %s: not running", f.Node, name), node.ErrNotFound)
	}
	var rules []xlate.Rule
	for _, t := range f.xl.kept {
		if t.ContainerID == name {
			rules = append(rules, xlate.Rule{Old: t.Old, New: t.New})
		}
	}
	now, err := xlate.Apply(rules, true, old, new)
	if err != nil {
		return node.Mark(fmt.Errorf("fake worker %s: translate in %s: %w", f.Node, name, err), node.ErrInvalidArgument)
	}
	if f.xl.kept == nil {
		f.xl.kept, f.xl.inUse = map[string]Translation{}, map[string]bool{}
	}
	f.xl.kept = keptAfter(f.xl.kept, name, name, now, time.Now())
	return nil
}

// Translations implements Translations. The fake polls when asked: first it removes
// the translations of containers ended by Stop and those whose old address is not in
// use (SetXlateInUse).
func (f *Fake) Translations(context.Context) ([]Translation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []Translation{}
	for k, t := range f.xl.kept {
		if f.stopped[t.ContainerID] || !f.xl.inUse[k] {
			delete(f.xl.kept, k)
			continue
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Translation) int {
		if c := strings.Compare(a.ContainerID, b.ContainerID); c != 0 {
			return c
		}
		return a.Old.Compare(b.Old)
	})
	return out, nil
}

// SetXlateInUse says whether a TCP socket of container c uses old (false by default:
// a translation is removed at the next Translations).
func (f *Fake) SetXlateInUse(c string, old netip.Addr, used bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.xl.inUse == nil {
		f.xl.kept, f.xl.inUse = map[string]Translation{}, map[string]bool{}
	}
	f.xl.inUse[xlateKey(c, old)] = used
}

var _ Translations = (*Fake)(nil)
