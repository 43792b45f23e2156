package coordinator_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
)

// TestIntegrationRecoveryLine: the bank, under its own transfer traffic, snapshotted
// with the uncoordinated algorithm until a snapshot (not the first) is an inconsistent
// cut; the live bank's audit holds; a plain restore of that snapshot is refused; `restore --recovery-line` restores a
// combination that the cut checker, run here on the image directories themselves
// (LocalVerifier: every sha256 and the TCP sequence numbers), finds consistent; and
// the bank's audit total holds on the restored stack. Own lab (setupE2E): run with
// SWARMCKPT_INTEGRATION=1 -run TestIntegrationRecoveryLine.
func TestIntegrationRecoveryLine(t *testing.T) {
	e := setupE2E(t)
	// Snapshot until one that is not the first is an inconsistent cut (a line then has
	// older snapshots to go back to), at most 10.
	const most = 10
	var ids []string
	target := ""
	for i := range most {
		id := fmt.Sprintf("bank-unc-%d", i+1)
		out, code := e.ctl(2*time.Minute, "snapshot", "bank", "--id", id, "--algorithm", "uncoordinated")
		if code != 0 {
			t.Fatalf("snapshot %s: exit %d\n%s", id, code, out)
		}
		ids = append(ids, id)
		vout, _ := e.ctl(time.Minute, "inspect", id, "--verify")
		t.Logf("%s: %s", id, firstLine(vout, "cut check"))
		if i > 0 && strings.Contains(vout, "INCONSISTENT") {
			target = id
			break
		}
		// Let the bank move money between the snapshots.
		time.Sleep(500 * time.Millisecond)
	}
	if q, ok := e.bankOK(); !ok {
		t.Fatalf("bank audit of the live stack after %d uncoordinated snapshots failed:\n%s", len(ids), q)
	}
	if target == "" {
		// Not a failure of the restore: the traffic did not produce an inconsistent
		// cut. The line is then the newest snapshot itself (checked below).
		target = ids[len(ids)-1]
		t.Logf("LIMITED PROOF: none of %d uncoordinated snapshots after the first was an inconsistent cut; the recovery line of %s has nothing to roll back", most-1, target)
	} else {
		out, code := e.ctl(5*time.Minute, "restore", target)
		if code != 1 || !strings.Contains(out, "refused: nothing was changed") || !strings.Contains(out, "--recovery-line") {
			t.Fatalf("plain restore of the inconsistent %s: exit %d, want 1 with the refusal\n%s", target, code, out)
		}
		t.Logf("plain restore refused as it should:\n%s", tail(out, 1500))
	}
	newest := target

	out, code := e.ctl(5*time.Minute, "restore", newest, "--recovery-line")
	if code != 0 {
		t.Fatalf("restore --recovery-line: exit %d\n%s", code, out)
	}
	t.Logf("restore --recovery-line:\n%s", tail(out, 4000))
	m := e.manifest(newest)
	if len(m.Restores) == 0 {
		t.Fatalf("restore not recorded")
	}
	res := m.Restores[len(m.Restores)-1]
	if !res.OK || len(res.From) != 5 || !strings.Contains(res.CutCheck, "recovery line: consistent") || !strings.Contains(out, "cut: recovery line: consistent") {
		t.Fatalf("restore record lacks the line: %+v", res)
	}
	// The chosen combination, checked independently from the image directories (the
	// lab's nodes share this machine's file system; the sets stay on their dumping
	// nodes, the restore moved copies elsewhere).
	combo := &store.Manifest{ID: newest + "-line"}
	for k, from := range res.From {
		sm := e.manifest(from)
		for _, c := range sm.Containers {
			if c.Key() == k {
				combo.Containers = append(combo.Containers, c)
			}
		}
	}
	v := coordinator.LocalVerifier(context.Background(), combo)
	if v.Error != "" || !v.Consistent {
		t.Fatalf("the recovery line's images are not a consistent cut: %+v", v)
	}
	t.Logf("local check of the chosen images: %s", v.Summary)
	cmd := exec.Command("docker", "run", "--rm", "--network", "bank_net", "swarmckpt/bank:dev", "query", "--settle", "2m",
		"--service", "holder", "--count", "5")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.docker(e.name+"-1"))
	qout, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bank audit after the recovery-line restore failed (money lost or created):\n%s", tail(string(qout), 2500))
	}
	t.Logf("bank audit: %s", tail(string(qout), 400))
}

func firstLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, prefix) {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(tail(s, 200))
}
