package restore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms/uncoordinated"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/cut"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// cutReadTimeout bounds one node's re-hash and socket read of one image set.
const cutReadTimeout = 2 * time.Minute

// maxViolationLines bounds the violations quoted in a refusal.
const maxViolationLines = 8

// chosenCut is what a restore restores: the snapshot's own cut, or (recovery line)
// a combination of the stack's snapshots, one per container.
type chosenCut struct {
	// m is what the Restorer gets: the snapshot itself, or a composite manifest with
	// the snapshot's ID whose Container records come from the chosen snapshots (their
	// Images point at the chosen image sets).
	m *store.Manifest
	// check says how the cut was checked, in words.
	check string
	// from and back (recovery line only): per SERVICE.SLOT the snapshot it comes from
	// and how many checkpoints it rolled back.
	from map[string]string
	back map[string]int
}

// rolledBack reports whether some container comes from an older snapshot.
func (c *chosenCut) rolledBack() bool {
	for _, b := range c.back {
		if b > 0 {
			return true
		}
	}
	return false
}

// record copies the choice into a restore record and result (either may be nil).
func (c *chosenCut) record(rec *store.Restore, res *api.RestoreResult) {
	if c == nil {
		return
	}
	if rec != nil {
		rec.CutCheck, rec.From, rec.RolledBack = c.check, c.from, c.back
	}
	if res != nil {
		res.CutCheck, res.From, res.RolledBack = c.check, c.from, c.back
	}
}

// chooseCut decides which images a restore of m uses, before anything is stopped.
// A snapshot whose algorithm promises a consistent cut is restored as it is. Any
// other (uncoordinated) has its cut checked over the real images (each node re-hashes
// its set and reads the TCP sockets of the CRIU images; cut.Check here): a consistent
// cut is restored, an inconsistent one refused naming the violating connections,
// unless req.Force (restore it anyway) or req.RecoveryLine (restore the newest
// consistent combination of the stack's snapshots, recoveryLine).
func (s *Restores) chooseCut(ctx context.Context, m *store.Manifest, req api.RestoreRequest) (*chosenCut, error) {
	name := cmp.Or(m.Algorithm, DefaultAlgorithm)
	alg, err := s.cfg.Algorithms(name)
	if err == nil && alg.Guarantees().ConsistentCut {
		if req.RecoveryLine {
			s.event(ctx, api.Event{ID: m.ID, Phase: "cut-check", Message: "--recovery-line ignored: algorithm " + name + " promises a consistent cut"})
		}
		return &chosenCut{m: m, check: "not needed: algorithm " + name + " promises a consistent cut"}, nil
	}
	promise := fmt.Sprintf("algorithm %s promises no consistent cut", name)
	if err != nil {
		promise = fmt.Sprintf("algorithm %q is unknown to this coordinator, so its cut is not trusted", m.Algorithm)
	}
	if req.RecoveryLine {
		return s.recoveryLine(ctx, m, promise)
	}
	if req.Force {
		s.event(ctx, api.Event{ID: m.ID, Phase: "cut-check", Message: "not checked (--force): " + promise})
		s.log.Warn("restoring a cut that was not checked (--force)", "snapshot", m.ID, "algorithm", name)
		return &chosenCut{m: m, check: "not checked (--force): " + promise}, nil
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "cut-check", Message: promise + ": checking the recorded cut over the images before stopping anything"})
	r := newSocketReader(s)
	keys, recs := cutOf(m)
	rep, err := r.check(ctx, keys, recs)
	if err != nil {
		return nil, api.Errorf(api.CodeFailed, "restore of %s refused: nothing was changed: %s, and its cut could not be checked: %v (bring the node back and retry, or restore without the check: swarmckpt restore %s --force)",
			m.ID, promise, err, m.ID)
	}
	if !rep.Consistent() {
		s.event(ctx, api.Event{ID: m.ID, Phase: "refused", Message: rep.Summary()})
		return nil, api.Errorf(api.CodeFailed, "restore of %s refused: nothing was changed: %s and the recorded cut is %s:\n  - %s\nRestore its recovery line instead, the newest consistent combination of the stack's %s snapshots up to this one (some containers come back from older snapshots): swarmckpt restore %s --recovery-line\nor restore this cut anyway (the connections above may hang, reset or lose bytes): swarmckpt restore %s --force",
			m.ID, promise, rep.Summary(), strings.Join(violationLines(rep), "\n  - "), name, m.ID, m.ID)
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "cut-check", Message: rep.Summary()})
	return &chosenCut{m: m, check: rep.Summary()}, nil
}

// migrateNeedsConsistentCut refuses a migration with an algorithm that promises no
// consistent cut: its containers stop after their dump, so an inconsistent cut could
// neither be restored nor rolled back to anything better than itself.
func (s *Restores) migrateNeedsConsistentCut(name string) error {
	name = cmp.Or(name, DefaultAlgorithm)
	alg, err := s.cfg.Algorithms(name)
	if err != nil || alg.Guarantees().ConsistentCut {
		return nil // an unknown name is refused by the snapshot with the list of names
	}
	return api.Errorf(api.CodeBadRequest, "migrate with --algorithm %s refused: it promises no consistent cut, and a migration stops the containers after their dump, so an inconsistent cut could be neither restored nor rolled back; use a consistent-cut algorithm (--algorithm %s, or chandy-lamport, minimal)", name, DefaultAlgorithm)
}

