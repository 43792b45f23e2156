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
	"github.com/swarmckpt/swarmckpt/protocol"
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
	resent := time.Now()
	for {
		held, silent, cs := s.stillHeld(ctx, byNode)
		if len(held) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			// (A node that does not answer is not asked again: waiting does not help.)
			held = append(held, silent...)
			slices.Sort(held)
			return held
		}
		if time.Since(resent) >= time.Second {
			s.resendAbort(ctx, m, cs)
			resent = time.Now()
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

// followRelease goes on where awaitReleased gave up, in the background, for an
// aborted snapshot whose containers were still held (or whose nodes did not answer):
// every releaseResend it asks the nodes again and re-sends the abort to the
// containers still held, until none is held and every node answered, or until (the
// holds' deadline, when the workers' watchdogs release them anyway). An abort
// published while NATS was down, or before the agents subscribed again after it came
// back, is lost: without this its containers stayed locked or frozen until their
// deadline (found by TestIntegrationExternalControlPlane with every NATS server down).
func (s *Service) followRelease(ctx context.Context, m *store.Manifest, until time.Time) {
	if m.State != store.StateAborted {
		return
	}
	byNode := map[string][]store.Container{}
	for _, c := range m.Containers {
		byNode[c.Node] = append(byNode[c.Node], c)
	}
	log := s.log.With("snapshot", m.ID)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(releaseResend):
		}
		held, silent, cs := s.stillHeld(ctx, byNode)
		if len(held) == 0 && len(silent) == 0 {
			log.Info("every container of the aborted snapshot is released")
			return
		}
		if time.Now().After(until) {
			log.Warn("containers of the aborted snapshot still held at their holds' deadline (the workers' watchdogs release them)", "held", held, "silent", silent)
			return
		}
		s.resendAbort(ctx, m, cs)
	}
}

// releaseResend is how often followRelease asks the nodes again.
const releaseResend = 2 * time.Second

// resendAbort sends the abort of snapshot m again to each container of cs (their
// agents release what they still hold of it; one that released it already ignores it).
func (s *Service) resendAbort(ctx context.Context, m *store.Manifest, cs []store.Container) {
	if m.State != store.StateAborted || len(cs) == 0 {
		return
	}
	nodeOf := map[string]string{}
	for _, c := range m.Containers {
		nodeOf[c.ContainerID] = c.Node
	}
	for _, c := range cs {
		env := protocol.Envelope{Version: protocol.Version, Type: protocol.TypeAbort, Snapshot: m.ID, Epoch: m.Epoch,
			From: protocol.Coordinator, To: protocol.ContainerAddr(c.ContainerID), Body: &protocol.Decision{Reason: m.Reason}}
		subj, err := node.SubjectFor(env.To, func(id string) (string, bool) { n, ok := nodeOf[id]; return n, ok })
		if err != nil {
			continue
		}
		b, err := protocol.Encode(env)
		if err != nil {
			continue
		}
		if err := s.cfg.Bus.Publish(ctx, subj, b); err != nil {
			s.log.Debug("cannot re-send an abort", "snapshot", m.ID, "container", c.Key(), "err", err)
		}
	}
	s.log.Info("re-sent the abort to the containers still held", "snapshot", m.ID, "containers", len(cs))
}

// stillHeld is one round of awaitReleased: what the nodes hold, the nodes that did
// not answer, and the containers held.
func (s *Service) stillHeld(ctx context.Context, byNode map[string][]store.Container) (held, silent []string, heldCs []store.Container) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for nodeName, cs := range byNode {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lines, quiet []string
			var mine []store.Container
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
						mine = append(mine, c)
					}
				}
			}
			mu.Lock()
			held, silent, heldCs = append(held, lines...), append(silent, quiet...), append(heldCs, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return held, silent, heldCs
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
