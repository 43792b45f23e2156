package main

import (
	"context"
	"flag"
	"fmt"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func errFlagHelp() error { return flag.ErrHelp }

func runVersion(ctx context.Context, c *cli, args []string) error {
	fmt.Fprintf(c.stdout, "swarmckpt %s\n", version)
	return nil
}
