package members

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// transports returns n member configs on one network.
type network func(t *testing.T, name string) Config

func mockNetwork() network {
	mn := &memberlist.MockNetwork{}
	return func(t *testing.T, name string) Config { return Config{Name: name, Transport: mn.NewTransport(name)} }
}

func realNetwork(t *testing.T, name string) Config { return Config{Name: name, Bind: "127.0.0.1:0"} }

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startN(t *testing.T, nw network, n int) []*Cluster {
	var cs []*Cluster
	for i := 0; i < n; i++ {
		cfg := nw(t, fmt.Sprintf("worker/n%d", i+1))
		cfg.Meta = Meta{Node: fmt.Sprintf("n%d", i+1), Role: "worker", WorkerAddr: fmt.Sprintf("127.0.0.1:70%02d", i), CRIUVersion: "4.2.1", Features: []string{"uffd-noncoop"}}
		if i > 0 {
			cfg.Join = []string{cs[0].Addr()}
		}
		c, err := Start(cfg)
		if err != nil {
			t.Fatalf("start %s: %v", cfg.Name, err)
		}
		cs = append(cs, c)
		t.Cleanup(func() { _ = c.Shutdown() })
	}
	return cs
}

// conformance runs against both networks.
func conformance(t *testing.T, nw network) {
	t.Run("JoinAndMeta", func(t *testing.T) {
		cs := startN(t, nw, 3)
		waitFor(t, "3 members everywhere", 10*time.Second, func() bool {
			for _, c := range cs {
				if len(c.Names()) != 3 {
					return false
				}
			}
			return true
		})
		m := cs[2].Members()["worker/n1"]
		if m.Node != "n1" || m.WorkerAddr != "127.0.0.1:7000" || m.CRIUVersion != "4.2.1" || m.Features[0] != "uffd-noncoop" {
			t.Fatalf("metadata of n1 seen by n3: %+v", m)
		}
	})
	t.Run("GracefulLeaveIsAnEvent", func(t *testing.T) {
		cs := startN(t, nw, 3)
		waitFor(t, "joined", 10*time.Second, func() bool { return len(cs[0].Names()) == 3 })
		if err := cs[2].Leave(2 * time.Second); err != nil {
			t.Fatalf("leave: %v", err)
		}
		waitFor(t, "leave event for n3", 10*time.Second, func() bool {
			for {
				select {
				case ev := <-cs[0].Events():
					if ev.Kind == Leave && ev.Meta.Node == "n3" {
						return true
					}
				default:
					return false
				}
			}
		})
	})
}

func TestMockNetworkConformance(t *testing.T) { conformance(t, mockNetwork()) }
func TestRealNetworkConformance(t *testing.T) { conformance(t, realNetwork) }

// A member that dies without a goodbye (kill -9) is detected by probes.
func TestRealNetworkDetectsDeath(t *testing.T) {
	cs := startN(t, realNetwork, 3)
	waitFor(t, "joined", 10*time.Second, func() bool { return len(cs[0].Names()) == 3 })
	start := time.Now()
	_ = cs[1].Shutdown()
	waitFor(t, "n2 declared dead", 30*time.Second, func() bool {
		for {
			select {
			case ev := <-cs[0].Events():
				if ev.Kind == Leave && ev.Meta.Node == "n2" {
					t.Logf("death of n2 detected after %s", time.Since(start).Round(time.Millisecond))
					return true
				}
			default:
				return false
			}
		}
	})
}

func TestMetaTooLarge(t *testing.T) {
	big := make([]string, 100)
	for i := range big {
		big[i] = "some-long-kernel-feature-name"
	}
	if _, err := Start(Config{Name: "x", Bind: "127.0.0.1:0", Meta: Meta{Features: big}}); err == nil {
		t.Fatal("oversized metadata accepted")
	}
}

func TestSuperseded(t *testing.T) {
	left := Event{Kind: Leave, Name: "worker/n2/1", Meta: Meta{Node: "n2", Role: "worker"}}
	for _, c := range []struct {
		name string
		live map[string]Meta
		want bool
	}{
		{"no one else", map[string]Meta{"coordinator/c": {Node: "c", Role: "coordinator"}}, false},
		{"a newer agent of the node", map[string]Meta{"worker/n2/2": {Node: "n2", Role: "worker"}}, true},
		{"the departed one still listed", map[string]Meta{"worker/n2/1": {Node: "n2", Role: "worker"}}, false},
		{"an agent of another node", map[string]Meta{"worker/n3/1": {Node: "n3", Role: "worker"}}, false},
		{"another role on the node", map[string]Meta{"coordinator/n2": {Node: "n2", Role: "coordinator"}}, false},
	} {
		if got := Superseded(c.live, left); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// Two real memberlist instances on loopback with the same key gossip; a member with
// another key, or none, cannot join.
func TestGossipKey(t *testing.T) {
	dir := t.TempDir()
	key, err := LoadOrCreateKey(dir + "/gossip.key")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir + "/gossip.key"); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("gossip.key: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	again, err := LoadOrCreateKey(dir + "/gossip.key")
	if err != nil || !bytes.Equal(again, key) {
		t.Fatalf("the key was not kept: %v", err)
	}
	start := func(name string, k []byte, join ...string) (*Cluster, error) {
		c, err := Start(Config{Name: name, Bind: "127.0.0.1:0", Key: k, Join: join, Meta: Meta{Node: name, Role: "worker"}})
		if err == nil {
			t.Cleanup(func() { _ = c.Shutdown() })
		}
		return c, err
	}
	a, err := start("coordinator/a", key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := start("worker/b", key, a.Addr())
	if err != nil {
		t.Fatalf("a member with the key cannot join: %v", err)
	}
	waitFor(t, "both members on both sides", 10*time.Second, func() bool { return len(a.Names()) == 2 && len(b.Names()) == 2 })
	other := bytes.Repeat([]byte{7}, 32)
	if _, err := start("worker/other-key", other, a.Addr()); err == nil {
		t.Error("a member with another key joined")
	}
	if _, err := start("worker/no-key", nil, a.Addr()); err == nil {
		t.Error("a member without the key joined")
	}
	if n := a.Names(); len(n) != 2 {
		t.Errorf("members after the refused joins: %v; want only a and b", n)
	}
}
