package main

import (
	"context"
	"flag"
	"fmt"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func runVersion(ctx context.Context, c *cli, args []string) error {
	if err := c.parseNoArgs(flag.NewFlagSet("version", flag.ContinueOnError), "Usage: swarmckpt version", "version", args); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "swarmckpt %s\n", version)
	return nil
}
