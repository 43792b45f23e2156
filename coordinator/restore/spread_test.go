package restore

import (
	"errors"
	"fmt"
	"testing"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

func TestSpreadTargets(t *testing.T) {
	p := func(key, node string) Placed {
		svc := key[:len(key)-2]
		return Placed{Key: key, Service: svc, Node: node}
	}
	cases := []struct {
		name        string
		moving      []Placed
		staying     []Placed
		nodes       []string
		constraints map[string][]string
		want        map[string]string
		err         bool
	}{{
		// bank on 3 nodes 2/2/1, n2 drained: its two holders are not piled on one node.
		name:    "replicas of a drained node spread over the others",
		moving:  []Placed{p("bank_holder.2", "n2"), p("bank_holder.5", "n2")},
		staying: []Placed{p("bank_holder.1", "n1"), p("bank_holder.4", "n1"), p("bank_holder.3", "n3")},
		nodes:   []string{"n1", "n3"},
		want:    map[string]string{"bank_holder.2": "n3", "bank_holder.5": "n1"},
	}, {
		name:    "a primary does not land beside its replica while a node is free",
		moving:  []Placed{p("db_primary.1", "n2")},
		staying: []Placed{p("db_primary.2", "n1"), p("web_front.1", "n3"), p("web_front.2", "n3")},
		nodes:   []string{"n1", "n3"},
		want:    map[string]string{"db_primary.1": "n3"},
	}, {
		name:    "ties go to the node with fewer containers of the stack, then by name",
		moving:  []Placed{p("a_x.1", "n1")},
		staying: []Placed{p("b_y.1", "n2")},
		nodes:   []string{"n3", "n2"},
		want:    map[string]string{"a_x.1": "n3"},
	}, {
		name:        "a hostname constraint other than the drained node is honoured",
		moving:      []Placed{p("db_primary.1", "n2")},
		staying:     []Placed{p("db_primary.2", "n1")},
		nodes:       []string{"n1", "n3"},
		constraints: map[string][]string{"db_primary": {"node.hostname != n3"}},
		want:        map[string]string{"db_primary.1": "n1"},
	}, {
		name:        "--to a node a service may not run on is refused",
		moving:      []Placed{p("db_primary.1", "n2")},
		nodes:       []string{"n3"},
		constraints: map[string][]string{"db_primary": {"node.hostname==n2"}},
		err:         true,
	}, {
		name:   "--to puts every moving container on the one node",
		moving: []Placed{p("a_x.1", "n1"), p("a_x.2", "n2")},
		nodes:  []string{"n3"},
		want:   map[string]string{"a_x.1": "n3", "a_x.2": "n3"},
	}, {
		name:   "more replicas than nodes: spread evenly",
		moving: []Placed{p("s_r.1", "n9"), p("s_r.2", "n9"), p("s_r.3", "n9"), p("s_r.4", "n9")},
		nodes:  []string{"n1", "n2"},
		want:   map[string]string{"s_r.1": "n1", "s_r.2": "n2", "s_r.3": "n1", "s_r.4": "n2"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SpreadTargets(tc.moving, tc.staying, tc.nodes, tc.constraints)
			if tc.err {
				if !errors.Is(err, api.ErrBadRequest) {
					t.Fatalf("err = %v, want a bad request", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("targets = %v, want %v", got, tc.want)
			}
		})
	}
}
