package main

import (
	"context"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// heldAfter asks the (restarted) coordinator which containers of snapshot id are still
// held, and says so: "every container was released", or each one still held, where and
// until when, or why that is not known.
func heldAfter(ctx context.Context, cl api.Client, id string) string {
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	res, err := api.Call[api.HeldResult](hctx, cl, api.OpHeld, api.HeldRequest{ID: id})
	switch {
	case err != nil:
		return "whether its containers are released is not known (" + err.Error() + "): the workers release them at their deadline at the latest"
	case len(res.Held) == 0:
		return "every container was released"
	}
	return "still held:\n  - " + strings.Join(res.Held, "\n  - ")
}
