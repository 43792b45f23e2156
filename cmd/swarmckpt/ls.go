package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

const lsUsage = `
Usage: swarmckpt ls [<stack>] [--output json]

Lists snapshots (of one stack, or all), oldest first, with their state. BY says who
took each: user, schedule (the stack's swarmckpt.schedule label; swarmckpt policy) or
auto (the coordinator, e.g. before a restore). Only the snapshots' headers are read:
--output json has n_containers and image_bytes but no containers (swarmckpt inspect
shows them).

Examples:
  swarmckpt ls
  swarmckpt ls bank --output json
`

func runLs(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("ls", 10*time.Second)
	stackName, err := f.parseStack(c, fs, lsUsage, args, "give at most one stack name")
	if err != nil {
		return err
	}
	res, err := call[api.ListResult](ctx, c, f, api.OpList, api.ListRequest{Stack: stackName})
	if err != nil {
		return err
	}
	if f.output == "json" {
		return printJSON(c.stdout, res.Snapshots)
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTACK\tSTATE\tALGORITHM\tBY\tCONTAINERS\tIMAGES\tCREATED\tCUT")
	for _, m := range res.Snapshots {
		cutS := "-"
		if m.Verdict != nil {
			switch {
			case m.Verdict.Error != "":
				cutS = "unchecked"
			case m.Verdict.Consistent:
				cutS = "consistent"
			default:
				cutS = "INCONSISTENT"
			}
		}
		// A coordinator older than the per-container records sends whole manifests.
		n, bytes := m.NContainers, m.ImageBytes
		if len(m.Containers) > 0 {
			n, bytes = len(m.Containers), m.Bytes()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", m.ID, m.Stack, m.State, m.Algorithm, takenBy(m), n,
			human(bytes), m.CreatedAt.Local().Format("2006-01-02 15:04:05"), cutS)
	}
	return tw.Flush()
}
