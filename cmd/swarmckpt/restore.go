package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

const restoreUsage = `
Usage: swarmckpt restore <snapshot> [--mode exact|swarm] [--node SERVICE.SLOT=NODE ...] [--on-original]
                         [--recovery-line | --force] [--discard-running]

Restores every container of a committed snapshot, all or nothing. Every node involved
is asked first whether the restore can run (live worker, image sets complete, images
present, names and addresses free, every image file's sha256 re-checked on its node):
if not, it is refused with nothing changed, naming container, node and fix. One
restore, migration, snapshot or rm of a stack at a time (else refused, exit 4).
In either mode what still runs of the stack is checkpointed first (a blocking snapshot
whose containers stay frozen after their dump; printed as "before"); if that
cannot be done the restore is refused with nothing changed. Then the stack's services
are scaled to 0 and their running tasks, those frozen ones first, killed (no
duplicates; the snapshot replaces them). Image files are streamed to the target
nodes and their sha256 verified before restore. Connections between the restored containers are kept in both modes. If an
exact restore fails after the stop, the stack is put back from that checkpoint: every
container runs again on its node with its state ('swarmckpt restore BEFORE
--on-original' does the same by hand); a swarm-mode restore puts it back as swarm
tasks (the services at the replicas they had, with their state), failing that on the
original nodes; only if that fails too are the services scaled back to their
replicas (started fresh from their images). CRIU's log stays on the node as
<set>.failed-restore.log. A restore is journaled in etcd step by step: if the
coordinator dies mid-way, the next one (or a standby) puts the stack back the same way.
--discard-running: skip the checkpoint of what runs (its state is lost; a failed
  restore starts the services fresh).
--on-original: every container not mapped with --node goes back to its own original
  node.

--mode exact (default): every container comes back as a standalone container on its
  original IP address and aliases: by default each on a node other than the one it was
  dumped on (round robin over nodes with a live worker); --node pins one. Swarm no
  longer supervises them, but swarmckpt still treats them as the stack: snapshot,
  migrate and restore find them on every node, and a later restore (either mode)
  removes them first.
--mode swarm: every container comes back as its service's own swarm task (docker
  service ps shows it Running; swarm restarts and reschedules it), on the node and new
  IP address swarm picks; the images are rewritten for the new addresses. --node is
  refused (swarm places tasks). See docs/restore.md.

A snapshot whose algorithm promises no consistent cut (uncoordinated) has its cut
checked first, over its images (each node re-hashes its sets and reads the TCP
sockets of the CRIU images): an inconsistent cut is refused with nothing changed,
naming the violating connections. Then either:
--recovery-line: restore the newest consistent combination of the stack's committed
  snapshots of the same algorithm up to <snapshot> instead: starting from <snapshot>
  for every container, the receiver of an orphan and the sender of lost bytes go back
  to their previous snapshot until the check finds nothing (refused if a container
  would go back past its oldest one). Prints, per container, the snapshot it came
  from and how many it rolled back. Exact mode only when a container goes back.
--force: restore the recorded cut anyway, unchecked (connections may hang, reset or
  lose bytes).
Snapshots of the other algorithms are consistent cuts and are restored unchecked.

Ctrl-C does not stop a restore half-way (the stack would be neither as it was nor
restored): it says so and waits for the restore to finish or roll back.

Examples:
  swarmckpt restore bank-20261122-021500-1a2b3c
  swarmckpt restore bank-20261122-021500-1a2b3c --mode swarm
  swarmckpt restore bank-20261122-021500-1a2b3c --node bank_holder.1=lab-3 --node bank_holder.2=lab-1
  swarmckpt restore bank-20261122-021500-1a2b3c --recovery-line
`

type multiFlag map[string]string

func (m multiFlag) String() string { return "" }
func (m multiFlag) Set(v string) error {
	k, n, ok := strings.Cut(v, "=")
	if !ok || k == "" || n == "" {
		return fmt.Errorf("want SERVICE.SLOT=NODE, got %q", v)
	}
	m[k] = n
	return nil
}