// recoveryLine chooses, per container, a snapshot among the stack's committed
// snapshots of m's algorithm up to m (newest first), starting with m for everyone and
// moving back the end blamed by each violation (uncoordinated.LineByCheck), checking
// every combination over the real images (each set read once).
func (s *Restores) recoveryLine(ctx context.Context, m *store.Manifest, promise string) (*chosenCut, error) {
	all, err := s.cfg.Store.List(ctx, m.Stack)
	if err != nil {
		return nil, api.Errorf(api.CodeFailed, "recovery line for %s: list the snapshots of stack %s: %v", m.ID, m.Stack, err)
	}
	cands := lineCandidates(m, all)
	counts := map[string]int{}
	hist := map[string][]*store.Manifest{}
	recOf := func(sn *store.Manifest, key string) store.Container {
		for _, c := range sn.Containers {
			if c.Key() == key {
				return c
			}
		}
		return store.Container{}
	}
	for _, c := range m.Containers {
		for _, sn := range cands {
			if rc := recOf(sn, c.Key()); rc.Images != nil {
				hist[c.Key()] = append(hist[c.Key()], sn)
			}
		}
		counts[c.Key()] = len(hist[c.Key()])
	}
	// order ranks the candidates: a smaller rank is a newer snapshot.
	order := map[string]int{}
	for i, sn := range cands {
		order[sn.ID] = i
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "recovery-line", Message: fmt.Sprintf("%s: choosing a recovery line over %d committed snapshot(s) of stack %s up to %s", promise, len(cands), m.Stack, m.ID)})
	r := newSocketReader(s)
	var last *cut.Report
	combo := func(back map[string]int) ([]string, []store.Container) {
		keys := make([]string, 0, len(back))
		for k := range back {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		recs := make([]store.Container, len(keys))
		for i, k := range keys {
			sn := hist[k][back[k]]
			rc := recOf(sn, k)
			im := *rc.Images
			if im.Dir == "" {
				im.Dir = node.SetID(sn.ID, k) // its base names the set (SetOf)
			}
			rc.Images = &im
			recs[i] = rc
		}
		return keys, recs
	}
	line, err := uncoordinated.LineByCheck(counts, func(back map[string]int) ([]uncoordinated.Fix, error) {
		keys, recs := combo(back)
		rep, err := r.check(ctx, keys, recs)
		if err != nil {
			return nil, err
		}
		last = rep
		snapOf := func(key string) string { return hist[key][back[key]].ID }
		var fixes []uncoordinated.Fix
		for _, v := range rep.Violations {
			blame := v.From
			switch v.Violation {
			case cut.Orphan:
				blame = v.To // it holds bytes its peer's checkpoint never sent
			case cut.Lost:
				blame = v.From // it had bytes acknowledged that the receiver's checkpoint lacks
			default:
				// A connection one end recorded and the other did not: move back the
				// end recorded later (it opened the connection after the other's
				// checkpoint, or the other had closed it already).
				if _, ok := back[v.To]; ok && order[snapOf(v.To)] < order[snapOf(v.From)] {
					blame = v.To
				}
			}
			fixes = append(fixes, uncoordinated.Fix{Container: blame, Reason: fmt.Sprintf("%s (%s at %s, %s at %s)",
				v.Line(), v.From, snapOf(v.From), v.To, cmp.Or(func() string {
					if _, ok := back[v.To]; ok {
						return snapOf(v.To)
					}
					return ""
				}(), "-"))})
		}
		if len(fixes) > 0 {
			moved := map[string]string{}
			for _, f := range fixes {
				if _, ok := moved[f.Container]; !ok {
					moved[f.Container] = f.Reason
				}
			}
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(moved)) {
				parts = append(parts, fmt.Sprintf("%s back from %s (%s)", k, snapOf(k), moved[k]))
			}
			s.event(ctx, api.Event{ID: m.ID, Phase: "recovery-line", Message: fmt.Sprintf("%s; moving %s", rep.Summary(), strings.Join(parts, "; "))})
		}
		return fixes, nil
	})
	var ex *uncoordinated.ExhaustedError
	switch {
	case errors.As(err, &ex):
		return nil, api.Errorf(api.CodeFailed, "restore of %s refused: nothing was changed: no recovery line among the %d committed %s snapshot(s) of stack %s up to %s: %s would have to go back past its oldest checkpoint (it would start from scratch) because of:\n  - %s\nTake a new snapshot with a consistent-cut algorithm (swarmckpt snapshot %s --algorithm blocking), or restore a cut anyway with --force",
			m.ID, len(cands), m.Algorithm, m.Stack, m.ID, ex.Container, strings.Join(ex.Reasons, "\n  - "), m.Stack)
	case err != nil:
		return nil, api.Errorf(api.CodeFailed, "restore of %s refused: nothing was changed: the recovery line could not be checked: %v (bring the node back, or remove the snapshot whose images are gone with 'swarmckpt rm', and retry)", m.ID, err)
	}
	keys, recs := combo(line.Back)
	out := *m
	out.Containers = make([]store.Container, len(m.Containers))
	pos := map[string]int{}
	for i, k := range keys {
		pos[k] = i
	}
	ch := &chosenCut{m: &out, from: map[string]string{}, back: line.Back}
	var parts []string
	for i, c := range m.Containers {
		out.Containers[i] = recs[pos[c.Key()]]
		sn := hist[c.Key()][line.Back[c.Key()]].ID
		ch.from[c.Key()] = sn
		parts = append(parts, fmt.Sprintf("%s from %s (%d back)", c.Key(), sn, line.Back[c.Key()]))
	}
	ch.check = "recovery line: " + last.Summary() + "; " + strings.Join(parts, ", ")
	s.event(ctx, api.Event{ID: m.ID, Phase: "recovery-line", Message: fmt.Sprintf("%s after %d check(s)", ch.check, line.Checks)})
	return ch, nil
}

