package nodeagent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// PreflightSubject asks a node whether a restore can run there before anything is
// changed (PreflightRequest, answered by PreflightReply): the coordinator asks every
// node before it stops the stack.
func PreflightSubject(node string) string { return "swarmckpt.v1.agent." + node + ".preflight" }

// PreflightRequest lists what a restore needs of one node.
type PreflightRequest struct {
	// Stack is the stack whose swarm tasks are stopped before the restore: addresses
	// held by its task containers do not count as taken ("" : every holder counts).
	Stack string `json:"stack,omitempty"`
	// Sets the restore reads on this node: each must be complete (every file present,
	// with its size; checksums are verified before the restore itself).
	Sets []PreflightSet `json:"sets,omitempty"`
	// Containers restored on this node: their image must be here, their name free.
	Containers []PreflightContainer `json:"containers,omitempty"`
	// Addresses the restored containers take: no other container may hold one here.
	Addresses []PreflightAddress `json:"addresses,omitempty"`
	// Prepare says the checks passed on every node and the restore goes ahead: the
	// node starts what shortens it (a keeper on each swarm network the Containers
	// restored here join with their Addresses, so the node keeps the network while the
	// stack stops) and answers at once; nothing is checked.
	Prepare bool `json:"prepare,omitempty"`
}

// PreflightSet is an image set and the files the snapshot recorded for it.
type PreflightSet struct {
	Set   string       `json:"set"`
	Files []store.File `json:"files"`
	// Target is the node the set is to be restored on (sent to the set's own node
	// only): a set whose container mounts a local named volume is refused for any
	// other node than the one it ran on. Key names the container (SERVICE.SLOT).
	Target string `json:"target,omitempty"`
	Key    string `json:"key,omitempty"`
}

// PreflightContainer is a container to restore: SERVICE.SLOT, its container name and
// image.
type PreflightContainer struct {
	Key   string `json:"key"`
	Name  string `json:"name"`
	Image string `json:"image"`
	// Volumes are the local named volumes the set carries and the restore recreates
	// on this node (snapshot --carry-volumes): each must be missing here, or empty.
	Volumes []string `json:"volumes,omitempty"`
}

// PreflightAddress is an address a restored container takes on one of Networks (all
// networks when empty).
type PreflightAddress struct {
	Key      string   `json:"key"`
	IP       string   `json:"ip"`
	Networks []string `json:"networks,omitempty"`
}

// PreflightReply answers a PreflightRequest.
type PreflightReply struct {
	// Missing are the sets of the request that are not on this node at all.
	Missing []string `json:"missing,omitempty"`
	// Problems say what would make the restore fail here, each with its fix.
	Problems []string `json:"problems,omitempty"`
	// Unsupported: this node's agent or worker cannot answer (older version).
	Unsupported bool   `json:"unsupported,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Preflighter is what a node's Restorer offers for pre-flight checks (optional: an
// agent whose Restorer lacks it answers Unsupported).
type Preflighter interface {
	Preflight(ctx context.Context, req PreflightRequest) (PreflightReply, error)
}

func (a *Agent) servePreflight(ctx context.Context) (bus.Subscription, error) {
	return a.cfg.Bus.Subscribe(PreflightSubject(a.cfg.Node), func(m *bus.Msg) {
		if !m.IsRequest() {
			return
		}
		go func() {
			var rep PreflightReply
			var req PreflightRequest
			p, ok := a.cfg.Restorer.(Preflighter)
			switch err := json.Unmarshal(m.Data, &req); {
			case err != nil:
				rep.Error = "bad preflight request: " + err.Error()
			case a.cfg.Restorer == nil:
				rep.Error = fmt.Sprintf("the agent of node %s has no restorer (run it with a worker)", a.cfg.Node)
			case !ok:
				rep.Unsupported = true
			default:
				cctx, cancel := context.WithTimeout(ctx, time.Minute)
				r, err := p.Preflight(cctx, req)
				cancel()
				rep = r
				if err != nil {
					rep.Error = err.Error()
				}
			}
			a.respond(m, rep)
		}()
	})
}
