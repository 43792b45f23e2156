package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

const nodeUsage = `
Usage: swarmckpt node drain NODE [--mode exact|swarm]
       swarmckpt node activate NODE

drain is the orchestrated drain (docs/drain.md): for every stack labelled
swarmckpt.on-drain: migrate with containers on NODE, only its containers on NODE
stop; its containers elsewhere keep running. In its swarmckpt.mode (else swarm):
- exact: they are migrated off NODE first, one stack after the other (the migrate
  path with --from NODE); a failed migration leaves NODE as it was: the error names
  the stack and why (that migration rolls back as migrate's does);
- swarm: the drain hold, as 'docker node update --availability drain NODE' takes:
  their tasks on NODE are armed, NODE is set to drain, each stop is held and
  checkpointed, and the command waits (bounded by the hold budget plus 60 s) until
  each replacement runs on another node restored from its checkpoint, printing each
  task's downtime and copy mode (the stack's swarmckpt.migration label: direct or
  post-copy dump each held stop straight into its replacement's node where both
  nodes announce drain-direct, else streamed). A task released fresh (checkpoint failed, hold timed out) is
  named in the error (exit 1; NODE is drained, swarm restarted that task fresh).
Then NODE is set to drain through the swarm manager. Stacks without the label are
left to swarm: it restarts their tasks fresh on other nodes, as without swarmckpt.
Progress is printed like migrate's. --mode overrides the stacks' swarmckpt.mode.

activate sets NODE's availability back to active (swarm may place tasks there again;
it does not move running tasks back).

A plain 'docker node update --availability drain NODE' also moves the labelled
stacks' tasks with their memory: the runtime wrapper holds each one's stop while it
is checkpointed (see 'swarmckpt events' for what happens).

Ctrl-C does not interrupt it: it says so and waits for the end (a migration past its
snapshot runs to its end or rolls back).

Exit codes: 0 done, 1 failed (the node was not drained, or a swarm-mode task was
not moved with its memory: the error says which), 2 bad usage, 3 no such node,
4 a stack is busy (another snapshot, restore or migration of it runs), 5 a stack's
migration snapshot was aborted (the node was not drained).

Examples:
  swarmckpt node drain lab-2
  swarmckpt node drain lab-2 --mode exact --output json
  swarmckpt node activate lab-2
`

var nodeSubcommands = []string{"drain", "activate"}

func runNode(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		if len(args) == 0 {
			return usagef("node needs a subcommand: drain or activate (swarmckpt node --help)")
		}
		fmt.Fprintln(c.stdout, nodeUsage[1:])
		return errHelp
	}
	sub, args := args[0], args[1:]
	if !slices.Contains(nodeSubcommands, sub) {
		return usagef("unknown node subcommand %q: use drain or activate", sub)
	}
	fs, f := newCtlFlags("node "+sub, 30*time.Minute)
	mode := ""
	if sub == "drain" {
		fs.StringVar(&mode, "mode", "", "restore mode of the migrations: exact or swarm (default: each stack's swarmckpt.mode, else swarm)")
	}
	pos, err := f.parse(c, fs, nodeUsage, args, 1, 1, "give exactly one node name (swarmckpt node "+sub+" NODE)")
	if err != nil {
		return err
	}
	if mode != "" && mode != api.ModeExact && mode != api.ModeSwarm {
		return usagef("--mode must be exact or swarm, not %q", mode)
	}
	if err := badName(api.ValidNode(pos[0])); err != nil {
		return err
	}
	avail := api.AvailabilityDrain
	if sub == "activate" {
		avail = api.AvailabilityActive
	}
	id := coordinator.NewID("node-"+pos[0], time.Now())
	cl, disconnect, err := f.dial(ctx, c, id)
	if err != nil {
		return err
	}
	defer disconnect()
	// Ctrl-C does not interrupt a drain (its migrations run to their end or roll back,
	// as a migration past its snapshot does): it says so and waits.
	rctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	var res *api.NodeResult
	done := make(chan error, 1)
	go func() {
		var err error
		res, err = api.Call[api.NodeResult](rctx, cl, api.OpNode, api.NodeRequest{ID: id, Node: pos[0], Availability: avail, Mode: mode})
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		fmt.Fprintf(c.stderr, "node %s cannot be interrupted: waiting for its migrations to finish or roll back ('swarmckpt events' shows what happens)\n", sub)
		err = <-done
	}
	if f.output == "json" && res != nil {
		_ = printJSON(c.stdout, res)
	} else if res != nil && err == nil {
		for _, m := range res.Migrated {
			if m.Snapshot == "" { // swarm mode: the drain hold moved the tasks on the node alone
				for _, tk := range m.Tasks {
					fmt.Fprintf(c.stdout, "moved %s slot %d off %s to %s: restored from %s, down %dms%s\n", tk.Service, tk.Slot, res.Node, tk.Target, tk.Set, tk.DowntimeMS, copyNote(tk.Copy))
				}
				fmt.Fprintf(c.stdout, "migrated %s off %s: %d tasks by the drain hold in %dms (its tasks elsewhere did not stop)\n", m.Stack, res.Node, m.Moved, m.MS)
				continue
			}
			fmt.Fprintf(c.stdout, "migrated %s off %s: %d containers in %dms (snapshot %s)\n", m.Stack, res.Node, m.Moved, m.MS, m.Snapshot)
		}
		for _, st := range res.LeftToSwarm {
			fmt.Fprintf(c.stdout, "left to swarm (not labelled swarmckpt.on-drain: migrate): %s\n", st)
		}
		fmt.Fprintf(c.stdout, "node %s is %s\n", res.Node, res.Availability)
	}
	return apiExit(err)
}
