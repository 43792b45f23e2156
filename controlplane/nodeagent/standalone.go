package nodeagent

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

// StandaloneSubject lists the containers exact-mode restores created on a node for a
// stack (StandaloneRequest, answered by StandaloneReply): the swarm manager knows only
// tasks, so the coordinator asks every node for these to resolve a restored stack.
func StandaloneSubject(node string) string { return "swarmckpt.v1.agent." + node + ".standalone" }

// StandaloneRequest names the stack.
type StandaloneRequest struct {
	Stack string `json:"stack"`
}

// StandaloneReply answers a StandaloneRequest.
type StandaloneReply struct {
	Node       string       `json:"node"`
	Containers []Standalone `json:"containers,omitempty"`
	Error      string       `json:"error,omitempty"`
}

// Standalone is a container restored (exact mode) for a swarm service of the stack.
type Standalone struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Image   string `json:"image,omitempty"`
	Service string `json:"service"`
	// Labels are its io.swarmckpt.* labels.
	Labels   map[string]string `json:"labels,omitempty"`
	Running  bool              `json:"running"`
	State    string            `json:"state,omitempty"`
	Networks []StandaloneNet   `json:"networks,omitempty"`
}

// StandaloneNet is a Standalone container's endpoint on one network.
type StandaloneNet struct {
	Name    string   `json:"name"`
	IPv4    string   `json:"ipv4,omitempty"`
	IPv6    string   `json:"ipv6,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
}

// StandaloneLister is what a node's Restorer offers to list restored containers
// (optional: the agent answers with an error when its Restorer lacks it).
type StandaloneLister interface {
	Standalone(ctx context.Context, stack string) ([]Standalone, error)
}

func (a *Agent) serveStandalone(ctx context.Context) (bus.Subscription, error) {
	return a.cfg.Bus.Subscribe(StandaloneSubject(a.cfg.Node), func(m *bus.Msg) {
		if !m.IsRequest() {
			return
		}
		go func() {
			rep := StandaloneReply{Node: a.cfg.Node}
			var req StandaloneRequest
			l, ok := a.cfg.Restorer.(StandaloneLister)
			switch err := json.Unmarshal(m.Data, &req); {
			case err != nil:
				rep.Error = "bad standalone request: " + err.Error()
			case !ok:
				rep.Error = fmt.Sprintf("the agent of node %s cannot list restored containers (run it with a worker of this version)", a.cfg.Node)
			default:
				rep.Containers, err = l.Standalone(ctx, req.Stack)
				if err != nil {
					rep.Error = err.Error()
				}
			}
			a.respond(m, rep)
		}()
	})
}
