package stack

import (
	"errors"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"
)

// restored is a standalone container an exact restore made for SERVICE.SLOT.
func restored(service string, slot int, node, id, ip string) Container {
	return Container{Service: service, Slot: slot, Node: node, ContainerID: id, Image: "swarmckpt/bank:dev",
		IPs: []string{ip}, Networks: []string{"bank_net"}, Aliases: map[string][]string{"bank_net": {"holder", service}}}
}

// After an exact restore the services are at 0 and the standalone containers are the
// stack: each counts as the SERVICE.SLOT it was restored as, on its node, with its IPs.
func TestBuildWithRestoredStandaloneContainers(t *testing.T) {
	services := []swarm.Service{svc("s1", "bank_holder", 0, swarm.ResolutionModeDNSRR), svc("s2", "bank_audit", 0, swarm.ResolutionModeDNSRR)}
	standalone := []Container{
		restored("bank_holder", 2, "lab-3", "c2", "10.10.0.3"),
		restored("bank_holder", 1, "lab-2", "c1", "10.10.0.2"),
		restored("bank_audit", 1, "lab-1", "c3", "10.10.0.4"),
	}
	if _, err := Build("bank", services, nil, nodes()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("without the restored containers: %v, want ErrNotFound (the dead end this fixes)", err)
	}
	st, err := BuildWith("bank", services, nil, nodes(), standalone)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range st.Containers {
		got = append(got, c.Key()+"@"+c.Node+"/"+c.ContainerID+"/"+strings.Join(c.IPs, ",")+"/"+c.ServiceID)
	}
	if want := "bank_audit.1@lab-1/c3/10.10.0.4/s2 bank_holder.1@lab-2/c1/10.10.0.2/s1 bank_holder.2@lab-3/c2/10.10.0.3/s1"; strings.Join(got, " ") != want {
		t.Fatalf("containers %v, want %s", got, want)
	}
	if a := st.Containers[1].Aliases["bank_net"]; strings.Join(a, ",") != "holder,bank_holder" {
		t.Errorf("aliases %v, want the restored container's", a)
	}
	if n := st.Nodes(); strings.Join(n, ",") != "lab-1,lab-2,lab-3" {
		t.Errorf("nodes %v", n)
	}
}

// A swarm task that runs for a slot wins over a standalone container of that slot (left
// out with a warning); one of a service the stack no longer has is left out too; two
// standalone containers of one slot are an error naming both.
func TestBuildWithStandaloneConflicts(t *testing.T) {
	services := []swarm.Service{svc("s1", "bank_holder", 1, swarm.ResolutionModeDNSRR)}
	tasks := []swarm.Task{task("t1", "s1", 1, "id-lab-1", "task-c1", "10.10.0.0/24", "10.10.0.9/24")}
	st, err := BuildWith("bank", services, tasks, nodes(), []Container{
		restored("bank_holder", 1, "lab-2", "old-c1", "10.10.0.2"),
		restored("bank_holder", 2, "lab-3", "c2", "10.10.0.3"),
		restored("bank_gone", 1, "lab-3", "c9", "10.10.0.8"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range st.Containers {
		keys = append(keys, c.Key()+"/"+c.ContainerID)
	}
	if strings.Join(keys, " ") != "bank_holder.1/task-c1 bank_holder.2/c2" {
		t.Fatalf("containers %v, want the task for slot 1 and the standalone container for slot 2", keys)
	}
	var warned []string
	for _, w := range st.Warnings {
		if strings.Contains(w.Object, "old-c1") || strings.Contains(w.Object, "c9") {
			warned = append(warned, w.String())
		}
	}
	if len(warned) != 2 || !strings.Contains(strings.Join(warned, "\n"), "docker rm -f old-c1") {
		t.Fatalf("warnings about the left-out containers: %q", warned)
	}

	_, err = BuildWith("bank", services[:1], nil, nodes(), []Container{
		restored("bank_holder", 1, "lab-2", "a1", "10.10.0.2"),
		restored("bank_holder", 1, "lab-3", "b1", "10.10.0.2"),
	})
	if err == nil || !strings.Contains(err.Error(), "a1 on lab-2") || !strings.Contains(err.Error(), "b1 on lab-3") {
		t.Fatalf("two containers for one slot: %v, want an error naming both", err)
	}
	// A stopped standalone container is left out, with a warning when nothing runs its
	// slot (a leftover next to a running one is not worth one).
	stopped := restored("bank_holder", 3, "lab-1", "c3", "10.10.0.4")
	stopped.State = "exited"
	leftover := restored("bank_holder", 2, "lab-1", "old-c2", "10.10.0.3")
	leftover.State = "exited"
	st, err = BuildWith("bank", services, tasks, nodes(), []Container{restored("bank_holder", 2, "lab-3", "c2", "10.10.0.3"), stopped, leftover})
	if err != nil || len(st.Containers) != 2 {
		t.Fatalf("with stopped standalone containers: %+v %v, want the task and c2", st, err)
	}
	var about []string
	for _, w := range st.Warnings {
		if strings.Contains(w.Object, "c3") || strings.Contains(w.Object, "old-c2") {
			about = append(about, w.String())
		}
	}
	if len(about) != 1 || !strings.Contains(about[0], "bank_holder.3") || !strings.Contains(about[0], "exited") {
		t.Fatalf("warnings about stopped containers %q, want one about bank_holder.3", about)
	}
	// A service at 1 replica whose only container is a standalone one is complete.
	if _, err := BuildWith("bank", services, nil, nodes(), []Container{restored("bank_holder", 1, "lab-2", "a1", "10.10.0.2")}); err != nil {
		t.Fatalf("standalone container standing for the service's one replica: %v", err)
	}
	if _, err := BuildWith("bank", services, nil, nodes(), []Container{restored("bank_holder", 0, "lab-2", "a1", "10.10.0.2")}); err == nil {
		t.Fatal("a restored container without a slot was accepted")
	}
}
