package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

const snapshotUsage = `
Usage: swarmckpt snapshot <stack> [--algorithm NAME] [flags]

Takes a consistent snapshot of every container of a Docker Swarm stack (with
--algorithm uncoordinated the cut is not guaranteed consistent). The containers keep
running. How long each is frozen depends on the algorithm: blocking (the default)
freezes every container from its network lock until the snapshot commits;
chandy-lamport, minimal and uncoordinated freeze each only while it is dumped.
minimal does not dump again a container that neither sent nor received a byte nor
ran since its image in the stack's last minimal snapshot: it reuses that image.
Progress is shown per container; the summary gives each container's freeze time and
image size. Ctrl-C aborts the snapshot and releases every container (exit code 130).
The algorithm is --algorithm, else the stack's swarmckpt.algorithm label
(docs/policy.md), else blocking; a scheduled snapshot of the stack in progress is
waited for. --replicas N keeps every image set on N nodes: after the commit each set
is copied to N-1 other live nodes (sha256-checked on arrival); default the stack's
swarmckpt.replicas label, else 1. A snapshot that commits without all its copies
exits 1 and says which are missing and why (it stays committed and restorable).

A container's local named volumes are not in the snapshot unless --carry-volumes is
given: then their content is packed into it while the container is frozen (checksummed
like every image file; the summary shows each volume's size), and a restore on another
node recreates each volume with it before restoring the container (exact mode). Without
it, such a snapshot restores only on the container's own node.
Unless --timeout is given, the coordinator bounds the snapshot by its work (the
stack's last image sizes: docs/operations.md, "How long holds last"); with it, the
snapshot may take 5 s less than --timeout.
Before anything is locked or frozen each node checks that its disk holds the image
sets it will write (each container's memory in use plus 10%, at least 16 MiB, against
the free space of <data-root>/swarmckpt/sets); a node whose disk would not refuses the
snapshot (no_space, exit 1), naming the file system, the free and needed bytes.

Exit codes: 0 committed, 1 failed, 2 bad usage, 3 no such stack, 4 the stack is being
snapshotted already, 5 aborted, 130 interrupted.

Examples:
  swarmckpt snapshot bank
  swarmckpt snapshot bank --algorithm blocking --output json
  swarmckpt snapshot echo --id echo-before-upgrade
  swarmckpt snapshot bank --replicas 2
`

