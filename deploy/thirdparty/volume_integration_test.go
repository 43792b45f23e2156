package thirdparty_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testRedisVolume: Debian's redis-server with its append-only file on a local named
// volume (issue 21: a database whose data is in a local volume). A migration without
// --carry-volumes is refused before anything is stopped, naming the volume, and so is
// one onto a node that has a volume of that name with data; with it, the
// volume's content goes into the snapshot (its size shown) and is recreated on the
// target node before redis is restored there: redis goes on with its dataset and its
// AOF (CRIU reopens the file at the dumped size and offset), the writer's long-lived
// connection survives and no entry is lost.
func testRedisVolume(t *testing.T, p *tp) {
	p.removeRestored()
	// The migration before moved only redis_server (a partial migration): the writer
	// and the subscriber still run as the old deployment's swarm tasks, their
	// connections gone with the removed server. They start again with the deploy.
	p.scaleToZero("redis_writer", "redis_subscriber")
	b, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "examples", "redis.yml"))
	if err != nil {
		t.Fatal(err)
	}
	const server = "  server:\n    image: swarmckpt-thirdparty/redis:deb\n"
	if !strings.Contains(string(b), server) {
		t.Fatalf("deploy/examples/redis.yml has no %q: adapt this test", server)
	}
	yml := strings.Replace(string(b), server, server+
		`    command: ["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", "/data", "--protected-mode", "no", "--bind", "0.0.0.0"]
    volumes: ["data:/data"]
`, 1) + "\nvolumes:\n  data: {}\n"
	file := filepath.Join(t.TempDir(), "redis-volume.yml")
	if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cl := p.deployFile(file, "redis")
	if got := p.mustRedis("CONFIG", "GET", "appendonly"); !strings.HasSuffix(got, "yes") {
		t.Fatalf("redis has the AOF off (%q): the test needs it on its volume", got)
	}
	inf := p.info()
	p.mustRedis("SET", "marker", "kept-in-the-volume")
	n := p.waitProgress("the writer with the AOF on", 0)
	from := p.nodesOf("redis_server")
	if len(from) != 1 {
		t.Fatalf("redis_server runs on nodes %v, want one", from)
	}
	dest := from[0]%3 + 1 // another node
	node := fmt.Sprintf("%s-%d", labName, dest)
	refused := func(what, want string, args ...string) {
		t.Helper()
		out, code := p.run(5*time.Minute, append([]string{"migrate", "redis", "--to", node}, args...)...)
		if code == 0 || !strings.Contains(out, want) {
			t.Fatalf("migrate %s: exit %d, want a refusal saying %q:\n%s", what, code, want, out)
		}
		if now, _ := p.clients(); now["writer"].ID != cl["writer"].ID {
			t.Fatalf("writer connection %+v after the refused migration (%s), %+v before: something was stopped", now["writer"], what, cl["writer"])
		}
	}
	// Without --carry-volumes: refused, nothing stopped.
	refused("without --carry-volumes", "--carry-volumes")
	// The target has a volume of that name with data (not ours to replace): refused
	// by the pre-flight, before anything is stopped.
	if out, err := p.docker(dest, "run", "--rm", "-v", "redis_data:/data", "--entrypoint", "/bin/sh", toolsImage, "-c", "echo other > /data/other"); err != nil {
		t.Fatalf("plant a volume redis_data with data on %s: %v: %s", node, err, out)
	}
	refused("onto a volume with data", "already has a volume redis_data with data", "--carry-volumes")
	if out, err := p.docker(dest, "volume", "rm", "redis_data"); err != nil {
		t.Fatalf("remove the planted volume on %s: %v: %s", node, err, out)
	}

	out, code := p.run(5*time.Minute, "migrate", "redis", "--to", node, "--carry-volumes")
	if code != 0 {
		t.Fatalf("migrate --carry-volumes: exit %d\n%s", code, out)
	}
	t.Logf("migrate redis --to %s --carry-volumes:\n%s", node, out)
	if !strings.Contains(out, "volume redis_data of redis_server.1 carried: ") {
		t.Fatalf("migrate's summary does not show the carried volume:\n%s", out)
	}
	to := p.nodesOf("redis_server")
	if len(to) != 1 || to[0] != dest {
		t.Fatalf("redis_server on nodes %v after migrate --to %s", to, node)
	}
	if got := p.info()["run_id"]; got != inf["run_id"] {
		t.Fatalf("run_id %s after migrate, %s before: redis was restarted, not restored", got, inf["run_id"])
	}
	if got := p.mustRedis("GET", "marker"); got != "kept-in-the-volume" {
		t.Fatalf("marker = %q after migrate", got)
	}
	p.waitProgress("the writer after migrate", n)
	p.checkLog("after migrate")
	if now, err := p.clients(); err != nil || now["writer"].ID != cl["writer"].ID {
		t.Fatalf("writer connection %+v (%v) after migrate, %+v before: the long-lived connection did not survive", now["writer"], err, cl["writer"])
	}
	// The AOF goes on in the recreated volume on the target node.
	persist := func() map[string]string {
		m := map[string]string{}
		for _, line := range strings.Split(p.mustRedis("INFO", "persistence"), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
				m[k] = v
			}
		}
		return m
	}
	if ps := persist(); ps["aof_enabled"] != "1" || ps["aof_last_write_status"] != "ok" {
		t.Fatalf("redis persistence after migrate: %v", ps)
	}
	lbl, err := p.docker(to[0], "volume", "inspect", "--format", `{{index .Labels "swarmckpt.carried-from"}}`, "redis_data")
	if err != nil || strings.TrimSpace(lbl) == "" {
		t.Fatalf("volume redis_data on node %d: %q %v, want the volume recreated from the snapshot", to[0], lbl, err)
	}
	files, err := p.docker(to[0], "run", "--rm", "-v", "redis_data:/data", "--entrypoint", "/bin/sh", toolsImage, "-c", "ls -lR /data")
	if err != nil || !strings.Contains(files, "appendonly") {
		t.Fatalf("the recreated volume holds no AOF: %v\n%s", err, files)
	}
	t.Logf("recreated volume on node %d:\n%s", to[0], files)
}

// scaleToZero scales services to 0 and waits until none of their containers is left
// on any node (the next deploy sets their replicas back).
func (p *tp) scaleToZero(services ...string) {
	p.t.Helper()
	args := []string{"service", "scale", "--detach"}
	for _, svc := range services {
		args = append(args, svc+"=0")
	}
	if out, err := p.docker(0, args...); err != nil {
		p.t.Fatalf("docker %v: %v: %s", args, err, out)
	}
	waitFor(p.t, 2*time.Minute, fmt.Sprintf("%v scaled to 0", services), func() bool {
		for n := 1; n <= 3; n++ {
			for _, svc := range services {
				if out, err := p.docker(n, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+svc); err != nil || out != "" {
					return false
				}
			}
		}
		return true
	})
}