// lineCandidates are the committed snapshots of m's stack and algorithm up to m,
// newest first (by epoch, then commit time), m first.
func lineCandidates(m *store.Manifest, all []*store.Manifest) []*store.Manifest {
	out := []*store.Manifest{m}
	for _, sn := range all {
		if sn.ID == m.ID || sn.State != store.StateCommitted || sn.Stack != m.Stack || sn.Algorithm != m.Algorithm {
			continue
		}
		older := sn.Epoch < m.Epoch || (sn.Epoch == m.Epoch && sn.CommittedAt.Before(m.CommittedAt))
		if !older {
			continue
		}
		out = append(out, sn)
	}
	slices.SortStableFunc(out[1:], func(a, b *store.Manifest) int {
		if c := cmp.Compare(b.Epoch, a.Epoch); c != 0 {
			return c
		}
		return b.CommittedAt.Compare(a.CommittedAt)
	})
	return out
}

// cutOf lists m's containers by key (image directories named after their sets).
func cutOf(m *store.Manifest) ([]string, []store.Container) {
	recs := slices.Clone(m.Containers)
	for i, c := range recs {
		if c.Images != nil && c.Images.Dir == "" {
			im := *c.Images
			im.Dir = node.SetID(m.ID, c.Key()) // its base names the set (SetOf)
			recs[i].Images = &im
		}
	}
	slices.SortFunc(recs, func(a, b store.Container) int { return cmp.Compare(a.Key(), b.Key()) })
	keys := make([]string, len(recs))
	for i, c := range recs {
		keys[i] = c.Key()
	}
	return keys, recs
}

// violationLines quotes the first violations of rep.
func violationLines(rep *cut.Report) []string {
	var out []string
	for i, v := range rep.Violations {
		if i == maxViolationLines {
			out = append(out, fmt.Sprintf("... and %d more (swarmckpt inspect --verify)", len(rep.Violations)-i))
			break
		}
		out = append(out, v.Line())
	}
	return out
}

// socketReader reads the TCP sockets of image sets through the agents of the nodes
// holding them (the agent's verify: every file re-hashed first), each set once.
type socketReader struct {
	s     *Restores
	mu    sync.Mutex
	cache map[string][]cut.Socket // node/set -> sockets (Container unset)
}

func newSocketReader(s *Restores) *socketReader {
	return &socketReader{s: s, cache: map[string][]cut.Socket{}}
}

// check reads the sets of recs (in parallel, cached) and checks their cut; keys[i]
// names recs[i].
func (r *socketReader) check(ctx context.Context, keys []string, recs []store.Container) (*cut.Report, error) {
	socks := make([][]cut.Socket, len(recs))
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for i, c := range recs {
		if c.Images == nil || c.Images.Node == "" {
			return nil, fmt.Errorf("%s has no image set", keys[i])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			socks[i], errs[i] = r.read(ctx, keys[i], c)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var all []cut.Socket
	addrs := map[string][]netip.Addr{}
	for i, c := range recs {
		for _, sk := range socks[i] {
			sk.Container = keys[i]
			all = append(all, sk)
		}
		for _, ip := range c.IPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				addrs[keys[i]] = append(addrs[keys[i]], a)
			}
		}
	}
	return cut.Check(cut.StateFromSockets(keys, all, addrs)), nil
}

func (r *socketReader) read(ctx context.Context, key string, c store.Container) ([]cut.Socket, error) {
	set := filepath.Base(c.Images.Dir)
	id := c.Images.Node + "/" + set
	r.mu.Lock()
	got, ok := r.cache[id]
	r.mu.Unlock()
	if ok {
		return got, nil
	}
	socks, err := Sockets(ctx, r.s.nodes, cutReadTimeout, set, c)
	if err != nil {
		return nil, fmt.Errorf("%s (image set %s on %s): %w", key, set, c.Images.Node, err)
	}
	r.mu.Lock()
	r.cache[id] = socks
	r.mu.Unlock()
	return socks, nil
}
