package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// stopTimeoutPerNode bounds one node's answer to a stop (or resume) of the containers
// a snapshot parked there.
const stopTimeoutPerNode = 90 * time.Second

// stopParked ends the containers of a committed snapshot taken with Exit (a
// migration's, or the checkpoint a restore takes of the running stack), which their
// nodes keep frozen and locked since their dump (nodeagent park.go); with resume it
// releases them instead (they run on). Nodes in parallel. The error names every
// container that could not be ended, and why.
func (s *Service) stopParked(ctx context.Context, m *store.Manifest, resume bool) error {
	byNode := map[string][]string{}
	for _, c := range m.Containers {
		byNode[c.Node] = append(byNode[c.Node], c.ContainerID)
	}
	what := "stop"
	if resume {
		what = "release"
	}
	t0 := time.Now()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []string
	)
	for node, ids := range byNode {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(nodeagent.StopRequest{Snapshot: m.ID, Containers: ids, Resume: resume})
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeoutPerNode)
			defer cancel()
			out, err := s.cfg.Bus.Request(cctx, nodeagent.StopSubject(node), b)
			var rep nodeagent.OpReply
			if err == nil {
				if uerr := json.Unmarshal(out, &rep); uerr != nil {
					err = uerr
				} else if rep.Error != "" {
					err = errors.New(rep.Error)
				}
			}
			if errors.Is(err, bus.ErrNoResponders) {
				err = fmt.Errorf("no live agent (its containers are released at their hold's deadline and run on)")
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("node %s: %v", node, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("%s the containers of %s held since their dump: %s", what, m.ID, strings.Join(errs, "; "))
	}
	msg := fmt.Sprintf("%d containers ended, frozen since their dump", len(m.Containers))
	if resume {
		msg = fmt.Sprintf("%d containers released: they run on as before", len(m.Containers))
	}
	s.event(ctx, api.Event{ID: m.ID, Phase: "stopped-after-dump", Message: msg, MS: time.Since(t0).Milliseconds()})
	return nil
}