func runSnapshot(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("snapshot", 15*time.Minute)
	algo := fs.String("algorithm", "", "checkpoint algorithm ("+algoNames()+"); default: the stack's swarmckpt.algorithm label, else "+coordinator.DefaultAlgorithm)
	replicas := fs.Int("replicas", 0, "on how many nodes to keep every image set (1 to 16); default: the stack's swarmckpt.replicas label, else 1")
	carry := fs.Bool("carry-volumes", false, "pack the containers' local named volumes into the snapshot (their size is shown), so that a restore on another node recreates them with their content")
	id := fs.String("id", "", "id of the new snapshot: 1 to 128 letters, digits, '-' or '_', starting with a letter or digit (default STACK-DATE-TIME-RANDOM)")
	pos, err := f.parse(c, fs, snapshotUsage, args, 1, 1, "give exactly one stack name (swarmckpt snapshot <stack>)")
	if err != nil {
		return err
	}
	if err := badName(api.ValidStack(pos[0])); err != nil {
		return err
	}
	if *replicas < 0 || *replicas > coordinator.MaxReplicas {
		return &usageError{msg: fmt.Sprintf("--replicas %d: give a number from 1 to %d (on how many nodes each image set is kept)", *replicas, coordinator.MaxReplicas)}
	}
	if *id != "" {
		if err := badName(api.ValidID(*id)); err != nil {
			return err
		}
	} else {
		*id = coordinator.NewID(pos[0], time.Now())
	}
	// Without --timeout the coordinator's hold budget bounds the snapshot (it scales
	// with the stack's work); with it, the snapshot gets 5 s less than the wait.
	var limit time.Duration
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "timeout" {
			limit = max(f.timeout-5*time.Second, time.Second)
		}
	})
	cl, disconnect, err := f.dial(ctx, c, *id)
	if err != nil {
		return err
	}
	defer disconnect()
	if f.output == "text" {
		fmt.Fprintf(c.stdout, "snapshot %s of stack %s (algorithm %s)\n", *id, pos[0], cmp.Or(*algo, "of the stack's policy, else "+coordinator.DefaultAlgorithm))
	}
	type result struct {
		res *api.SnapshotResult
		err error
	}
	done := make(chan result, 1)
	// A leader that dies before answering is not waited for: the request (its id and
	// request id) goes again to the next leader, which answers with the outcome of the
	// snapshot the dead one began, or takes it (api.Client.Failover); only a silence
	// longer than a takeover (--leader-ttl, 5 s, and its start) ends the wait.
	gone := coordinatorGone(ctx, cl, 20*time.Second, false)
	go func() {
		rctx, cancel := context.WithTimeout(context.Background(), f.timeout)
		defer cancel()
		r, err := api.Call[api.SnapshotResult](rctx, cl, api.OpSnapshot, api.SnapshotRequest{ID: *id, Stack: pos[0], Algorithm: *algo, Timeout: limit,
			CarryVolumes: *carry, Replicas: *replicas, RequestID: newRequestID()})
		done <- result{r, err}
	}()
	var r result
	select {
	case r = <-done:
	case why := <-gone:
		// A coordinator that answers again decides the snapshot at once (presumed
		// abort): wait a little for that decision and report it.
		if m := decided(ctx, cl, *id, 20*time.Second); m != nil {
			r = result{res: &api.SnapshotResult{Snapshot: m}}
			if m.State == store.StateAborted {
				again := ""
				if !strings.Contains(m.Reason, "'swarmckpt ") { // the reason may say what to do already
					again = fmt.Sprintf("; take it again with 'swarmckpt snapshot %s'", pos[0])
				}
				r.err = api.Errorf(api.CodeAborted, "snapshot %s aborted: %s (%s); %s%s", *id, m.Reason, why, heldAfter(ctx, cl, *id), again) // held.go
			}
			break
		}
		return fmt.Errorf("%s during snapshot %s: the coordinator that leads next aborts it, and the workers release its containers at their holds' deadline at the latest; once 'swarmckpt status' answers, check it with 'swarmckpt inspect %s'", why, *id, *id)
	case <-ctx.Done():
		fmt.Fprintf(c.stderr, "interrupted: aborting snapshot %s and releasing its containers...\n", *id)
		actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, aerr := api.Call[api.AbortResult](actx, cl, api.OpAbort, api.AbortRequest{ID: *id, Reason: "interrupted by the user (Ctrl-C)"})
		cancel()
		select {
		case r = <-done:
		case <-time.After(15 * time.Second):
		}
		if aerr != nil && !errors.Is(aerr, api.ErrNotFound) {
			return fmt.Errorf("interrupted; the abort request failed (%v): the coordinator aborts it at its deadline", aerr)
		}
		if r.err != nil && errors.Is(r.err, api.ErrAborted) {
			// The coordinator answers once the nodes released the containers (or says
			// which are still held, where and until when).
			return fmt.Errorf("interrupted: %v", r.err)
		}
		if r.res != nil && r.res.Snapshot != nil {
			return fmt.Errorf("interrupted: snapshot %s is %s", *id, r.res.Snapshot.State)
		}
		return fmt.Errorf("interrupted: snapshot %s aborted", *id)
	}
	if r.res != nil && r.res.Snapshot != nil {
		if f.output == "json" {
			if err := printJSON(c.stdout, r.res.Snapshot); err != nil {
				return err
			}
		} else {
			time.Sleep(50 * time.Millisecond) // let the last progress events print first
			printSummary(c.stdout, r.res.Snapshot)
		}
	}
	return apiExit(r.err)
}
