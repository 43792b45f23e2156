package agent

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// serveXlate serves OpXlate: the staying containers of a stack reach a moved task's
// old address at its new one (worker.Translations).
func (a *Agent) serveXlate(ctx context.Context, s *subs) {
	x := a.cfg.Worker.Translations
	unavailable := a.unavailable(x == nil, "cannot translate addresses")
	s.add(serveOp(ctx, a, node.OpXlate, unavailable, func(ctx context.Context, req *node.XlateRequest, rep *node.XlateReply) error {
		old, err1 := netip.ParseAddr(req.Old)
		new, err2 := netip.ParseAddr(req.New)
		if err1 != nil || err2 != nil {
			return node.Mark(fmt.Errorf("xlate: addresses %q -> %q: not IP addresses", req.Old, req.New), node.ErrInvalidArgument)
		}
		for _, c := range req.Containers {
			if err := x.Translate(ctx, c, old, new); err != nil {
				if rep.Failed == nil {
					rep.Failed = map[string]string{}
				}
				rep.Failed[c] = err.Error()
			}
		}
		return nil
	}))
}

// serveXlates serves OpXlates: the translations the worker keeps (it removes each
// once unused), so that the coordinator forgets its records of the removed ones.
func (a *Agent) serveXlates(ctx context.Context, s *subs) {
	x := a.cfg.Worker.Translations
	unavailable := a.unavailable(x == nil, "cannot translate addresses")
	s.add(serveOp(ctx, a, node.OpXlates, unavailable, func(ctx context.Context, _ *node.XlatesRequest, rep *node.XlatesReply) error {
		ts, err := x.Translations(ctx)
		if err != nil {
			return fmt.Errorf("xlates: list the worker's translations: %w", err)
		}
		for _, t := range ts {
			rep.Translations = append(rep.Translations, node.XlateKept{Container: t.ContainerID, Name: t.Name,
				Old: t.Old.String(), New: t.New.String(), Since: t.Since})
		}
		return nil
	}))
}
