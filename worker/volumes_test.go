package worker

import (
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// A set whose container mounts a local named volume is refused for another node, with
// the volume and the fix named; on its own node, for other volume drivers, binds and
// tmpfs mounts nothing is said.
func TestLocalVolumeProblems(t *testing.T) {
	m := &imageset.Manifest{Node: "n1", Spec: container.Spec{Name: "db_etcd.1.x", Mounts: []container.Mount{
		{Type: "volume", Source: "db_data", Target: "/var/lib/etcd"},
		{Type: "volume", Source: "shared", Target: "/shared", Driver: "nfs"},
		{Type: "bind", Source: "/srv", Target: "/srv"},
		{Type: "tmpfs", Target: "/run"},
		{Type: "volume", Source: "db_logs", Target: "/logs", Driver: "local"},
	}}}
	got := localVolumeProblems(m, "etcd.1", "n2")
	if len(got) != 2 {
		t.Fatalf("problems %q, want one per local volume (db_data, db_logs)", got)
	}
	for i, vol := range []string{"db_data at /var/lib/etcd", "db_logs at /logs"} {
		for _, want := range []string{"etcd.1: mounts the local volume " + vol + " on node n1", "restored on node n2", "--node etcd.1=n1"} {
			if !strings.Contains(got[i], want) {
				t.Errorf("problem %q lacks %q", got[i], want)
			}
		}
	}
	if p := localVolumeProblems(m, "etcd.1", "n1"); len(p) != 0 {
		t.Errorf("restore on the container's own node refused: %q", p)
	}
	if p := localVolumeProblems(m, "", "n2"); len(p) != 2 || !strings.HasPrefix(p[0], "db_etcd.1.x: ") {
		t.Errorf("without a key the container is named by its name: %q", p)
	}
}

// A volume the set carries (snapshot --carry-volumes) is not a problem elsewhere: the
// restore recreates it; one it does not carry still is.
func TestCarriedVolumeIsNoProblem(t *testing.T) {
	m := &imageset.Manifest{Node: "n1", Volumes: []imageset.Volume{{Name: "db_data", Target: "/var/lib/etcd"}},
		Spec: container.Spec{Name: "db_etcd.1.x", Mounts: []container.Mount{
			{Type: "volume", Source: "db_data", Target: "/var/lib/etcd"},
			{Type: "volume", Source: "db_logs", Target: "/logs"},
		}}}
	got := localVolumeProblems(m, "etcd.1", "n2")
	if len(got) != 1 || !strings.Contains(got[0], "db_logs") || !strings.Contains(got[0], "--carry-volumes") {
		t.Fatalf("problems %q, want only db_logs's, naming --carry-volumes", got)
	}
}
