package bustest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

// Factory returns two independent connections to the same message network. The
// suite closes them.
type Factory func(t *testing.T) (a, b bus.Transport)

// Run runs the conformance suite.
func Run(t *testing.T, newPair Factory) {
	t.Run("PublishReachesMatchingSubscribers", func(t *testing.T) { testPublish(t, newPair) })
	t.Run("OrderPerSender", func(t *testing.T) { testOrder(t, newPair) })
	t.Run("RequestReply", func(t *testing.T) { testRequest(t, newPair) })
	t.Run("NoResponders", func(t *testing.T) { testNoResponders(t, newPair) })
	t.Run("Deadline", func(t *testing.T) { testDeadline(t, newPair) })
	t.Run("Unsubscribe", func(t *testing.T) { testUnsubscribe(t, newPair) })
	t.Run("BadSubject", func(t *testing.T) { testBadSubject(t, newPair) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, newPair) })
}

type collector struct {
	mu   sync.Mutex
	msgs []string
}

func (c *collector) handle(m *bus.Msg) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m.Subject+"="+string(m.Data))
	c.mu.Unlock()
}

func (c *collector) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

func pair(t *testing.T, f Factory) (bus.Transport, bus.Transport) {
	a, b := f(t)
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}

// barrier makes sure subscriptions made on sub are active for publishes from pub: it
// round-trips a request through a probe subscription on sub.
func barrier(t *testing.T, sub, pub bus.Transport) {
	t.Helper()
	probe := fmt.Sprintf("bustest.probe.%d", time.Now().UnixNano())
	s, err := sub.Subscribe(probe, func(m *bus.Msg) { _ = m.Respond([]byte("ok")) })
	if err != nil {
		t.Fatalf("subscribe probe: %v", err)
	}
	defer s.Unsubscribe()
	waitFor(t, "probe reply", func() bool {
		_, err := pub.Request(ctx(t, time.Second), probe, nil)
		return err == nil
	})
}

func testPublish(t *testing.T, f Factory) {
	a, b := pair(t, f)
	var exact, star, tail, other collector
	for subj, c := range map[string]*collector{
		"node.n1.cmd": &exact, "node.*.cmd": &star, "node.>": &tail, "node.n2.cmd": &other,
	} {
		if _, err := b.Subscribe(subj, c.handle); err != nil {
			t.Fatalf("subscribe %s: %v", subj, err)
		}
	}
	barrier(t, b, a)
	if err := a.Publish(ctx(t, time.Second), "node.n1.cmd", []byte("x")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if err := a.Publish(ctx(t, time.Second), "node.n1.cmd.extra", []byte("y")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitFor(t, "deliveries", func() bool {
		return len(exact.get()) == 1 && len(star.get()) == 1 && len(tail.get()) == 2
	})
	// Give a wrong delivery a chance to show up before asserting there was none.
	barrier(t, b, a)
	if got := other.get(); len(got) != 0 {
		t.Fatalf("node.n2.cmd received %v", got)
	}
	if got := exact.get(); got[0] != "node.n1.cmd=x" {
		t.Fatalf("exact got %v", got)
	}
	if got := star.get(); len(got) != 1 {
		t.Fatalf("'*' must match one token only, got %v", got)
	}
}

func testOrder(t *testing.T, f Factory) {
	a, b := pair(t, f)
	var c collector
	if _, err := b.Subscribe("order.test", c.handle); err != nil {
		t.Fatal(err)
	}
	barrier(t, b, a)
	const n = 200
	for i := range n {
		if err := a.Publish(ctx(t, time.Second), "order.test", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all messages", func() bool { return len(c.get()) == n })
	for i, m := range c.get() {
		if want := fmt.Sprintf("order.test=%d", i); m != want {
			t.Fatalf("message %d: got %q want %q", i, m, want)
		}
	}
}

func testRequest(t *testing.T, f Factory) {
	a, b := pair(t, f)
	if _, err := b.Subscribe("svc.echo", func(m *bus.Msg) {
		if !m.IsRequest() {
			return
		}
		_ = m.Respond(append([]byte("re:"), m.Data...))
	}); err != nil {
		t.Fatal(err)
	}
	barrier(t, b, a)
	got, err := a.Request(ctx(t, 2*time.Second), "svc.echo", []byte("hi"))
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if string(got) != "re:hi" {
		t.Fatalf("reply %q, want re:hi", got)
	}
}

func testNoResponders(t *testing.T, f Factory) {
	a, _ := pair(t, f)
	start := time.Now()
	_, err := a.Request(ctx(t, 3*time.Second), "nobody.home", []byte("x"))
	if !errors.Is(err, bus.ErrNoResponders) {
		t.Fatalf("err = %v, want ErrNoResponders", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("no-responders took %s: must not wait for the deadline", time.Since(start))
	}
}

func testDeadline(t *testing.T, f Factory) {
	a, b := pair(t, f)
	release := make(chan struct{})
	defer close(release)
	if _, err := b.Subscribe("svc.slow", func(m *bus.Msg) { <-release }); err != nil {
		t.Fatal(err)
	}
	barrier(t, b, a)
	start := time.Now()
	_, err := a.Request(ctx(t, 200*time.Millisecond), "svc.slow", nil)
	if !errors.Is(err, bus.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el < 150*time.Millisecond || el > 3*time.Second {
		t.Fatalf("deadline of 200ms returned after %s", el)
	}
}

func testUnsubscribe(t *testing.T, f Factory) {
	a, b := pair(t, f)
	s, err := b.Subscribe("svc.gone", func(m *bus.Msg) { _ = m.Respond([]byte("here")) })
	if err != nil {
		t.Fatal(err)
	}
	barrier(t, b, a)
	if _, err := a.Request(ctx(t, time.Second), "svc.gone", nil); err != nil {
		t.Fatalf("before unsubscribe: %v", err)
	}
	if err := s.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no responders after unsubscribe", func() bool {
		_, err := a.Request(ctx(t, time.Second), "svc.gone", nil)
		return errors.Is(err, bus.ErrNoResponders)
	})
}

func testBadSubject(t *testing.T, f Factory) {
	a, _ := pair(t, f)
	for _, s := range []string{"", "a..b", "a.*", "a.>", "a b"} {
		if err := a.Publish(ctx(t, time.Second), s, nil); !errors.Is(err, bus.ErrBadSubject) {
			t.Errorf("publish %q: err = %v, want ErrBadSubject", s, err)
		}
	}
	if _, err := a.Subscribe("a.>.b", func(*bus.Msg) {}); !errors.Is(err, bus.ErrBadSubject) {
		t.Errorf("subscribe a.>.b: err = %v, want ErrBadSubject", err)
	}
}

func testClosed(t *testing.T, f Factory) {
	a, b := pair(t, f)
	var c collector
	if _, err := b.Subscribe("closing", c.handle); err != nil {
		t.Fatal(err)
	}
	barrier(t, b, a)
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := b.Publish(ctx(t, time.Second), "closing", nil); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("publish after close: %v, want ErrClosed", err)
	}
	if _, err := b.Subscribe("x", c.handle); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("subscribe after close: %v, want ErrClosed", err)
	}
	// The closed connection's subscriptions are gone for everyone else.
	waitFor(t, "closed connection's subscriptions gone", func() bool {
		_, err := a.Request(ctx(t, time.Second), "closing", nil)
		return errors.Is(err, bus.ErrNoResponders)
	})
}
