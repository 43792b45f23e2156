package store_test

import (
	"testing"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/controlplane/store/storetest"
)

func TestMemoryElectionConformance(t *testing.T) {
	storetest.RunElection(t, func(t *testing.T) storetest.Joiner {
		e := store.NewMemoryElection()
		return storetest.Joiner{Join: func(*testing.T) store.Elector { return e }, Kill: func(name string) { e.Kill(name) }, TTL: 0}
	})
}
