package coordinator

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/nodecall"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// The address translations the drain hold had staying containers install
// (drainaddr.go) are recorded in the store (store.Translations, one record per
// container and old address), so that whichever coordinator leads knows them: when a
// translating container moves in turn its images are rewritten with them
// (withTranslations), and a record is deleted once its node's worker no longer keeps
// the translation (the worker removes it when the last connection to the old address
// ended, or the container ended: worker/xlate_linux.go). The leader compares the
// records with what each node's worker keeps (node operation xlates) every
// Config.XlateResync (runXlates); a node whose agent does not answer keeps its
// records until it does.

// recordTranslation stores t (a failure is logged: a later move of t.Container then
// closes its connections to the moved task, as without the record).
func (s *Service) recordTranslation(ctx context.Context, t store.Translation, log *slog.Logger) {
	if err := s.cfg.Store.PutTranslation(context.WithoutCancel(ctx), t); err != nil {
		log.Warn("drain: cannot record an address translation in the store: if the container moves in turn, its connections to the moved task break",
			"peer_node", t.Node, "peer", t.Container, "old", t.Old, "new", t.New, "err", err)
	}
}

// recordChained records t, a translation t.Container's node installed, as its worker
// keeps it (xlate.Apply): where a record of t.Container translates some X to t.Old
// (the peer moved before, and the container's sockets still know it as X), that
// record now goes to t.New instead (deleted if X is t.New), and t itself is not
// recorded.
func (s *Service) recordChained(ctx context.Context, t store.Translation, log *slog.Logger) {
	recs, err := s.cfg.Store.ListTranslations(ctx)
	if err != nil {
		log.Warn("drain: cannot read the recorded address translations; recording the new one alone", "err", err)
		s.recordTranslation(ctx, t, log)
		return
	}
	chained := false
	for _, r := range recs {
		if r.Container != t.Container || r.New != t.Old {
			continue
		}
		chained = true
		if r.Old == t.New {
			if err := s.cfg.Store.DeleteTranslation(context.WithoutCancel(ctx), r.Container, r.Old); err != nil {
				log.Warn("drain: cannot delete the record of a translation that ended (the leader's sweep deletes it later)", "container", r.Container, "old", r.Old, "err", err)
			}
			continue
		}
		r.New, r.At = t.New, t.At
		s.recordTranslation(ctx, r, log)
	}
	if !chained {
		s.recordTranslation(ctx, t, log)
	}
}

// keptTranslations asks node's worker which translations container's namespace has
// (old -> new pairs, sorted); false if the node did not answer.
func (s *Service) keptTranslations(ctx context.Context, nodeName, container string, log *slog.Logger) ([][2]string, bool) {
	rep, err := nodecall.Ask[node.XlatesReply](ctx, s.cfg.Bus, node.XlatesSubject(nodeName), node.XlatesRequest{}, 3*time.Second)
	if err != nil {
		log.Debug("drain: cannot ask the held container's node for its translations; using the recorded ones", "node", nodeName, "err", err)
		return nil, false
	}
	var out [][2]string
	for _, k := range rep.Translations {
		if k.Container == container {
			out = append(out, [2]string{k.Old, k.New})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out, true
}

// translationsOf returns the recorded translations of container (old -> new pairs).
func (s *Service) translationsOf(ctx context.Context, container string, log *slog.Logger) [][2]string {
	ts, err := s.cfg.Store.ListTranslations(ctx)
	if err != nil {
		log.Warn("drain: cannot read the recorded address translations: the held task's connections to tasks moved earlier break", "err", err)
		return nil
	}
	var out [][2]string
	for _, t := range ts {
		if t.Container == container {
			out = append(out, [2]string{t.Old, t.New})
		}
	}
	return out
}

// forgetTranslations deletes the records of container's translations (pairs), once
// it moved: they stayed behind with its namespace.
func (s *Service) forgetTranslations(ctx context.Context, container string, pairs [][2]string, log *slog.Logger) {
	for _, p := range pairs {
		if err := s.cfg.Store.DeleteTranslation(ctx, container, p[0]); err != nil {
			log.Warn("drain: cannot delete the record of a moved container's translation (the leader's sweep deletes it later)", "container", container, "old", p[0], "err", err)
		}
	}
}

// staleTranslations returns the records of node's translations that its worker no
// longer keeps (kept: what it answered to xlates). Pure.
func staleTranslations(recs []store.Translation, kept []node.XlateKept) []store.Translation {
	has := map[[2]string]bool{}
	for _, k := range kept {
		has[[2]string{k.Container, k.Old}] = true
	}
	var out []store.Translation
	for _, r := range recs {
		if !has[[2]string{r.Container, r.Old}] {
			out = append(out, r)
		}
	}
	return out
}

// runXlates sweeps the translation records every Config.XlateResync until ctx ends
// (leader only).
func (s *Service) runXlates(ctx context.Context) {
	log := s.log.With("component", "xlate")
	t := time.NewTicker(s.cfg.XlateResync)
	defer t.Stop()
	for {
		s.sweepXlates(ctx, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepXlates deletes the records of the translations their node's worker no longer
// keeps.
func (s *Service) sweepXlates(ctx context.Context, log *slog.Logger) {
	recs, err := s.cfg.Store.ListTranslations(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("cannot read the recorded address translations; retrying", "err", err, "in", s.cfg.XlateResync)
		}
		return
	}
	byNode := map[string][]store.Translation{}
	for _, r := range recs {
		byNode[r.Node] = append(byNode[r.Node], r)
	}
	nodes := make([]string, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		rep, err := nodecall.Ask[node.XlatesReply](ctx, s.cfg.Bus, node.XlatesSubject(n), node.XlatesRequest{}, 5*time.Second)
		if err != nil {
			log.Debug("cannot ask a node which address translations its worker keeps; its records stay until it answers", "node", n, "err", err)
			continue
		}
		for _, r := range staleTranslations(byNode[n], rep.Translations) {
			if err := s.cfg.Store.DeleteTranslation(ctx, r.Container, r.Old); err != nil {
				log.Warn("cannot delete the record of an ended address translation; retrying", "node", n, "container", r.Container, "old", r.Old, "err", err)
				continue
			}
			log.Info("address translation ended on its node (no connection uses the old address, or the container ended): record deleted",
				"node", n, "container", r.Container, "old", r.Old, "new", r.New, "stack", r.Stack, "kept_s", time.Since(r.At).Round(time.Second).Seconds())
		}
	}
}
