package main

import (
	"context"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

const rmUsage = `
Usage: swarmckpt rm <snapshot>...

Deletes snapshots from the store (a running snapshot must be aborted first).

Examples:
  swarmckpt rm bank-20261122-021500-1a2b3c
`

func runRm(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("rm", 10*time.Second)
	pos, err := f.parse(c, fs, rmUsage, args, 1, -1, "give at least one snapshot id (see 'swarmckpt ls')")
	if err != nil {
		return err
	}
	for _, id := range pos { // every id before the first is removed
		if err := badName(api.ValidID(id)); err != nil {
			return err
		}
	}
	cl, disconnect, err := f.dial(ctx, c, "")
	if err != nil {
		return err
	}
	defer disconnect()
	for _, id := range pos {
		rctx, cancel := context.WithTimeout(ctx, f.timeout)
		res, err := api.Call[api.RemoveResult](rctx, cl, api.OpRemove, api.RemoveRequest{ID: id})
		cancel()
		if err != nil {
			return apiExit(err)
		}
		fmt.Fprintf(c.stdout, "removed %s (%d image set(s) deleted on the nodes, every copy of each)\n", id, res.ImagesRemoved)
		for _, w := range res.Warnings {
			fmt.Fprintf(c.stdout, "  warning: %s\n", w)
		}
	}
	return nil
}
