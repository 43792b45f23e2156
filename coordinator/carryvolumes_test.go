package coordinator_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// A snapshot or migration asked to carry volumes asks every node to carry them in its
// dumps (node.Target.CarryVolumes) and records it in the manifest; one not asked
// does not.
func TestCarryVolumesReachesEveryDump(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	carried := func(e *env) (n int) {
		for i, node := range bankNodes {
			if e.execs[node].CarriedVolumes(fmt.Sprintf("ctr%d", i+1)) {
				n++
			}
		}
		return n
	}

	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	if _, err := e.snapshot("plain"); err != nil {
		t.Fatal(err)
	}
	if n := carried(e); n != 0 {
		t.Fatalf("%d dumps carried volumes without being asked", n)
	}
	res, err := api.Call[api.SnapshotResult](ctx, e.client, api.OpSnapshot, api.SnapshotRequest{ID: "vols", Stack: "bank", CarryVolumes: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := carried(e); n != 5 || !res.Snapshot.CarryVolumes {
		t.Fatalf("%d of 5 dumps asked to carry volumes, manifest says %v", n, res.Snapshot.CarryVolumes)
	}

	m, _ := newMigrateEnv(t)
	if _, err := m.svc.Migrate(ctx, api.MigrateRequest{ID: "mig-vols", Stack: "bank", To: "lab-3", Algorithm: "blocking", WholeStack: true, CarryVolumes: true}); err != nil {
		t.Fatal(err)
	}
	if n := carried(m); n != 5 {
		t.Fatalf("migration: %d of 5 dumps asked to carry volumes", n)
	}
}

// The pre-flight asks a target node about the volumes a set carries (each must be
// missing there, or empty) only when the set is restored away from its own node.
func TestCarriedVolumesForThePreflight(t *testing.T) {
	c := store.Container{Service: "db", Slot: 1, Node: "lab-1", Images: &store.ImageSet{Files: []store.File{
		{Name: "pages-1.img"}, {Name: "volume-db_data.tar"}, {Name: "rootfs-diff.tar"}, {Name: "volume-db_logs.tar"}}}}
	if got := coordinator.CarriedVolumes(c, "lab-2"); !slices.Equal(got, []string{"db_data", "db_logs"}) {
		t.Errorf("restored on lab-2: %q, want db_data and db_logs", got)
	}
	if got := coordinator.CarriedVolumes(c, "lab-1"); got != nil {
		t.Errorf("restored on its own node: %q, want none (its volumes are used as they are)", got)
	}
	c.Images = nil
	if got := coordinator.CarriedVolumes(c, "lab-2"); got != nil {
		t.Errorf("no images: %q", got)
	}
}
