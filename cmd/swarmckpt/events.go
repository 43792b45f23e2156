package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/events"
)

const eventsUsage = `
Usage: swarmckpt events [--output json]

Follows the coordinator's event stream until Ctrl-C: what it decides and does by
itself, one line per event (--output json: one JSON object per line). Kinds:
  drain-seen          a node is draining; its labelled tasks' stops are held
  task-held           the runtime wrapper holds the stop of an armed task (until its deadline)
  checkpointed        a held task was checkpointed with exit into a set
  restored            its set was placed on the node of swarm's replacement, which restores it
  released            a held stop went on without a checkpoint (reason: why)
  hold-timed-out      the checkpoint did not finish in time: the task stopped as swarm
                      would (stop signal, SIGKILL at stop_grace_period) and restarts fresh
  node-lost           a node's worker and agent are gone and swarm reports it down
  rolled-back         a stack was restored from snapshot S
  label-error         a stack's swarmckpt.* labels are in error
  snapshot-committed, snapshot-aborted
  migrated, node-drain  what 'swarmckpt node drain' did
The coordinator's log has the same lines. Events published while nothing follows
are not kept.

Examples:
  swarmckpt events
  swarmckpt events --output json | jq .
`

func runEvents(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("events", 0)
	fs.Lookup("timeout").Usage = "stop following after this long (0: until Ctrl-C)"
	if _, err := f.parse(c, fs, eventsUsage, args, 0, 0, "events takes no arguments"); err != nil {
		return err
	}
	tr, _, err := f.connect(ctx, c)
	if err != nil {
		return err
	}
	defer tr.Close()
	lines := make(chan string, 256)
	sub, err := events.Follow(tr, func(e events.Event) {
		var line string
		if f.output == "json" {
			b, _ := json.Marshal(e)
			line = string(b)
		} else {
			line = e.At.Local().Format("15:04:05.000") + " " + e.String()
		}
		select {
		case lines <- line:
		default: // a reader that stalls loses lines rather than stalling the bus
		}
	}, func(err error) { c.log.Warn("skipping a message", "err", err) })
	if err != nil {
		return fmt.Errorf("cannot follow the coordinator's events: %w (is the coordinator's NATS reachable with these credentials?)", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	fmt.Fprintf(c.stderr, "following %s (Ctrl-C ends)\n", events.Subject)
	stop := afterTimeout(f.timeout)
	for {
		select {
		case l := <-lines:
			fmt.Fprintln(c.stdout, l)
		case <-ctx.Done():
			return nil // Ctrl-C is how a follower ends
		case <-stop:
			return nil
		}
	}
}

// afterTimeout fires after d (--timeout; never when d is 0: follow until Ctrl-C).
func afterTimeout(d time.Duration) <-chan time.Time {
	if d <= 0 {
		return nil
	}
	return time.After(d)
}
