package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

const migrateUsage = `
Usage: swarmckpt migrate <stack> --to NODE | --from NODE [--algorithm NAME] [--mode exact|swarm]
                         [--copy streamed|direct|post-copy|pre-copy] [--whole-stack]

Moves the containers of a stack that must move, cold: a snapshot of only those
containers that stops them after their dump, then a restore on the target (--to:
every container not on NODE goes to NODE; --from: every container of NODE goes
elsewhere, spread: containers of one service are not put on one node while another
is free, and a service's node.hostname constraints are honoured). The stack's other
containers run on untouched, never frozen, and their connections to the moved ones
survive (exact mode keeps the addresses: they see a pause). In exact mode a moved
swarm task becomes a standalone container and its service is scaled down by the
slots moved. In swarm mode (--mode swarm, swarm tasks) the moving tasks are armed
for the drain hold and a placement constraint on their services (node.hostname!=NODE
for --from, node.hostname==NODE for --to) makes swarm replace exactly them: each
stop is held, the task checkpointed into its own set, which is placed for swarm's
replacement on the node swarm chose; the staying tasks' connections follow the
moved task's new address (translated in their namespaces); the constraint is
removed once every moved task runs restored; each moved task is printed with its
node, set, downtime and copy mode: streamed (the set sent after the checkpoint) or
direct (the held stop dumped straight into the replacement's node, no copy on the
source; needs every node that may hold a stop or take a replacement to announce the
worker feature drain-direct, refused otherwise naming the node; a label's direct
copies streamed then, with a warning). post-copy is refused there: swarm starts the
replacement only once the held container has ended, and a post-copy restore fetches
its pages from it (a label's post-copy copies direct). As in a drain, a task
whose checkpoint fails or does not finish within its stop_grace_period is stopped
as swarm asked and restarted fresh: named in the error (exit 1); --whole-stack keeps
the rollback. --whole-stack moves the whole stack instead: every container is
dumped, stopped and restored, those that stay on their node too (the behaviour
before). A migration that would move nothing (--from a node where none of the
stack's containers runs, --to the node where all run) is refused at once, exit 2,
with --whole-stack too. A partial migration's snapshot holds only the moved containers: 'swarmckpt
restore' refuses it.

In exact mode the targets are chosen before the snapshot and each moving
container's images stream to its target while they are dumped (the dumping node keeps
its copy); the restore then finds them in place. The containers stay frozen and
network-locked from their dump until the restore stops the stack (after the snapshot
committed and the nodes were checked) and are ended only then: a snapshot that aborts,
or a restore refused before that stop, leaves every one running as before. --to a
node without a live worker is refused before anything is touched. A migration's
snapshot (exact mode, or --whole-stack) is refused before anything is locked when a
node's disk would not hold its dumps (no_space, as for snapshot; a dump with --copy
direct, pre-copy or post-copy is not counted). If the restore
fails, the moved containers (all, with --whole-stack) are restored where they were,
with their state (with --mode swarm as swarm tasks, the services at the replicas they
had, on the nodes they ran on; failing that as standalone containers on their
original nodes). --copy says how the images reach the target
(default: the stack's swarmckpt.migration label, cold = streamed, else streamed):
streamed as above (the dumping node keeps a copy, which the rollback uses); direct
sends the memory pages from CRIU straight to the target's page server, writing no
copy on the dumping node (less downtime; the target hashes the pages after the
restore, off the downtime, and the coordinator then records their digests: until then
'inspect' says "page digests pending", and a restore or 'inspect --verify' of the
snapshot waits for them): the snapshot's only copy is then the target's, which a
failed migration keeps and its rollback sends back (exact mode, or swarm mode without
--whole-stack, whose held stops' pages the target verifies on arrival: see above;
refused, naming the node, when a node involved runs an older worker that does not announce
dump-into-held: upgrade it). streamed stays the default until direct has streamed's
record on the lab's failure paths (docs/cli.md "Which copy mode"). post-copy
(exact mode only) needs every node that dumps a moving container, and every target, to
announce the worker features post-copy and post-copy-migrate (refused before anything
is dumped otherwise, naming the node), and moves standalone containers only (a stack
restored or migrated in exact mode; a swarm task is refused by name): the container
runs on its target before its memory arrived, fetching its pages from the frozen
source (taken off its networks), which is ended once the last page arrived (printed
with the time). Until then the container depends on the source: a source that fails
first is data loss for it (an error naming it, non-zero exit, recorded in the
snapshot, a pages-lost event in 'swarmckpt events'; if the restored container itself
ended on its target, the source is put back instead). A failed restore puts the source
back: its networks and addresses given back, released, it runs on where it was with
its state. If the coordinator dies meanwhile, the next one puts the source back (the
restore had not completed) or waits for the last page and then ends the source. A stack label asking for post-copy migrates direct where post-copy cannot
apply and the nodes allow that, else streamed, with a warning. pre-copy (exact mode)
pre-dumps each moving container on its node while it runs, round after round as the
node's worker policy says (at most 5; it stops once a round wrote 16 MiB or less, or the
dirty set stops shrinking), and sends the pre-dumps to the target, before anything is
locked; the snapshot's dump then writes only the pages dirtied since the last round and
streams the rest of the set to the target (every file checksummed), the dumping node
keeping its copy (rollback as streamed); the target links the pre-dump chain when it
restores. It needs every node
that may dump a moving container (--from NODE, or every live node but --to NODE) to
announce the worker feature pre-copy (its kernel tracks soft-dirty pages): otherwise it
is refused before anything is touched, naming the node (exit 2; a label asking for it
migrates streamed, with a warning). A failed pre-dump fails the migration before
anything is locked (the containers run on). Not run on this project's machines (kernel
6.18 without soft-dirty): docs/dataplane.md "Pre-copy".
--mode as for restore (default exact); with --mode
swarm and --whole-stack (or a stack that runs standalone containers) the move is a placement constraint added to the stack's services
(node.hostname==NODE for --to, node.hostname!=NODE for --from) for the restore, and
removed from them once the restored tasks run (swarm does not move a task whose node
still satisfies the remaining constraints); with --to the images also stream to NODE
while they are dumped, and only NODE gets the sets. A stack restored or migrated in exact mode
(standalone containers) migrates again like a deployed one. An algorithm that
promises no consistent cut (uncoordinated) is refused: the containers stop after
their dump, so the cut must be restorable. A container with a local named volume moves
only with --carry-volumes (the volume's content goes with it; exact mode). Ctrl-C aborts the migration's snapshot and
returns once its containers are released (or names those still held, where and until
when); past its snapshot a migration cannot be interrupted, and Ctrl-C waits for it
to finish or roll back.

Examples:
  swarmckpt migrate echo --to lab-3
  swarmckpt migrate echo --to lab-3 --copy direct
  swarmckpt migrate echo --from lab-2 --mode swarm
  swarmckpt migrate echo --from lab-2 --mode swarm --copy direct
  swarmckpt migrate bank --from lab-2
  swarmckpt migrate bank --from lab-2 --whole-stack
`

