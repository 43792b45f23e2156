package lab

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Nodes = 0 }, "1 to 5"},
		{func(c *Config) { c.Nodes = 6 }, "1 to 5"},
		{func(c *Config) { c.Name = "Lab" }, "invalid"},
		{func(c *Config) { c.Name = "a-b" }, "invalid"},
		{func(c *Config) { c.Name = "waytoolongname" }, "invalid"},
	} {
		c := DefaultConfig()
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want error containing %q", c, err, tc.want)
		}
	}
}

func TestPlanLayout(t *testing.T) {
	c := DefaultConfig()
	c.Nodes = 3
	p := NewPlan(c, 7)
	if len(p.Nodes) != 3 || !p.Nodes[0].Manager || p.Nodes[1].Manager {
		t.Fatalf("want 3 nodes, first manager: %+v", p.Nodes)
	}
	seen := map[string]bool{}
	for i, n := range p.Nodes {
		if want := "lab-" + string(rune('1'+i)); n.Name != want {
			t.Errorf("node %d name %q, want %q", i, n.Name, want)
		}
		if !strings.HasPrefix(n.Addr, "10.231.7.") {
			t.Errorf("node %s addr %s not in 10.231.7.0/24", n.Name, n.Addr)
		}
		// Lab down removes p.DataDir: the node's temporary directory (containerd's
		// checkpoint leftovers) must be inside it, and the node's own.
		if !strings.HasPrefix(n.TmpDir(), p.DataDir+"/") || strings.HasPrefix(n.TmpDir(), n.DataRoot+"/") {
			t.Errorf("node %s temporary directory %s: want inside %s, beside (not in) its data root %s", n.Name, n.TmpDir(), p.DataDir, n.DataRoot)
		}
		for _, v := range []string{n.Addr, n.Socket, n.ExecRoot, n.DataRoot, n.RuncRoot, n.TmpDir()} {
			if seen[v] {
				t.Errorf("value %s shared by two nodes", v)
			}
			seen[v] = true
		}
		if !strings.HasPrefix(n.Socket, "/run/swarmckpt/lab/") || len(n.Socket) > 100 {
			t.Errorf("socket path %q must live under the lab run dir and fit a unix socket name", n.Socket)
		}
		if !strings.HasPrefix(n.RuncRoot, n.ExecRoot) {
			t.Errorf("runc root %s outside exec root %s", n.RuncRoot, n.ExecRoot)
		}
	}
}

func TestDaemonConfig(t *testing.T) {
	c := DefaultConfig()
	p := NewPlan(c, 1)
	for _, rt := range []string{"", "/usr/local/bin/swarmckpt-runtime"} {
		p.Runtime = rt
		b, err := p.DaemonConfig(p.Nodes[1])
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m["experimental"] != true {
			t.Errorf("experimental must be on (checkpoint needs it): %s", b)
		}
		if _, has := m["default-runtime"]; has != (rt != "") {
			t.Errorf("runtime %q: default-runtime presence wrong: %s", rt, b)
		}
	}
}

func TestFreeSubnet(t *testing.T) {
	k, err := FreeSubnet(map[int]bool{1: true, 2: true}, []string{"10.231.3.0/24", "192.168.0.0/16", "10.0.0.0/24"})
	if err != nil || k != 4 {
		t.Fatalf("FreeSubnet = %d, %v; want 4", k, err)
	}
	if _, err := FreeSubnet(nil, []string{"10.0.0.0/8"}); err == nil {
		t.Fatal("a host route covering 10.0.0.0/8 must be refused")
	}
	all := map[int]bool{}
	for i := 1; i <= 250; i++ {
		all[i] = true
	}
	if _, err := FreeSubnet(all, nil); err == nil || !strings.Contains(err.Error(), "lab down") {
		t.Fatalf("exhausted subnets: want error naming the fix, got %v", err)
	}
}

func TestOwnsNetns(t *testing.T) {
	for ns, want := range map[string]bool{"lab-1": true, "lab-sw": true, "lab-12": true, "lab-x": false, "lab2-1": false, "lab-": false, "other": false} {
		if got := ownsNetns("lab", ns); got != want {
			t.Errorf("ownsNetns(lab, %q) = %v, want %v", ns, got, want)
		}
	}
}

func TestComposeImages(t *testing.T) {
	imgs, err := ComposeImages([]byte("version: '3.8'\nservices:\n  a:\n    image: swarmckpt/echo:dev\n  b:\n    image: swarmckpt/echo:dev\n  c:\n    image: redis:7\n"))
	if err != nil || strings.Join(imgs, ",") != "redis:7,swarmckpt/echo:dev" {
		t.Fatalf("ComposeImages = %v, %v", imgs, err)
	}
	if _, err := ComposeImages([]byte("services:\n  a:\n    build: .\n")); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("service without image: want error naming it, got %v", err)
	}
	if tar, ok := ImageTar("/x", "swarmckpt/echo:dev"); !ok || tar != "/x/echo.tar" {
		t.Fatalf("ImageTar = %q %v", tar, ok)
	}
	if _, ok := ImageTar("/x", "redis:7"); ok {
		t.Fatal("third-party image must not map to a project tar")
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/a\040b`); got != "/a b" {
		t.Fatalf("unescapeMount = %q", got)
	}
}
