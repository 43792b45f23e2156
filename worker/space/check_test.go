package space

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestCheckRefusesWhatDoesNotFit(t *testing.T) {
	disk := Disk{Dir: "/var/lib/docker/swarmckpt/sets", Mount: "/var/lib/docker", Free: 600 << 20}
	dumps := []Dump{{Label: "bank_holder.1", Memory: 300 << 20}, {Label: "bank_holder.2", Memory: 200 << 20}, {Label: "web.1", Memory: -1}}
	// 300+30 + 200+20 + 0+16 = 566 MiB: fits in 600.
	if err := Check("lab-1", disk, dumps); err != nil {
		t.Fatalf("566 MiB in 600 MiB free: %v", err)
	}
	disk.Free = 500 << 20
	err := Check("lab-1", disk, dumps)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("566 MiB in 500 MiB free: err = %v, want one matching ENOSPC", err)
	}
	for _, want := range []string{"node lab-1: the dump of 3 containers needs about 566.0 MiB (593494016 bytes: bank_holder.1 300.0 MiB in memory, bank_holder.2 200.0 MiB in memory, web.1 memory unknown, plus 10%, at least 16.0 MiB each)",
		"the file system of /var/lib/docker/swarmckpt/sets (mounted at /var/lib/docker) has 500.0 MiB free (524288000 bytes)",
		"before anything was locked or frozen", "swarmckpt rm", "try again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q:\n%v", want, err)
		}
	}
}

func TestCheckEdges(t *testing.T) {
	if err := Check("n", Disk{Dir: "/d", Free: 0}, nil); err != nil {
		t.Errorf("no local dump must pass whatever the disk: %v", err)
	}
	if err := Check("n", Disk{Dir: "/d", Free: MarginMin}, []Dump{{Label: "a", Memory: 0}}); err != nil {
		t.Errorf("an exact fit must pass: %v", err)
	}
	if err := Check("n", Disk{Dir: "/d", Free: MarginMin - 1}, []Dump{{Label: "a", Memory: 0}}); err == nil {
		t.Error("one byte short must be refused")
	}
	if got := (Dump{Memory: 1 << 30}).Estimate(); got != 1<<30+(1<<30)/10 {
		t.Errorf("estimate of 1 GiB = %d, want 1 GiB + 10%%", got)
	}
	many := []Dump{{"a", 1 << 20}, {"b", 5 << 30}, {"c", 3 << 20}, {"d", 2 << 20}, {"e", 0}}
	err := Check("n", Disk{Dir: "/d", Free: 1 << 20}, many)
	if err == nil || !strings.Contains(err.Error(), "5 containers needs about 5.6 GiB (5978980352 bytes: b 5.0 GiB in memory, c 3.0 MiB in memory, d 2.0 MiB in memory, 2 more, plus") {
		t.Errorf("want the largest three named first: %v", err)
	}
	if err == nil || strings.Contains(err.Error(), "mounted at") {
		t.Errorf("no mount point known: none named: %v", err)
	}
}
