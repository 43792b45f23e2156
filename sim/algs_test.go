package sim

import (
	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/registry"
)

// realAlgorithms are the algorithms of package algorithms the simulator tests drive.
func realAlgorithms() []algorithms.Algorithm { return registry.All() }
