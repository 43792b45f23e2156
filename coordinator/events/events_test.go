package events_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/natsbus"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/coordinator/events/eventstest"
)

// follower collects what events.Follow delivers.
type follower struct {
	mu  sync.Mutex
	got []events.Event
	bad []error
}

func (f *follower) seen() []events.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]events.Event(nil), f.got...)
}

func follow(t *testing.T, tr bus.Transport) *follower {
	t.Helper()
	f := &follower{}
	sub, err := events.Follow(tr, func(e events.Event) {
		f.mu.Lock()
		f.got = append(f.got, e)
		f.mu.Unlock()
	}, func(err error) {
		f.mu.Lock()
		f.bad = append(f.bad, err)
		f.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return f
}

func TestRecorderConformance(t *testing.T) {
	r := &events.Recorder{}
	eventstest.Publisher(t, r, r.Events)
}

func TestBusConformanceInMemory(t *testing.T) {
	n := bus.NewNetwork()
	f := follow(t, n.Connect())
	eventstest.Publisher(t, events.Bus{T: n.Connect()}, f.seen)
}

func TestBusConformanceNATS(t *testing.T) {
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ts [2]bus.Transport
	for i := range ts {
		tr, err := natsbus.Connect(ctx, natsbus.Config{URL: s.ClientURL(), Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		ts[i] = tr
	}
	f := follow(t, ts[0])
	// NATS subscriptions become active asynchronously: publish after a round trip.
	if _, err := ts[0].Request(ctx, "no.such.subject", nil); err == nil {
		t.Fatal("a request nobody serves was answered")
	}
	eventstest.Publisher(t, events.Bus{T: ts[1]}, f.seen)
}

// The log says what the stream says (Logged passes the event on unchanged).
func TestLoggedWritesTheLogAndPassesOn(t *testing.T) {
	var buf bytes.Buffer
	r := &events.Recorder{}
	p := events.Logged{Log: slog.New(slog.NewTextHandler(&buf, nil)), Next: r}
	e := events.Event{Kind: events.HoldTimedOut, Node: "n2", Container: "abc", Reason: "checkpoint did not finish in 9s"}
	if err := p.Publish(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	got := r.Events()
	if len(got) != 1 || got[0].Reason != e.Reason || got[0].At.IsZero() {
		t.Fatalf("passed on: %+v", got)
	}
	line := buf.String()
	for _, want := range []string{"level=WARN", "hold-timed-out", "node=n2", `reason=\"checkpoint did not finish in 9s\"`} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}
}

func TestFollowReportsUndecodable(t *testing.T) {
	n := bus.NewNetwork()
	f := follow(t, n.Connect())
	if err := n.Connect().Publish(context.Background(), events.Subject, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		f.mu.Lock()
		nb := len(f.bad)
		f.mu.Unlock()
		if nb == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("an undecodable message was not reported")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(f.seen()) != 0 {
		t.Fatalf("an undecodable message was delivered as an event: %+v", f.seen())
	}
}

func TestRecorderWait(t *testing.T) {
	r := &events.Recorder{}
	go func() { _ = r.Publish(context.Background(), events.Event{Kind: events.NodeLost, Node: "n3"}) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, ok := r.Wait(ctx, func(e events.Event) bool { return e.Kind == events.NodeLost })
	if !ok || e.Node != "n3" {
		t.Fatalf("Wait: %+v %v", e, ok)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, ok := r.Wait(ctx2, func(e events.Event) bool { return e.Kind == events.RolledBack }); ok {
		t.Fatal("Wait found an event never published")
	}
}
