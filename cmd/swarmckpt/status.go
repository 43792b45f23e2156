package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

const statusUsage = `
Usage: swarmckpt status [--output json]

Shows the control plane as the leading coordinator sees it:
  COORDINATORS  every coordinator on the etcd: its role (leader, or standby in the
                order they would take over), host, pid, and since when it runs and
                (the leader) leads
  NODES         each node's agent: live (its heartbeats arrive), member (alive in the
                memberlist membership, with --gossip), worker address, CRIU version
                and features (from the membership metadata)
  OPERATIONS    the held stack locks: the snapshots, restores, migrations and removals
                running, and the coordinator that runs each

Only the leader answers: during a failover the command waits for the new leader (up
to --timeout) and then says to retry.

Examples:
  swarmckpt status
  swarmckpt status --output json
`

func runStatus(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("status", 15*time.Second)
	if _, err := f.parse(c, fs, statusUsage, args, 0, 0, "status takes no arguments"); err != nil {
		return err
	}
	res, err := call[api.StatusResult](ctx, c, f, api.OpStatus, api.StatusRequest{})
	if err != nil {
		return err
	}
	if f.output == "json" {
		return printJSON(c.stdout, res)
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COORDINATOR\tROLE\tHOST\tPID\tSTARTED\tLEADS SINCE")
	for _, co := range res.Coordinators {
		role, since := "standby", "-"
		if co.Leader {
			role = "leader"
			if !co.LeaderSince.IsZero() {
				since = co.LeaderSince.Local().Format("2006-01-02 15:04:05")
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", co.Name, role, co.Host, co.PID, co.Started.Local().Format("2006-01-02 15:04:05"), since)
	}
	fmt.Fprintln(tw, "")
	fmt.Fprintln(tw, "NODE\tLIVE\tMEMBER\tWORKER\tCRIU\tFEATURES")
	for _, n := range res.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Node, yesNo(n.Live), yesNo(n.Member), dash(n.WorkerAddr), dash(n.CRIUVersion), dash(strings.Join(n.Features, ",")))
	}
	fmt.Fprintln(tw, "")
	fmt.Fprintln(tw, "STACK\tOPERATION\tSNAPSHOT\tCOORDINATOR")
	for _, o := range res.Operations {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Stack, o.Kind, o.ID, o.Coordinator)
	}
	if len(res.Operations) == 0 {
		fmt.Fprintln(tw, "(none running)\t\t\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(c.stdout, "warning: %s\n", w)
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
