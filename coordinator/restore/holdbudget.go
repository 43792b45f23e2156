package restore

import (
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/holdtime"
)

// HoldFor is how long restored containers may stay network-locked, waiting for
// the rest of m's containers, before their workers' watchdogs unlock them: the default
// budget of the restore's busiest node (targets: SERVICE.SLOT -> node; nil when every
// set goes to every node, as a swarm-mode restore places them).
func HoldFor(m *store.Manifest, targets map[string]string) time.Duration {
	work := map[string]holdtime.Work{}
	for _, c := range m.Containers {
		nodeName := ""
		if targets != nil {
			t, ok := targets[c.Key()]
			if !ok {
				continue
			}
			nodeName = t
		}
		var n int64
		if c.Images != nil {
			n = c.Images.Bytes()
		}
		work[nodeName] = work[nodeName].Add(holdtime.Work{Containers: 1, Bytes: n})
	}
	return holdtime.Default().Stack(work)
}
