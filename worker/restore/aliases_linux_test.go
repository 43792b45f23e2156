package restore

import (
	"slices"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/container"
)

// TestEndpointCarriesSwarmNames: a restored container of a swarm service answers every
// name swarm's DNS answered with its task's address: the service name, the task's
// service aliases and tasks.<each>, once each, also when restored again (its recorded
// aliases already hold them); a container of no service gets only its own aliases.
func TestEndpointCarriesSwarmNames(t *testing.T) {
	spec := container.Spec{Service: "bank_holder"}
	want := []string{"bank_holder", "tasks.bank_holder", "tasks.holder", "holder"}
	for _, tc := range []struct {
		name     string
		recorded []string
		extra    []string
	}{
		{"swarm task", nil, []string{"holder"}},
		{"restored again", []string{"holder", "bank_holder", "tasks.holder", "tasks.bank_holder"}, []string{"holder", "bank_holder", "tasks.holder", "tasks.bank_holder"}},
	} {
		es := endpoint(container.Network{Name: "bank_net", IPv4: "10.240.4.7", Aliases: tc.recorded}, spec, tc.extra)
		got := slices.Sorted(slices.Values(es.Aliases))
		if w := slices.Sorted(slices.Values(want)); !slices.Equal(got, w) {
			t.Errorf("%s: aliases %v, want %v", tc.name, es.Aliases, w)
		}
		if es.IPAMConfig == nil || es.IPAMConfig.IPv4Address != "10.240.4.7" {
			t.Errorf("%s: address %+v, want 10.240.4.7", tc.name, es.IPAMConfig)
		}
	}
	if es := endpoint(container.Network{Name: "n", Aliases: []string{"web"}}, container.Spec{}, []string{"x"}); !slices.Equal(es.Aliases, []string{"web", "x"}) {
		t.Errorf("container of no service: aliases %v, want [web x]", es.Aliases)
	}
	if es := endpoint(container.Network{Name: "bridge"}, spec, nil); len(es.Aliases) != 0 {
		t.Errorf("default bridge (no aliases possible): %v", es.Aliases)
	}
}
