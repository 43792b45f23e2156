package coordinator_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/protocol"
)

// losesAborts is the coordinator's bus losing the first abort sent to each container,
// as NATS does with what is published while every server is down (or before the
// agents subscribed again once it is back).
type losesAborts struct {
	bus.Transport
	mu   sync.Mutex
	lost map[string]bool // container -> its first abort was lost
}

func (l *losesAborts) Publish(ctx context.Context, subject string, data []byte) error {
	if env, err := protocol.Decode(data); err == nil && env.Type == protocol.TypeAbort {
		l.mu.Lock()
		first := !l.lost[env.To.ID]
		l.lost[env.To.ID] = true
		l.mu.Unlock()
		if first {
			return nil
		}
	}
	return l.Transport.Publish(ctx, subject, data)
}

func (l *losesAborts) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lost)
}

// TestLostAbortIsSentAgain: an aborted snapshot whose abort messages were lost does
// not leave its containers held until their deadline: the coordinator asks the nodes
// what they still hold and sends the abort again, and answers once all are released.
func TestLostAbortIsSentAgain(t *testing.T) {
	var lossy *losesAborts
	e := newEnvWith(t, func(c *coordinator.Config) {
		lossy = &losesAborts{Transport: c.Bus, lost: map[string]bool{}}
		c.Bus = lossy
	}, "lab-1", "lab-2", "lab-3")
	e.execs["lab-3"].FailDump["ctr3"] = errors.New("criu: dump failed: unsupported resource")
	_, err := e.snapshot("snap-lost-abort")
	if !errors.Is(err, api.ErrAborted) {
		t.Fatalf("err = %v, want aborted", err)
	}
	if lossy.count() == 0 {
		t.Fatal("no abort was sent (the test lost nothing)")
	}
	if !strings.Contains(err.Error(), "every container was released") {
		t.Errorf("err = %v, want every container released (the abort sent again)", err)
	}
	if h := e.held(); len(h) > 0 {
		t.Errorf("still held when the aborted snapshot returned: %v", h)
	}
}
