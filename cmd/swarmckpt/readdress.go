package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/swarmckpt/swarmckpt/worker/rewrite"
)

const readdressUsage = `
Usage: swarmckpt readdress SET_DIR MAP_FILE

Rewrites the socket addresses of MAP_FILE (a JSON address map: old IP -> new IP) in the
CRIU images of the restore directory SET_DIR and updates its manifest.
swarmckpt-runtime runs it before a swarm-native restore (docs/restore.md).
`

// runReaddress is `swarmckpt readdress SET MAPFILE`: the step the runtime
// wrapper (swarmckpt-runtime) runs on a claimed restore directory before runc restore
// when an address map was placed there (docs/restore.md, "Addresses and TCP
// connections"). It rewrites the socket addresses of the map in the set's CRIU images
// and updates the manifest (rewrite.Set), logging every change to stderr.
func runReaddress(ctx context.Context, c *cli, args []string) error {
	args, err := c.parseArgs(flag.NewFlagSet("readdress", flag.ContinueOnError), readdressUsage, args)
	if err != nil {
		return err
	}
	if len(args) != 2 {
		return usagef("usage: swarmckpt readdress SET_DIR MAP_FILE")
	}
	f, err := os.Open(args[1])
	if err != nil {
		return fmt.Errorf("address map: %w", err)
	}
	defer f.Close()
	m, err := rewrite.ParseMap(f)
	if err != nil {
		return fmt.Errorf("address map %s: %w", args[1], err)
	}
	r, err := rewrite.Set(args[0], m, c.log.With("component", "rewrite"))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "rewrote %d address(es) in %d file(s) of %s (%d socket(s) examined)\n", len(r.Changes), len(r.Files), args[0], r.Sockets)
	return nil
}