func runMigrate(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("migrate", 10*time.Minute)
	to := fs.String("to", "", "move every container of the stack to this node")
	from := fs.String("from", "", "move every container off this node")
	algo := fs.String("algorithm", coordinator.DefaultAlgorithm, "checkpoint algorithm ("+algoNames()+")")
	carry := fs.Bool("carry-volumes", false, "move the containers' local named volumes with them (their content goes into the snapshot; exact mode)")
	mode := fs.String("mode", api.ModeExact, "restore mode: exact or swarm (see 'swarmckpt restore --help')")
	whole := fs.Bool("whole-stack", false, "move the whole stack (every container dumped, stopped and restored), not only the containers that must move")
	copyMode := fs.String("copy", "", "how the images reach the target: streamed, direct, post-copy or pre-copy (default: the stack's swarmckpt.migration label, else streamed)")
	pos, err := f.parse(c, fs, migrateUsage, args, 1, 1, "give exactly one stack name (swarmckpt migrate <stack> --to NODE)")
	if err != nil {
		return err
	}
	if *mode != api.ModeExact && *mode != api.ModeSwarm {
		return usagef("--mode must be exact or swarm, not %q", *mode)
	}
	switch *copyMode {
	case "", api.CopyStreamed, api.CopyDirect, api.CopyPostCopy, api.CopyPreCopy: // post-copy, pre-copy: the coordinator says where not
	default:
		return usagef("--copy must be streamed, direct, post-copy or pre-copy (the last two only where the nodes announce them), not %q", *copyMode)
	}
	if (*to == "") == (*from == "") {
		return usagef("give exactly one of --to NODE or --from NODE")
	}
	if err := badName(api.ValidStack(pos[0]), validNodeFlag("--to", *to), validNodeFlag("--from", *from)); err != nil {
		return err
	}
	id := coordinator.NewID(pos[0], time.Now())
	cl, disconnect, err := f.dial(ctx, c, id)
	if err != nil {
		return err
	}
	defer disconnect()
	rctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	done := make(chan error, 1)
	var res *api.MigrateResult
	gone := coordinatorGone(rctx, cl, 6*time.Second, true) // still watched after a Ctrl-C
	go func() {
		var err error
		res, err = api.Call[api.MigrateResult](rctx, cl, api.OpMigrate, api.MigrateRequest{ID: id, Stack: pos[0], To: *to, From: *from, Algorithm: *algo, Mode: *mode, CarryVolumes: *carry, Copy: *copyMode, WholeStack: *whole})
		done <- err
	}()
	select {
	case err = <-done:
	case why := <-gone:
		return fmt.Errorf("%s during migration %s: the coordinator that runs next (restarted, or started again) finds it journaled and releases the stack, puts it back where it ran, or finishes the migration if it had completed; check with 'swarmckpt inspect %s'", why, id, id)
	case <-ctx.Done():
		// Ctrl-C returns only once the migration ended: its snapshot is aborted (the
		// coordinator answers once the nodes released its containers, or says which are
		// still held, where and until when); past its snapshot it runs to its end or
		// rolls back, and that is waited for.
		fmt.Fprintf(c.stderr, "interrupted: aborting migration %s and releasing its containers...\n", id)
		actx, acancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, aerr := api.Call[api.AbortResult](actx, cl, api.OpAbort, api.AbortRequest{ID: id, Reason: "interrupted by the user (Ctrl-C)"})
		acancel()
		if errors.Is(aerr, api.ErrNotFound) {
			fmt.Fprintf(c.stderr, "migration %s is past its snapshot: it cannot be interrupted now; waiting for it to finish or roll back\n", id)
		}
		select {
		case err = <-done:
		case why := <-gone:
			return fmt.Errorf("interrupted; then %s during migration %s: check with 'swarmckpt inspect %s'", why, id, id)
		}
		if aerr != nil && !errors.Is(aerr, api.ErrNotFound) {
			return fmt.Errorf("interrupted; the abort request failed (%v), and migration %s ended: %v", aerr, id, err)
		}
		if err != nil {
			return fmt.Errorf("interrupted: %v", err)
		}
	}
	if f.output == "json" && res != nil {
		_ = printJSON(c.stdout, res)
	} else if res != nil && len(res.Moved) > 0 { // swarm mode: the drain hold moved the tasks
		for _, tk := range res.Moved {
			if tk.Fresh {
				fmt.Fprintf(c.stdout, "NOT moved with its memory: %s slot %d (swarm restarted it fresh): %s\n", tk.Service, tk.Slot, tk.Reason)
				continue
			}
			fmt.Fprintf(c.stdout, "moved %s slot %d to %s: restored from %s, down %dms%s\n", tk.Service, tk.Slot, tk.Target, tk.Set, tk.DowntimeMS, copyNote(tk.Copy))
		}
		fmt.Fprintf(c.stdout, "migrated %d tasks by the drain hold (copy: %s); the stack's other tasks did not stop\n", len(res.Moved), res.Copy)
	} else if res != nil && res.Snapshot != nil {
		printSummary(c.stdout, res.Snapshot)
		if res.Restore != nil {
			if res.Restore.Mode == api.ModeSwarm {
				fmt.Fprintf(c.stdout, "restored as swarm tasks on %s; address map: %s\n", mapString(res.Restore.Targets), mapString(res.Restore.Addresses))
			}
			fmt.Fprintf(c.stdout, "restored in %dms (copy: %s)\n", res.Restore.TotalMS, res.Copy)
		}
		if len(res.Steps) > 0 {
			fmt.Fprintf(c.stdout, "steps: %s\n", stepsString(res.Steps))
		}
	}
	return apiExit(err)
}

// validNodeFlag checks the node name given to flag, if any.
func validNodeFlag(flag, node string) error {
	if node == "" {
		return nil
	}
	if err := api.ValidNode(node); err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	return nil
}

// stepsString lists a migration's step times: "plan 12ms, snapshot 2300ms (dump
// 1100ms), ..." (the dump is part of the snapshot step).
func stepsString(steps []api.StepTime) string {
	var b strings.Builder
	for i, st := range steps {
		switch {
		case st.Step == "dump":
			fmt.Fprintf(&b, " (dump %dms)", st.MS)
			continue
		case i > 0:
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %dms", st.Step, st.MS)
	}
	return b.String()
}

// copyNote is how a task moved by the drain hold was copied, for its line ("" when
// not said).
func copyNote(copyMode string) string {
	if copyMode == "" {
		return ""
	}
	return " (copy " + copyMode + ")"
}
