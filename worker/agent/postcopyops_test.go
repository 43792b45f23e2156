package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
)

// The post-copy source's operations: OpDisconnect takes a frozen container off its
// networks and refuses a running one (ErrNotFrozen: it keeps them); OpWaitLazy
// answers the worker's outcome (ErrNotFound when no post-copy dump of the set is
// known); OpReconnect stops the page server of the source's set and puts it back on
// its networks with their addresses and aliases; an agent whose worker has no post-copy role answers ErrNoWorker.
func TestAgentPostCopySourceOps(t *testing.T) {
	net := bus.NewNetwork()
	w := worker.NewFake("n1")
	startAgent(t, agent.Config{Bus: net.Connect(), Worker: w.Roles()})
	conn := net.Connect()
	if err := w.Freeze(context.Background(), "src", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	var rep node.DisconnectReply
	b, _ := json.Marshal(node.DisconnectRequest{Containers: []string{"src"}})
	ask(t, conn, node.DisconnectSubject("n1"), b, &rep)
	if err := rep.Err(); err != nil || !slices.Equal(w.Disconnected(), []string{"src"}) {
		t.Fatalf("disconnect of a frozen source: %v, disconnected %v; want success and [src]", err, w.Disconnected())
	}
	var running node.DisconnectReply
	b, _ = json.Marshal(node.DisconnectRequest{Containers: []string{"web"}})
	ask(t, conn, node.DisconnectSubject("n1"), b, &running)
	if err := running.Err(); !errors.Is(err, node.ErrNotFrozen) || len(w.Disconnected()) != 1 {
		t.Fatalf("disconnect of a running container: %v (disconnected %v), want node.ErrNotFrozen and nothing done", err, w.Disconnected())
	}

	var wait node.WaitLazyReply
	b, _ = json.Marshal(node.WaitLazyRequest{Set: "s1.src"})
	ask(t, conn, node.WaitLazySubject("n1"), b, &wait)
	if err := wait.Err(); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("wait-lazy of a set with no page server: %v, want node.ErrNotFound", err)
	}

	var back node.ReconnectReply
	nets := []node.NetworkAttach{{Network: "st_net", IPv4: "10.5.0.3", Aliases: []string{"echo"}}}
	b, _ = json.Marshal(node.ReconnectRequest{Containers: []node.HeldNetworks{{Container: "src", Set: "s1.src", Networks: nets}}})
	ask(t, conn, node.ReconnectSubject("n1"), b, &back)
	if err := back.Err(); err != nil {
		t.Fatalf("reconnect of a disconnected source: %v", err)
	}
	if got := w.Reconnected()["src"]; len(got) != 1 || got[0].Network != "st_net" || got[0].IPv4 != "10.5.0.3" || !slices.Equal(got[0].Aliases, []string{"echo"}) || len(w.Disconnected()) != 0 {
		t.Fatalf("reconnect put src back on %+v (still disconnected: %v), want st_net at 10.5.0.3 with alias echo", got, w.Disconnected())
	}
	if !slices.Equal(w.LazyCancelled(), []string{"s1.src"}) {
		t.Fatalf("reconnect stopped the page servers of %v, want [s1.src] (before the source gets its addresses back)", w.LazyCancelled())
	}

	net2 := bus.NewNetwork()
	f := worker.NewFake("n1")
	startAgent(t, agent.Config{Bus: net2.Connect(), Worker: worker.Roles{Holder: f, Dumper: f, Inspector: f}})
	var none node.WaitLazyReply
	ask(t, net2.Connect(), node.WaitLazySubject("n1"), b, &none)
	if err := none.Err(); !errors.Is(err, node.ErrNoWorker) {
		t.Fatalf("wait-lazy on an agent without the post-copy role: %v, want node.ErrNoWorker", err)
	}
}
