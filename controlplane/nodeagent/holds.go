package nodeagent

import (
	"context"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

// HoldsSubject lists what a node's worker holds locked or frozen (request with any
// body, answered by HoldsReply): after a failure, the coordinator can tell the user
// which containers are still held, where and until when, instead of presuming every
// one was released.
func HoldsSubject(node string) string { return "swarmckpt.v1.agent." + node + ".holds" }

// HoldsReply answers a holds request.
type HoldsReply struct {
	Node  string `json:"node"`
	Holds []Held `json:"holds,omitempty"`
	Error string `json:"error,omitempty"`
}

// Held is one container held on the node.
type Held struct {
	ContainerID string    `json:"containerID"`
	Name        string    `json:"name,omitempty"`
	Locked      bool      `json:"locked"`
	Frozen      bool      `json:"frozen"`
	Deadline    time.Time `json:"deadline"`
	// OwnerAlive false: the worker process that held it ended; its watchdog releases
	// the container at once.
	OwnerAlive bool `json:"ownerAlive"`
}

// HoldLister is what a node's Executor offers to list its holds (optional: the agent
// answers with an error when its Executor lacks it).
type HoldLister interface {
	Holds(ctx context.Context) ([]Held, error)
}

func (a *Agent) serveHolds(ctx context.Context) (bus.Subscription, error) {
	return a.cfg.Bus.Subscribe(HoldsSubject(a.cfg.Node), func(m *bus.Msg) {
		if !m.IsRequest() {
			return
		}
		go func() {
			rep := HoldsReply{Node: a.cfg.Node}
			l, ok := a.cfg.Exec.(HoldLister)
			if !ok {
				rep.Error = fmt.Sprintf("the agent of node %s cannot list its worker's holds (run it with a worker of this version)", a.cfg.Node)
			} else {
				var err error
				if rep.Holds, err = l.Holds(ctx); err != nil {
					rep.Error = err.Error()
				}
			}
			a.respond(m, rep)
		}()
	})
}
