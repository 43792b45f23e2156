package coordinator_test

import (
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// hostBusybox resolves names in a container's network namespace (its nslookup asks
// the node's embedded DNS at 127.0.0.11 there): no container is started for it, so
// the check does not change which nodes are on the network.
const hostBusybox = "/bin/busybox"

var nsAddr = regexp.MustCompile(`(?m)^Address(?: \d+)?:\s+(\d+\.\d+\.\d+\.\d+)\s*$`)

// resolveOn resolves name through the embedded DNS of node, asked from the network
// namespace of container id (running there), and returns the IPv4 addresses, sorted.
func (e *e2e) resolveOn(node, id, name string) ([]string, error) {
	pid, err := e.dockerOn(node, "inspect", "-f", "{{.State.Pid}}", id)
	if err != nil || pid == "0" {
		return nil, fmt.Errorf("pid of %.12s on %s: %v %q", id, node, err, pid)
	}
	b, err := exec.Command("nsenter", "-n", "-t", pid, hostBusybox, "nslookup", "-type=a", name, "127.0.0.11").CombinedOutput()
	out := string(b)
	// nslookup exits 1 when it finds no address: that is an answer (none).
	if err != nil && !strings.Contains(out, "NXDOMAIN") && !strings.Contains(out, "can't find") {
		return nil, fmt.Errorf("nslookup %s in %.12s on %s: %v: %s", name, id, node, err, out)
	}
	_, answer, _ := strings.Cut(out, "Name:")
	var ips []string
	for _, m := range nsAddr.FindAllStringSubmatch(answer, -1) {
		ips = append(ips, m[1])
	}
	slices.Sort(ips)
	return slices.Compact(ips), nil
}

// ipsOf is the addresses on network of the containers ids (node -> IDs), sorted.
func (e *e2e) ipsOf(t *testing.T, network string, ids map[string][]string) []string {
	t.Helper()
	var ips []string
	for node, list := range ids {
		for _, id := range list {
			ip, err := e.dockerOn(node, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+network+"\").IPAddress}}", id)
			if err != nil || ip == "" {
				t.Fatalf("address of %.12s on %s on %s: %v %q", id, network, node, err, ip)
			}
			ips = append(ips, ip)
		}
	}
	slices.Sort(ips)
	return ips
}

// networkDBView is what node's network DB holds for network: the nodes it sees on the
// network (Peers) and the endpoints it knows (Services), from docker network inspect
// --verbose.
func (e *e2e) networkDBView(node, network string) string {
	out, err := e.dockerOn(node, "network", "inspect", "--verbose", "-f", "peers={{json .Peers}} services={{json .Services}}", network)
	if err != nil {
		return fmt.Sprintf("%s: docker network inspect --verbose: %v: %s", node, err, out)
	}
	return node + ": " + out
}

// nameResolvesEverywhere requires that name resolves on every node to exactly the
// addresses of the containers ids (node -> IDs) on every node running one of them,
// polling for up to bound; it returns how long that took. On a miss it logs what each
// node's network DB holds.
func (e *e2e) nameResolvesEverywhere(t *testing.T, network, name string, ids map[string][]string, bound time.Duration) time.Duration {
	t.Helper()
	want := e.ipsOf(t, network, ids)
	start := time.Now()
	logged := false
	for {
		var misses []string
		for node, list := range ids {
			got, err := e.resolveOn(node, list[0], name)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				misses = append(misses, fmt.Sprintf("%s resolves %s to %v", node, name, got))
			}
		}
		took := time.Since(start)
		if len(misses) == 0 {
			return took
		}
		if !logged || took > bound {
			var views []string
			for i := 1; i <= 3; i++ {
				views = append(views, e.networkDBView(e.node(i), network))
			}
			t.Logf("after %.1f s, want %v on every node: %s\nnetwork DBs:\n%s", took.Seconds(), want, strings.Join(misses, "; "), strings.Join(views, "\n"))
			logged = true
		}
		if took > bound {
			t.Errorf("%s does not resolve to every restored container (%v) on every node %.1f s after the restore: %s",
				name, want, took.Seconds(), strings.Join(misses, "; "))
			return took
		}
		time.Sleep(200 * time.Millisecond)
	}
}
