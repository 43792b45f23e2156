package coordinator_test

// A post-copy migration whose coordinator is killed with -9 (docs/restore.md
// "Journal", docs/dataplane.md "Post-copy in `migrate`"). Subtest of TestIntegrationE2E,
// after MigrateEchoSameConnection (which leaves the echo stack restored in exact mode).

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

// postCopyCoordinatorKilled migrates the echo stack post-copy twice, each time
// killing the coordinator with -9 and starting it again, which recovers the migration
// from its journal. First once the restore began (its frozen sources, taken off their
// networks, serve the pages of the restore): the restore had most likely not
// completed, and the sources are put back where they were (had it completed, the
// migration is finished). Then once the restored containers were unlocked (journaled
// restored: the post-copy window, or just after it): the migration is finished, each
// source ended only after its last page. Each time the echo client runs on exactly one
// of the two nodes with its first connection (no gap, duplicate or reconnect), no hold
// is left on either node and no operation stays journaled. Then once more with
// --copy direct, killed once the restore began: put back or finished as well, and the
// next coordinator fills the page digests the target computed after the restore into
// the record (the digests live with the set on the target).
func (e *e2e) postCopyCoordinatorKilled(t *testing.T) {
	e.t = t
	from := ""
	for i := 1; i <= 3; i++ {
		if st, ok := e.echoStatus(e.node(i), "echo_client"); ok && st["healthy"] == true {
			from = e.node(i)
		}
	}
	if from == "" {
		t.Skip("SKIP INTEGRATION: no healthy echo client runs (MigrateEchoSameConnection deploys and migrates it first)")
	}
	to := e.node(1)
	if from == to {
		to = e.node(2)
	}
	on := e.postCopyKilledAt(t, from, to, "restoring", "")
	// Again, from where it runs now, killed in the post-copy window: finished.
	next := map[string]string{from: to, to: from}[on]
	on = e.killedAt(t, "post-copy", on, next, "unlocked", next)
	// A direct migration killed once its restore began: put back (sent back from the
	// target's sets) or finished, and the next coordinator fills the record's page
	// digests, which the target hashed after the restore.
	next = map[string]string{from: to, to: from}[on]
	e.killedAt(t, "direct", on, next, "restoring", "")
	out, code := e.ctl(20*time.Second, "ls", "echo", "--output", "json")
	var hs []store.Manifest
	if err := json.Unmarshal([]byte(out), &hs); code != 0 || err != nil || len(hs) == 0 {
		t.Fatalf("ls echo: exit %d %v\n%s", code, err, out)
	}
	id := hs[len(hs)-1].ID
	waitLong(t, "the killed direct migration's page digests recorded by the next coordinator", func() bool {
		m := e.manifest(id)
		direct := 0
		for _, c := range m.Containers {
			if c.Images == nil || c.Images.PagesPending || c.Images.PagesUnverified != "" {
				return false
			}
			if c.Direct {
				direct++
			}
		}
		return direct > 0
	})
}

// postCopyKilledAt migrates the echo stack post-copy from node from to node to, kills
// the coordinator with -9 once migrate printed line, starts it again and checks the
// recovery (want: the node the echo must run on afterwards; "" either). It returns the
// node the echo runs on.
func (e *e2e) postCopyKilledAt(t *testing.T, from, to, line, want string) string {
	t.Helper()
	return e.killedAt(t, "post-copy", from, to, line, want)
}

// killedAt is postCopyKilledAt with copy mode mode.
func (e *e2e) killedAt(t *testing.T, mode, from, to, line, want string) string {
	t.Helper()
	cmd := exec.Command(e.bin, "migrate", "echo", "--to", to, "--copy", mode, "--nats", e.nats, "--data-dir", e.dir)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, cmd, &out, line)
	_ = e.coord.Process.Kill()
	_ = cmd.Wait()
	t.Logf("migrate --copy %s %s -> %s, its coordinator killed once it printed %q:\n%s", mode, from, to, line, out.String())
	e.startCoordinator()
	waitLong(t, "the restarted coordinator recovered the migration (no operation journaled)", func() bool {
		o, code := e.ctl(10*time.Second, "status")
		return code == 0 && strings.Contains(o, "(none running)")
	})
	on := ""
	waitLong(t, "the echo client healthy on "+from+" or "+to, func() bool {
		for _, n := range []string{from, to} {
			if st, ok := e.echoStatus(n, "echo_client"); ok && st["healthy"] == true {
				on = n
				return true
			}
		}
		return false
	})
	other := map[string]string{from: to, to: from}[on]
	what := map[bool]string{true: "put back where they were (the restore had not completed)", false: "finished"}[on == from]
	t.Logf("after the recovery the echo runs on %s: %s", on, what)
	if want != "" && on != want {
		t.Errorf("after the recovery the echo runs on %s, want %s (the restore had completed: finished, not put back)", on, want)
	}
	t.Logf("the restarted coordinator's recovery:\n%s", grepLog(filepath.Join(e.dir, "coordinator.log"), "previous coordinator did not finish", "recover", mode, "pages"))
	e.echoSameConnection(t, on, "echo_client-1-")
	// The echo's own containers (not the network keepers a restore's pre-flight
	// started there, swarmckpt-keep-*, which end by themselves).
	running, err := e.dockerOn(other, "ps", "--format", "{{.Names}}")
	var echoes []string
	for _, n := range strings.Fields(running) {
		if strings.HasPrefix(n, "echo_") {
			echoes = append(echoes, n)
		}
	}
	if err != nil || len(echoes) > 0 {
		all, _ := e.dockerOn(other, "ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}} {{.CreatedAt}}")
		t.Errorf("echo containers still run on %s beside those on %s: %v (%v); all there:\n%s", other, on, echoes, err, all)
		logs, _ := filepath.Glob(filepath.Join(e.dir, "worker-"+other+"*.log"))
		for _, l := range logs {
			t.Logf("%s:\n%s", filepath.Base(l), grepLog(l, "restor", "remov", "echo_"))
		}
	}
	for _, n := range []string{from, to} {
		journal := watchdog.Journal{Dir: e.journalDir(n)}
		waitLong(t, "no hold journaled on "+n, func() bool {
			hs, err := journal.List()
			return err == nil && len(hs) == 0
		})
	}
	return on
}

// grepLog returns the lines of file that contain any of words (each cut to its last
// 400 characters).
func grepLog(file string, words ...string) string {
	b, _ := os.ReadFile(file)
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if slices.ContainsFunc(words, func(w string) bool { return strings.Contains(l, w) }) {
			keep = append(keep, tail(l, 400))
		}
	}
	return strings.Join(keep, "\n")
}
