package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// releaseWait bounds how long an aborted snapshot waits for its nodes to report its
// containers released before it says which ones are still held.
const releaseWait = 5 * time.Second

// awaitReleased asks the nodes of m what they still hold of m's containers (the
// agents' holds request) until nothing is held, at most releaseWait, and returns a
// description of each container still held then: where, what, until when. A node
// that cannot answer is named too (its containers may be held).
func (s *Service) awaitReleased(ctx context.Context, m *store.Manifest) []string {
	byNode := map[string][]store.Container{}
	for _, c := range m.Containers {
		byNode[c.Node] = append(byNode[c.Node], c)
	}
	deadline := time.Now().Add(releaseWait)
	for {
		held, silent := s.stillHeld(ctx, byNode)
		if len(held) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			// (A node that does not answer is not asked again: waiting does not help.)
			held = append(held, silent...)
			slices.Sort(held)
			return held
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Held answers api.OpHeld: which containers of snapshot id are still held (after
// waiting up to releaseWait for their release), for a CLI whose coordinator restarted
// during the snapshot.
func (s *Service) Held(ctx context.Context, id string) (*api.HeldResult, error) {
	if err := api.ValidID(id); err != nil {
		return nil, err
	}
	if s.active(id) != nil {
		return nil, api.Errorf(api.CodeBusy, "snapshot %s is still running: its containers are held until it ends", id)
	}
	m, err := s.cfg.Store.Get(ctx, id)
	if err != nil {
		return nil, storeErr(err)
	}
	return &api.HeldResult{Held: s.awaitReleased(ctx, m)}, nil
}

// stillHeld is one round of awaitReleased: what the nodes hold, and the nodes that
// did not answer.
func (s *Service) stillHeld(ctx context.Context, byNode map[string][]store.Container) (held, silent []string) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for nodeName, cs := range byNode {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lines, quiet []string
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			b, err := s.cfg.Bus.Request(rctx, node.HoldsSubject(nodeName), []byte("{}"))
			var rep node.HoldsReply
			if err == nil {
				err = json.Unmarshal(b, &rep)
			}
			switch {
			case err != nil:
				quiet = append(quiet, fmt.Sprintf("node %s did not say what it holds (%v): its containers are released at their hold's deadline at the latest", nodeName, err))
			case rep.Error != "":
				// An agent that cannot list holds says nothing about them either way.
				s.log.Debug("node cannot list its holds", "node", nodeName, "err", rep.Error)
			default:
				for _, h := range rep.Holds {
					for _, c := range cs {
						if !restore.SameContainer(h.ContainerID, c.ContainerID) {
							continue
						}
						lines = append(lines, describeHeld(nodeName, c, h))
					}
				}
			}
			mu.Lock()
			held, silent = append(held, lines...), append(silent, quiet...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return held, silent
}

func describeHeld(nodeName string, c store.Container, h node.Held) string {
	var what []string
	if h.Frozen {
		what = append(what, "frozen")
	}
	if h.Locked {
		what = append(what, "network-locked")
	}
	until := "until released"
	if !h.Deadline.IsZero() {
		until = "until " + h.Deadline.UTC().Format(time.RFC3339) + " at the latest (its hold's deadline)"
	}
	if !h.OwnerAlive {
		until = "until its watchdog releases it (its worker ended: at once)"
	}
	return fmt.Sprintf("%s on %s: %s %s", c.Key(), nodeName, strings.Join(what, " and "), until)
}
