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
