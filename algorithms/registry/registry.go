// Package registry looks checkpoint algorithms up by name, for the CLI, the coordinator
// and the simulator.
package registry

import (
	"errors"
	"fmt"
	"strings"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/blocking"
	"github.com/swarmckpt/swarmckpt/algorithms/chandylamport"
	"github.com/swarmckpt/swarmckpt/algorithms/minimal"
	"github.com/swarmckpt/swarmckpt/algorithms/uncoordinated"
)

// ErrUnknown is wrapped by Lookup for a name no algorithm has.
var ErrUnknown = errors.New("registry: unknown algorithm")

// All returns every algorithm, in a fixed order.
func All() []algorithms.Algorithm {
	return []algorithms.Algorithm{blocking.Algorithm(), chandylamport.Algorithm(), uncoordinated.Algorithm(), minimal.Algorithm()}
}

// Names returns the names of All, in the same order.
func Names() []string {
	var out []string
	for _, a := range All() {
		out = append(out, a.Name())
	}
	return out
}

// Lookup returns the algorithm called name.
func Lookup(name string) (algorithms.Algorithm, error) {
	for _, a := range All() {
		if a.Name() == name {
			return a, nil
		}
	}
	return nil, fmt.Errorf("algorithm %q (choose one of %s): %w", name, strings.Join(Names(), ", "), ErrUnknown)
}
