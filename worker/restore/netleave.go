package restore

import (
	"strings"

	"github.com/docker/docker/api/types/network"
)

// Why Remove waits for the node to leave the container's swarm networks
// (docs/restore.md "Network attachments on worker nodes"): a node whose last
// container on an attachable overlay goes tears the network down asynchronously
// (its load-balancer endpoint "lb-NET" is released, then libnetwork leaves the
// network's gossip), ~0.2-4 s after the removal under load. A restore that attaches
// a container to that network on the node meanwhile fails in dockerd ("failed to get
// network during CreateEndpoint: network ... not found") and leaves the failed
// attempt's swarm network attachment holding its address in the manager's IPAM (seen
// for 64 s), so every new attempt with the same --ip waits out dockerd's 20 s
// attachment deadline ("attaching to network failed ... context deadline exceeded").
// And nodes leaving the network while others join it again (an exact restore over an
// exact restore) left a rejoined node unknown to its peers' network DB: they dropped
// its endpoints and it got none of theirs until the gossip's 30 s push-pull (name
// lookups missed the moved containers for 48-78 s).

// netTeardown tells, from a node's view of a network (docker network inspect), whether
// the node is leaving it: it is still instantiated here (its load-balancer endpoint
// is listed) but no container of this node is on it any more. A network the node does
// not have (not found, or listed by a manager without local endpoints) or with a
// container left on it is settled.
func netTeardown(containers map[string]network.EndpointResource) bool {
	if len(containers) == 0 {
		return false
	}
	for id, ep := range containers {
		if !strings.HasPrefix(id, "lb-") && !strings.HasSuffix(ep.Name, "-endpoint") {
			return false
		}
	}
	return true
}
