package lab

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestExternalPlan(t *testing.T) {
	c := DefaultConfig()
	for _, k := range []int{1, 7, 250} {
		p := NewPlan(c, k)
		p.Daemons = planDaemons(p, "/bin/swarmckpt")
		x := planExternal(p, "/x")
		ports := x.ports()
		if len(ports) != 15 {
			t.Fatalf("k=%d: %d ports, want 15 (3 etcd x 2, 3 NATS x 3)", k, len(ports))
		}
		seen := map[int]bool{}
		for _, port := range ports {
			if seen[port] {
				t.Errorf("k=%d: port %d used twice", k, port)
			}
			seen[port] = true
			if port < externalBase(k) || port > externalBase(k)+14 || port >= 32768 {
				t.Errorf("k=%d: port %d outside %d..%d or in the ephemeral range", k, port, externalBase(k), externalBase(k)+14)
			}
		}
		// No other lab's external range overlaps, nor the lab's own daemon ports.
		if k > 1 && externalBase(k-1)+14 >= externalBase(k) {
			t.Errorf("k=%d: external ranges of subnets %d and %d overlap", k, k-1, k)
		}
		d := p.Daemons
		for _, own := range []int{d.GossipPort, d.NATSPort, d.EtcdPort, d.EtcdPeer, d.WorkerPort0 + 5, 24000 + 10*k + 3} {
			if seen[own] {
				t.Errorf("k=%d: external port %d collides with the lab's daemons", k, own)
			}
		}
	}
	p := NewPlan(c, 3)
	x := planExternal(p, "/x")
	if got := strings.Count(x.NATSURL(), "nats://127.0.0.1:"); got != 3 {
		t.Errorf("NATSURL %q: want 3 servers", x.NATSURL())
	}
	if eps := x.EtcdEndpoints(); len(eps) != 3 || !strings.HasPrefix(eps[0], "https://127.0.0.1:") {
		t.Errorf("etcd endpoints %v: want 3 https:// on loopback", eps)
	}
}

func TestExternalEtcdArgs(t *testing.T) {
	p := NewPlan(DefaultConfig(), 3)
	x := planExternal(p, "/x")
	args := x.etcdArgs("lab", 1, "ca.pem", "s.pem", "s-key.pem")
	flag := func(name string) string {
		i := slices.Index(args, name)
		if i < 0 || i+1 >= len(args) {
			t.Fatalf("etcd args lack %s: %v", name, args)
		}
		return args[i+1]
	}
	if flag("--name") != "lab-etcd-2" || flag("--data-dir") != "/x/lab-etcd-2" {
		t.Errorf("member 2 named %s with data %s", flag("--name"), flag("--data-dir"))
	}
	if ic := flag("--initial-cluster"); strings.Count(ic, "=https://127.0.0.1:") != 3 || !strings.Contains(ic, "lab-etcd-1=") {
		t.Errorf("--initial-cluster %q: want the 3 members over TLS", ic)
	}
	for _, f := range []string{"--cert-file", "--peer-cert-file", "--peer-trusted-ca-file"} {
		flag(f)
	}
	if !slices.Contains(args, "--peer-client-cert-auth") {
		t.Error("peers do not verify each other's certificates")
	}
	if !strings.HasPrefix(flag("--listen-client-urls"), "https://127.0.0.1:") {
		t.Errorf("client URL %s: want TLS on loopback", flag("--listen-client-urls"))
	}
}

func TestExternalNATSConfig(t *testing.T) {
	p := NewPlan(DefaultConfig(), 3)
	x := planExternal(p, "/x")
	conf := x.natsConfig("lab", 0, "ca.pem", "s.pem", "s-key.pem", "authorization {\n}\n")
	for _, want := range []string{
		`listen: "127.0.0.1:` + itoa(x.NATS[0].Port) + `"`,
		`"nats-route://127.0.0.1:` + itoa(x.NATS[1].PeerPort) + `"`,
		`"nats-route://127.0.0.1:` + itoa(x.NATS[2].PeerPort) + `"`,
		`ca_file: "ca.pem"`, `cert_file: "s.pem"`, "authorization {",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("NATS config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, `nats-route://127.0.0.1:`+itoa(x.NATS[0].PeerPort)) {
		t.Errorf("server 1 routes to itself:\n%s", conf)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