func runRestore(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("restore", 10*time.Minute)
	targets := multiFlag{}
	fs.Var(targets, "node", "SERVICE.SLOT=NODE: restore that container on NODE (repeatable)")
	onOrig := fs.Bool("on-original", false, "restore every container not mapped with --node on its own original node")
	mode := fs.String("mode", api.ModeExact, "exact (standalone containers on their original IPs) or swarm (swarm's own tasks on new IPs)")
	line := fs.Bool("recovery-line", false, "uncoordinated snapshot: restore the newest consistent combination of the stack's snapshots up to this one")
	force := fs.Bool("force", false, "uncoordinated snapshot: restore its recorded cut without checking it")
	discard := fs.Bool("discard-running", false, "do not checkpoint what runs of the stack first (its state is lost; a failed restore starts it fresh)")
	pos, err := f.parse(c, fs, restoreUsage, args, 1, 1, "give exactly one snapshot id (see 'swarmckpt ls')")
	if err != nil {
		return err
	}
	if err := badName(api.ValidID(pos[0]), api.ValidTargets(targets)); err != nil {
		return err
	}
	if *line && *force {
		return usagef("give --recovery-line (restore a consistent combination) or --force (restore the recorded cut unchecked), not both")
	}
	if *mode != api.ModeExact && *mode != api.ModeSwarm {
		return usagef("--mode must be exact or swarm, not %q", *mode)
	}
	if *mode == api.ModeSwarm && len(targets) > 0 {
		return usagef("--node cannot be used with --mode swarm: swarm places the tasks (use --mode exact to choose nodes)")
	}
	cl, disconnect, err := f.dial(ctx, c, pos[0])
	if err != nil {
		return err
	}
	defer disconnect()
	// A restore cannot be interrupted half-way (it would leave the stack neither as it
	// was nor restored): Ctrl-C says so and waits for its end.
	rctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	gone := coordinatorGone(rctx, cl, 6*time.Second, true)
	var res *api.RestoreResult
	done := make(chan error, 1)
	go func() {
		var err error
		res, err = api.Call[api.RestoreResult](rctx, cl, api.OpRestore, api.RestoreRequest{ID: pos[0], Targets: targets, OnOriginal: *onOrig, Mode: *mode,
			RecoveryLine: *line, Force: *force, DiscardRunning: *discard})
		done <- err
	}()
	interrupted := ctx.Done()
	for waiting := true; waiting; {
		select {
		case err = <-done:
			waiting = false
		case why := <-gone:
			return fmt.Errorf("%s during the restore of %s: it did not finish here; the coordinator that runs next (restarted, or started again) finds it journaled and puts the stack back as it ran from the checkpoint taken first, or finishes it if it had completed; 'swarmckpt inspect %s' then shows the outcome", why, pos[0], pos[0])
		case <-interrupted:
			interrupted = nil
			fmt.Fprintf(c.stderr, "interrupted: a restore cannot be stopped half-way; waiting for the restore of %s to finish or roll back (at most %v)\n", pos[0], f.timeout)
		}
	}
	if err != nil {
		return apiExit(err)
	}
	if f.output == "json" {
		return printJSON(c.stdout, res)
	}
	keys := make([]string, 0, len(res.Targets))
	for k := range res.Targets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		from := ""
		if s, ok := res.From[k]; ok {
			from = fmt.Sprintf(", from %s, %d checkpoint(s) back", s, res.RolledBack[k])
		}
		fmt.Fprintf(c.stdout, "%s -> %s (container %s%s)\n", k, res.Targets[k], res.Containers[k], from)
	}
	if res.CutCheck != "" {
		fmt.Fprintf(c.stdout, "cut: %s\n", res.CutCheck)
	}
	if res.Mode == api.ModeSwarm {
		fmt.Fprintf(c.stdout, "as swarm tasks; address map: %s\n", mapString(res.Addresses))
		for _, cl := range res.Closed {
			fmt.Fprintf(c.stdout, "connection closed at restore: %s\n", cl)
		}
	}
	fmt.Fprintf(c.stdout, "restored %s in %dms\n", res.ID, res.TotalMS)
	if res.Before != "" {
		fmt.Fprintf(c.stdout, "before: what ran is kept as snapshot %s (undo: swarmckpt restore %s --on-original; or swarmckpt rm %s)\n", res.Before, res.Before, res.Before)
	}
	return nil
}
