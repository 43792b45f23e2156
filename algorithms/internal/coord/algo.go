package coord

import (
	"encoding/json"

	"github.com/swarmckpt/swarmckpt/algorithms"
)

// Algo implements algorithms.Algorithm from an algorithm's constructors, so each
// algorithm package states only what differs.
type Algo[C, K algorithms.Machine] struct {
	AlgoName string
	Promise  algorithms.Guarantees
	New      func(algorithms.Config) C
	Recover  func(algorithms.Config, []byte) (C, error)
	// Container builds a container role (participant.New for the algorithms whose
	// containers only follow the coordinator).
	Container func(algorithms.ContainerConfig) K
}

var _ algorithms.Algorithm = Algo[algorithms.Machine, algorithms.Machine]{}

// Name implements algorithms.Algorithm.
func (a Algo[C, K]) Name() string { return a.AlgoName }

// Guarantees implements algorithms.Algorithm.
func (a Algo[C, K]) Guarantees() algorithms.Guarantees { return a.Promise }

// NewCoordinator implements algorithms.Algorithm.
func (a Algo[C, K]) NewCoordinator(cfg algorithms.Config) algorithms.Machine { return a.New(cfg) }

// RecoverCoordinator implements algorithms.Algorithm.
func (a Algo[C, K]) RecoverCoordinator(cfg algorithms.Config, rec []byte) (algorithms.Machine, error) {
	c, err := a.Recover(cfg, rec)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// NewContainer implements algorithms.Algorithm.
func (a Algo[C, K]) NewContainer(cfg algorithms.ContainerConfig) algorithms.Machine {
	return a.Container(cfg)
}

// RecoverBase is the RecoverCoordinator of an algorithm whose coordinator keeps nothing
// beyond Base: build it with newC, then recover Base from the record.
func RecoverBase[C interface {
	algorithms.Machine
	Recover([]byte) (json.RawMessage, error)
}](newC func(algorithms.Config) C, cfg algorithms.Config, rec []byte) (C, error) {
	c := newC(cfg)
	if _, err := c.Recover(rec); err != nil {
		var zero C
		return zero, err
	}
	return c, nil
}
