package restore

import (
	"strings"

	"github.com/docker/docker/api/types/network"
)

// pendingTeardown tells whether a node's view of a swarm network (docker network
// inspect on that node) is a network the node is about to remove: instantiated here
// with nothing but its load-balancer endpoint(s) left ("lb-<network>"), which is what a
// node shows for ~2.5-3 s (more under load) after the last task it ran on the network
// stopped. A container started on the network while the node removes it fails with
// "network ... not found", and dockerd then keeps the failed start's swarm attachment,
// with its address, for minutes (docs/restore.md, "Network attachments on worker
// nodes").
func pendingTeardown(ni network.Inspect) bool {
	if ni.Scope != "swarm" || len(ni.Containers) == 0 {
		return false
	}
	for id := range ni.Containers {
		if !strings.HasPrefix(id, "lb-") {
			return false
		}
	}
	return true
}
