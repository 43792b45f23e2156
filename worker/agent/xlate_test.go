package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"testing"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/agent"
)

// OpXlate translates in every named container; one that cannot is named in Failed,
// and addresses that are no IPs are refused as a whole.
func TestAgentXlate(t *testing.T) {
	net := bus.NewNetwork()
	f := worker.NewFake("n1")
	startAgent(t, agent.Config{Bus: net.Connect(), Worker: f.Roles()})
	conn := net.Connect()
	old := netip.MustParseAddr("10.0.1.5")
	for _, c := range []string{"a", "b"} {
		f.SetXlateInUse(c, old, true)
	}
	var rep node.XlateReply
	b, _ := json.Marshal(node.XlateRequest{Containers: []string{"a", "b"}, Old: "10.0.1.5", New: "10.0.1.9"})
	ask(t, conn, node.XlateSubject("n1"), b, &rep)
	if err := rep.Err(); err != nil || len(rep.Failed) != 0 {
		t.Fatalf("xlate: %+v %v", rep.Failed, err)
	}
	ts, _ := f.Translations(context.Background())
	if len(ts) != 2 || ts[0].ContainerID != "a" || ts[1].ContainerID != "b" || ts[0].New != netip.MustParseAddr("10.0.1.9") {
		t.Fatalf("translations %+v, want 10.0.1.5 -> 10.0.1.9 in a and b", ts)
	}
	// OpXlates lists what the worker keeps; b's translation, no longer in use, is
	// removed by then.
	f.SetXlateInUse("b", old, false)
	var kept node.XlatesReply
	ask(t, conn, node.XlatesSubject("n1"), []byte(`{}`), &kept)
	if err := kept.Err(); err != nil || len(kept.Translations) != 1 || kept.Translations[0].Container != "a" ||
		kept.Translations[0].Old != "10.0.1.5" || kept.Translations[0].New != "10.0.1.9" || kept.Translations[0].Since.IsZero() {
		t.Fatalf("xlates: %+v %v, want only a's 10.0.1.5 -> 10.0.1.9", kept.Translations, err)
	}
	rep = node.XlateReply{}
	b, _ = json.Marshal(node.XlateRequest{Containers: []string{"a"}, Old: "10.0.1.6", New: "10.0.1.9"})
	ask(t, conn, node.XlateSubject("n1"), b, &rep)
	if rep.Err() != nil || rep.Failed["a"] == "" {
		t.Fatalf("xlate of a second address to the same new one: %+v %v, want a failed", rep.Failed, rep.Err())
	}
	rep = node.XlateReply{}
	b, _ = json.Marshal(node.XlateRequest{Containers: []string{"a"}, Old: "nope", New: "10.0.1.9"})
	ask(t, conn, node.XlateSubject("n1"), b, &rep)
	if !errors.Is(rep.Err(), node.ErrInvalidArgument) {
		t.Fatalf("xlate of a bad address: %v, want ErrInvalidArgument", rep.Err())
	}
}
