package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/policy"
)

const policyUsage = `
Usage: swarmckpt policy [<stack>] [--output json]

Shows each stack's protection policy as the coordinator applies it, from the
swarmckpt.* labels of its services (deploy.labels in the compose file; docs/policy.md):
every setting with the services it came from, the next scheduled snapshot, the last
scheduled run's result, how many scheduled snapshots are kept, and any label error (a
stack whose labels are in error has nothing of its policy applied until they are fixed).

Examples:
  swarmckpt policy
  swarmckpt policy bank --output json
`

func runPolicy(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("policy", 10*time.Second)
	stackName, err := f.parseStack(c, fs, policyUsage, args, "give at most one stack name (swarmckpt policy [<stack>])")
	if err != nil {
		return err
	}
	cl, disconnect, err := f.dial(ctx, c, "")
	if err != nil {
		return err
	}
	defer disconnect()
	rctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	res, err := api.Call[api.PolicyResult](rctx, cl, api.OpPolicy, api.PolicyRequest{Stack: stackName})
	if err != nil {
		return apiExit(err)
	}
	if f.output == "json" {
		return printJSON(c.stdout, res)
	}
	if len(res.Stacks) == 0 {
		fmt.Fprintln(c.stdout, "no stack carries a swarmckpt.* label (docs/policy.md)")
		return nil
	}
	for i, sp := range res.Stacks {
		if i > 0 {
			fmt.Fprintln(c.stdout)
		}
		printStackPolicy(c, sp)
	}
	return nil
}

func printStackPolicy(c *cli, sp api.StackPolicy) {
	fmt.Fprintf(c.stdout, "stack %s\n", sp.Stack)
	if len(sp.LabelErrors) > 0 {
		fmt.Fprintln(c.stdout, "  LABEL ERRORS (nothing of this stack's policy is applied until they are fixed):")
		for _, e := range sp.LabelErrors {
			fmt.Fprintf(c.stdout, "    - %s\n", e)
		}
	}
	if p := sp.Policy; p != nil {
		tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  LABEL\tVALUE\tFROM")
		keys := make([]string, 0, len(p.From))
		for k := range p.From {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", k, policyValue(p, k), strings.Join(p.From[k], ", "))
		}
		_ = tw.Flush()
		if !p.Enabled {
			fmt.Fprintln(c.stdout, "  disabled (swarmckpt.enable=false): no scheduled snapshots")
		}
	}
	if sp.Running != "" {
		fmt.Fprintf(c.stdout, "  running:   %s\n", sp.Running)
	}
	if !sp.Next.IsZero() {
		fmt.Fprintf(c.stdout, "  next run:  %s (in %s)\n", sp.Next.Local().Format("2006-01-02 15:04:05"), time.Until(sp.Next).Round(time.Second))
	}
	if l := sp.Last; l != nil {
		line := fmt.Sprintf("  last run:  %s %s at %s", l.ID, l.Result, l.At.Local().Format("2006-01-02 15:04:05"))
		if l.Error != "" {
			line += ": " + l.Error
		}
		if len(l.Removed) > 0 {
			line += "; retention removed " + strings.Join(l.Removed, ", ")
		}
		fmt.Fprintln(c.stdout, line)
	}
	if sp.Skipped > 0 {
		fmt.Fprintf(c.stdout, "  skipped:   %d runs (the previous run, or a user's operation on the stack, still went on)\n", sp.Skipped)
	}
	fmt.Fprintf(c.stdout, "  kept:      %d scheduled snapshots (swarmckpt ls %s)\n", sp.Kept, sp.Stack)
	for _, f := range sp.Fences {
		fmt.Fprintf(c.stdout, "  fenced:    node %s, lost at %s, the stack restored from %s: its containers there are removed when it comes back\n",
			f.Node, f.At.Local().Format("2006-01-02 15:04:05"), f.Snapshot)
	}
}

// policyValue is the effective value of label k in p.
func policyValue(p *policy.Policy, k string) string {
	switch k {
	case policy.KeyEnable:
		return fmt.Sprint(p.Enabled)
	case policy.KeyAlgorithm:
		return p.Algorithm
	case policy.KeyTimeout:
		return p.Timeout.String()
	case policy.KeySchedule:
		return p.Schedule
	case policy.KeyRetain:
		return fmt.Sprint(p.Retain)
	case policy.KeyReplicas:
		return fmt.Sprint(p.Replicas)
	case policy.KeyMode:
		return p.Mode
	case policy.KeyMigration:
		return p.Migration
	case policy.KeyOnDrain:
		return p.OnDrain
	case policy.KeyOnNodeLoss:
		return p.OnNodeLoss
	case policy.KeyExclude: // per service: FROM lists every service carrying it
		if len(p.Excluded) > 0 {
			return "true for " + strings.Join(p.Excluded, ", ")
		}
		return "false"
	}
	return "?"
}

// takenBy is the BY column of ls: "schedule" for a scheduled snapshot, "auto" for
// another one the coordinator took by itself (before a restore), "user" otherwise.
func takenBy(m *store.Manifest) string {
	switch {
	case policy.Scheduled(m):
		return "schedule"
	case m.Purpose != "":
		return "auto"
	}
	return "user"
}
