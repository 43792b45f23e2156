package restore

import (
	"testing"

	"github.com/docker/docker/api/types/network"
)

func TestNetTeardown(t *testing.T) {
	lb := network.EndpointResource{Name: "bank_net-endpoint", IPv4Address: "10.240.4.12/24"}
	holder := network.EndpointResource{Name: "bank_holder-1-again", IPv4Address: "10.240.4.6/24"}
	for _, tc := range []struct {
		name string
		eps  map[string]network.EndpointResource
		want bool
	}{
		{"not instantiated here (a manager's cluster view)", nil, false},
		{"only the load-balancer endpoint: leaving", map[string]network.EndpointResource{"lb-bank_net": lb}, true},
		{"a container stays on it", map[string]network.EndpointResource{"lb-bank_net": lb, "0123456789ab": holder}, false},
		{"a container without the lb endpoint", map[string]network.EndpointResource{"0123456789ab": holder}, false},
	} {
		if got := netTeardown(tc.eps); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
