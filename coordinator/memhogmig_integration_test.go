package coordinator_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/deploy/lab"
)

// memhogChecksum is the part of memhog's /checksum a restore must keep.
type memhogChecksum struct {
	SHA256   string `json:"sha256"`
	Writes   uint64 `json:"writes"`
	MiB      int    `json:"mib"`
	Paused   bool   `json:"paused"`
	Instance string `json:"instance"`
}

// memhogOn finds the one running memhog container of the memhog stack (its swarm task
// or the standalone container a migration restored): node and ID.
func (e *e2e) memhogOn(t *testing.T) (string, string) {
	t.Helper()
	var node, id string
	for i := 1; i <= 3; i++ {
		out, err := e.dockerOn(e.node(i), "ps", "-q", "--no-trunc", "--filter", "name=memhog_memhog")
		if err != nil {
			t.Fatalf("docker ps on %s: %v: %s", e.node(i), err, out)
		}
		for _, f := range strings.Fields(out) {
			if id != "" {
				t.Fatalf("two running memhog containers: %s on %s and %s on %s", id, node, f, e.node(i))
			}
			node, id = e.node(i), f
		}
	}
	if id == "" {
		t.Fatalf("no running memhog container on any node")
	}
	return node, id
}

// memhogGet runs `/memhog get PATH` in container id on node and decodes its JSON.
func (e *e2e) memhogGet(t *testing.T, node, id, path string, v any) {
	t.Helper()
	out, err := e.dockerOn(node, "exec", id, "/memhog", "get", path)
	if err != nil {
		t.Fatalf("memhog %s in %s on %s: %v: %s", path, id, node, err, out)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("memhog %s in %s on %s: %v: %s", path, id, node, err, out)
		}
	}
}

