package restore

import (
	"testing"

	"github.com/docker/docker/api/types/network"
)

// TestPendingTeardown: only a swarm network left with nothing but its load-balancer
// endpoint on the node is one the node is about to remove.
func TestPendingTeardown(t *testing.T) {
	lb := network.EndpointResource{Name: "bank_net-endpoint", IPv4Address: "10.240.4.7/24"}
	task := network.EndpointResource{Name: "bank_holder.1.x", IPv4Address: "10.240.4.3/24"}
	for _, tc := range []struct {
		name string
		ni   network.Inspect
		want bool
	}{
		{"only the load balancer", network.Inspect{Scope: "swarm", Containers: map[string]network.EndpointResource{"lb-bank_net": lb}}, true},
		{"a task too", network.Inspect{Scope: "swarm", Containers: map[string]network.EndpointResource{"lb-bank_net": lb, "3f2a": task}}, false},
		{"not instantiated here (manager's view)", network.Inspect{Scope: "swarm"}, false},
		{"a local network", network.Inspect{Scope: "local", Containers: map[string]network.EndpointResource{"lb-x": lb}}, false},
	} {
		if got := pendingTeardown(tc.ni); got != tc.want {
			t.Errorf("%s: pendingTeardown = %v, want %v", tc.name, got, tc.want)
		}
	}
}
