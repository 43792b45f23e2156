package restore

import (
	"context"
	"strings"
	"time"
)

// startAttempts bounds the starts of one created container whose start failed on its
// network attachment before the runtime ran (startAgain).
const startAttempts = 3

// netGone tells whether a Docker error is a network attachment failing on this node
// (network unknown here, or its attachment timing out): worth another start.
func netGone(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "attaching to network failed") ||
		(strings.Contains(s, "network ") && strings.Contains(s, "not found"))
}

// startAgain calls start until it succeeds, fails for another reason than the network
// attachment (netGone), the runtime ran (ran), the context ends or attempts starts were
// made; it waits attempt × 0.5 s between starts and tells retrying about each retry.
// It returns start's last error.
//
// Starting the SAME container again is the point: dockerd keeps a container's swarm
// network attachment, keyed by network and container ID, when its start fails after
// the manager allocated the attachment (a node still tearing the overlay down fails
// the endpoint with "network ... not found"), and a new start of that container gets
// the kept attachment and its address at once; a new container asking for the same
// address instead waits out the manager's 20 s ("attaching to network failed ...
// context deadline exceeded"), because the kept attachment holds the address
// (docs/restore.md, "Network attachments on worker nodes").
func startAgain(ctx context.Context, attempts int, start func() error, ran func() bool, retrying func(attempt int, err error)) error {
	for n := 1; ; n++ {
		err := start()
		if err == nil || !netGone(err) || ran() || n >= attempts || ctx.Err() != nil {
			return err
		}
		retrying(n, err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(n) * 500 * time.Millisecond):
		}
	}
}