// migrateMemhogKeepsChecksum: a 256 MiB memhog (deploy/examples/memhog.yml, 5% of its
// memory rewritten per second) migrates once with each copy mode of `swarmckpt
// migrate` (swarm mode direct, its swarm task moved through the drain hold; streamed
// from its swarm task; then direct and post-copy, which move standalone containers),
// and keeps every byte: with its writer paused, the checksum
// of its whole memory after the migration equals the one before (same sha256, same
// number of writes, same process: its instance id), and /verify finds the memory to
// be exactly what its own counters say. Post-copy's checksum reads every page, so the
// ones still on the source are fetched too.
func (e *e2e) migrateMemhogKeepsChecksum(t *testing.T) {
	e.t = t
	images, _ := lab.ImageDirForTests()
	if out, code := e.run(3*time.Minute, "lab", "deploy", "--name", e.name, "--images", images,
		filepath.Join(repoRoot(), "deploy", "examples", "memhog.yml"), "memhog"); code != 0 {
		t.Fatalf("lab deploy memhog: %s", out)
	}
	t.Cleanup(func() {
		_, _ = e.dockerOn(e.node(1), "stack", "rm", "memhog")
		for n, ids := range e.restoredOf("memhog_memhog", true) {
			_, _ = e.dockerOn(n, append([]string{"rm", "-f"}, ids...)...)
		}
	})
	waitLong(t, "memhog filled its memory", func() bool {
		for i := 1; i <= 3; i++ {
			id, _ := e.dockerOn(e.node(i), "ps", "-q", "--filter", "name=memhog_memhog")
			if id == "" {
				continue
			}
			if out, err := e.dockerOn(e.node(i), "exec", strings.Fields(id)[0], "/memhog", "get", "/healthz"); err == nil && strings.Contains(out, "ok") {
				return true
			}
		}
		return false
	})
	// swarm-direct first, while memhog is a swarm task: `--mode swarm --copy direct
	// --from NODE` moves the task through the drain hold, its held stop dumped straight
	// into the node swarm placed the replacement on (docs/drain.md "Copy modes of the
	// drain hold"); it stays a swarm task, which the streamed move then takes from.
	for _, mode := range []string{"swarm-direct", "streamed", "direct", "post-copy"} {
		from, id := e.memhogOn(t)
		// The next node in the lab's order.
		to := e.node(1)
		for i := 1; i <= 3; i++ {
			if e.node(i) == from {
				to = e.node(i%3 + 1)
			}
		}
		var before, after memhogChecksum
		e.memhogGet(t, from, id, "/pause", nil)
		e.memhogGet(t, from, id, "/checksum", &before)
		if before.MiB != 256 || before.SHA256 == "" || !before.Paused {
			t.Fatalf("memhog's checksum before the migration: %+v, want 256 MiB, a sha256, paused", before)
		}
		args, copyMode := []string{"migrate", "memhog", "--to", to, "--copy", mode}, mode
		if mode == "swarm-direct" {
			args, copyMode = []string{"migrate", "memhog", "--mode", "swarm", "--copy", "direct", "--from", from}, "direct"
		}
		t0 := time.Now()
		hashedBefore := e.workerLogCount("received pages hashed after the restore")
		out, code := e.ctl(5*time.Minute, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		took := time.Since(t0)
		if !strings.Contains(out, "(copy: "+copyMode+")") {
			t.Errorf("%s did not migrate with copy %s:\n%s", strings.Join(args, " "), copyMode, out)
		}
		if mode == "post-copy" && !strings.Contains(out, "last page of its memory arrived") {
			t.Errorf("migrate --copy post-copy did not say when the last page arrived:\n%s", out)
		}
		if mode == "swarm-direct" {
			if !strings.Contains(out, "moved memhog_memhog slot 1 to ") || !strings.Contains(out, "(copy direct)") {
				t.Errorf("%s does not name the moved memhog task as copied direct:\n%s", strings.Join(args, " "), out)
			}
			// Swarm picks the node; the replacement is its task, running once restored.
			waitLong(t, "memhog's swarm task running off "+from, func() bool {
				n, _ := e.dockerOn(e.node(1), "service", "ps", "memhog_memhog", "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}")
				f := strings.Fields(n)
				if len(f) < 2 || f[0] == from || f[1] != "Running" {
					return false
				}
				to = f[0]
				return true
			})
		}
		node, nid := e.memhogOn(t)
		if node != to || nid == id {
			t.Fatalf("after %s: memhog %s runs on %s, want %s (before: %s on %s)", strings.Join(args, " "), nid, node, to, id, from)
		}
		e.memhogGet(t, node, nid, "/checksum", &after)
		if after != before {
			t.Errorf("migrate --copy %s %s -> %s changed memhog's memory: checksum before %+v, after %+v", mode, from, to, before, after)
		}
		var v struct {
			OK     bool   `json:"ok"`
			Writes uint64 `json:"writes"`
		}
		e.memhogGet(t, node, nid, "/verify", &v)
		if !v.OK || v.Writes != before.Writes {
			t.Errorf("memhog /verify after migrate --copy %s: %+v, want ok at %d writes", mode, v, before.Writes)
		}
		t.Logf("%s (%s -> %s): %s; 256 MiB checksum kept (%s, %d writes)", strings.Join(args, " "), from, to, took.Round(time.Millisecond), before.SHA256[:12], before.Writes)
		if mode == "direct" {
			e.directDigestsRecorded(t, to)
			// The target hashed the pages after the restore (not on arrival).
			if n := e.workerLogCount("received pages hashed after the restore") - hashedBefore; n != 1 {
				t.Errorf("workers logged %d late hashes of received pages during the direct migration, want 1 (the target's, after its restore)", n)
			}
		}
		// Rewriting again, so the next migration moves memory that changed since.
		e.memhogGet(t, node, nid, "/resume", nil)
		waitLong(t, "memhog rewriting again after migrate --copy "+mode, func() bool {
			var st struct {
				Writes uint64 `json:"writes"`
			}
			e.memhogGet(t, node, nid, "/stats", &st)
			return st.Writes > before.Writes
		})
	}
}

// directDigestsRecorded checks the record of the newest memhog snapshot, a direct
// migration's to node to: the target hashed the pages it received after the restore
// and the coordinator filled their digests into the record (none pending or
// unverified, every file with a sha256, the pages hashed by to), and inspect --verify
// then verifies the set against them.
func (e *e2e) directDigestsRecorded(t *testing.T, to string) {
	t.Helper()
	out, code := e.ctl(20*time.Second, "ls", "memhog", "--output", "json")
	if code != 0 {
		t.Fatalf("ls memhog: exit %d\n%s", code, out)
	}
	var hs []store.Manifest
	if err := json.Unmarshal([]byte(out), &hs); err != nil || len(hs) == 0 {
		t.Fatalf("ls memhog --output json: %v\n%s", err, out)
	}
	id := hs[len(hs)-1].ID // oldest first
	t0 := time.Now()
	waitLong(t, "the direct migration's page digests recorded", func() bool {
		m := e.manifest(id)
		for _, c := range m.Containers {
			if c.Images == nil || c.Images.PagesPending || c.Images.PagesUnverified != "" || c.Images.PagesHashedBy != to {
				return false
			}
			for _, f := range c.Images.Files {
				if len(f.SHA256) != 64 {
					return false
				}
			}
		}
		return len(m.Containers) > 0
	})
	t.Logf("direct migration %s: page digests recorded %s after the migrate returned", id, time.Since(t0).Round(time.Millisecond))
	vout, code := e.ctl(2*time.Minute, "inspect", id, "--verify")
	if code != 0 || !strings.Contains(vout, "cut check: consistent") || strings.Contains(vout, "pending") {
		t.Errorf("inspect --verify of the direct migration's snapshot %s: exit %d\n%s", id, code, vout)
	}
}

// workerLogCount counts the lines of the lab's worker logs that contain what.
func (e *e2e) workerLogCount(what string) (n int) {
	logs, _ := filepath.Glob(filepath.Join(e.dir, "worker-"+e.name+"-*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		n += strings.Count(string(b), what)
	}
	return n
}
