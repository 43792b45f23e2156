package etcdstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/etcdstore"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/controlplane/store/storetest"
)

// The election over a real embedded etcd: each participant has its own client; a
// kill closes the client without resigning (as kill -9 does: keepalives stop and the
// lease lapses after the TTL).
func TestEtcdElectionConformance(t *testing.T) {
	base := startEtcd(t)
	n := 0
	const ttl = 2 * time.Second
	storetest.RunElection(t, func(t *testing.T) storetest.Joiner {
		n++
		cfg := base
		cfg.Prefix = fmt.Sprintf("/election%d/swarmckpt/v1", n)
		var mu sync.Mutex
		names := map[string]*etcdstore.Store{}
		return storetest.Joiner{TTL: ttl,
			Join: func(t *testing.T) store.Elector {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s, err := etcdstore.Open(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				e := &namingElector{Elector: s.Elector(ttl), record: func(name string) {
					mu.Lock()
					names[name] = s
					mu.Unlock()
				}}
				return e
			},
			Kill: func(name string) {
				mu.Lock()
				s := names[name]
				mu.Unlock()
				s.Close()
			}}
	})
}

// namingElector remembers which client campaigns under which name (Kill closes it).
type namingElector struct {
	*etcdstore.Elector
	record func(name string)
}

func (e *namingElector) Campaign(ctx context.Context, c store.Candidate) (store.Leadership, error) {
	e.record(c.Name)
	return e.Elector.Campaign(ctx, c)
}
