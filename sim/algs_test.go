package sim

import (
	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/algorithms/blocking"
	"github.com/swarmckpt/swarmckpt/algorithms/chandylamport"
)

// realAlgorithms are the algorithms of package algorithms the simulator tests drive.
func realAlgorithms() []algorithms.Algorithm {
	return []algorithms.Algorithm{blocking.Algorithm(), chandylamport.Algorithm()}
}
