package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// TestIntegrationRecoveryLine: the bank, under its own transfer traffic, snapshotted
// several times with the uncoordinated algorithm; a plain restore of the newest is
// refused when its cut is inconsistent; `restore --recovery-line` restores a
// combination that the cut checker, run here on the image directories themselves
// (LocalVerifier: every sha256 and the TCP sequence numbers), finds consistent; and
// the bank's audit total holds on the restored stack. Own lab (setupE2E): run with
// SWARMCKPT_INTEGRATION=1 -run TestIntegrationRecoveryLine.
func TestIntegrationRecoveryLine(t *testing.T) {
	e := setupE2E(t)
	const n = 4
	var ids []string
	verdicts := map[string]string{}
	for i := range n {
		id := fmt.Sprintf("bank-unc-%d", i+1)
		out, code := e.ctl(2*time.Minute, "snapshot", "bank", "--id", id, "--algorithm", "uncoordinated")
		if code != 0 {
			t.Fatalf("snapshot %s: exit %d\n%s", id, code, out)
		}
		ids = append(ids, id)
		vout, _ := e.ctl(time.Minute, "inspect", id, "--verify")
		verdicts[id] = vout
		t.Logf("%s: %s", id, firstLine(vout, "cut check"))
		// Let the bank move money between the snapshots.
		time.Sleep(500 * time.Millisecond)
	}
	newest := ids[n-1]
	inconsistent := strings.Contains(verdicts[newest], "INCONSISTENT")

	out, code := e.ctl(5*time.Minute, "restore", newest)
	switch {
	case inconsistent && (code != 1 || !strings.Contains(out, "refused: nothing was changed") || !strings.Contains(out, "--recovery-line")):
		t.Fatalf("plain restore of the inconsistent %s: exit %d, want 1 with the refusal\n%s", newest, code, out)
	case inconsistent:
		t.Logf("plain restore refused as it should:\n%s", tail(out, 1500))
	case code != 0:
		t.Fatalf("plain restore of the consistent %s: exit %d\n%s", newest, code, out)
	default:
		t.Logf("LIMITED PROOF: %s was a consistent cut (inspect --verify), so the plain restore ran and the recovery line below starts from a restored stack", newest)
	}

	out, code = e.ctl(5*time.Minute, "restore", newest, "--recovery-line", "--output", "json")
	if code != 0 {
		t.Fatalf("restore --recovery-line: exit %d\n%s", code, out)
	}
	var res api.RestoreResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("restore result: %v\n%s", err, out)
	}
	t.Logf("recovery line: %s", res.CutCheck)
	if len(res.From) != 5 || !strings.Contains(res.CutCheck, "recovery line: consistent") {
		t.Fatalf("restore result lacks the line: %+v", res)
	}
	m := e.manifest(newest)
	if last := m.Restores[len(m.Restores)-1]; !last.OK || len(last.From) != 5 {
		t.Fatalf("restore record: %+v", last)
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
