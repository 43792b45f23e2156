package restore

import (
	"testing"

	"github.com/docker/docker/api/types/network"
)

func TestNetTeardown(t *testing.T) {
	lb := network.EndpointResource{Name: "bank_net-endpoint", IPv4Address: "10.240.4.12/24"}
	holder := network.EndpointResource{Name: "bank_holder-1-again", IPv4Address: "10.240.4.6/24"}
	net := func(scope string, eps map[string]network.EndpointResource) network.Inspect {
		ni := network.Inspect{Name: "bank_net", Scope: scope, Containers: eps}
		return ni
	}
	ingress := network.Inspect{Name: "ingress", Scope: "swarm", Ingress: true,
		Containers: map[string]network.EndpointResource{"ingress-sbox": {Name: "ingress-endpoint"}}}
	for _, tc := range []struct {
		name string
		ni   network.Inspect
		want bool
	}{
		{"not instantiated here (a manager's cluster view)", net("swarm", nil), false},
		{"only the load-balancer endpoint: leaving", net("swarm", map[string]network.EndpointResource{"lb-bank_net": lb}), true},
		{"a container stays on it", net("swarm", map[string]network.EndpointResource{"lb-bank_net": lb, "0123456789ab": holder}), false},
		{"a container without the lb endpoint", net("swarm", map[string]network.EndpointResource{"0123456789ab": holder}), false},
		{"a local network", net("local", map[string]network.EndpointResource{"lb-bank_net": lb}), false},
		{"ingress: never torn down", ingress, false},
	} {
		if got := netTeardown(tc.ni); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
