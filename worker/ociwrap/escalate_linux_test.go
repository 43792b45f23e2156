package ociwrap

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKillEscalatesOnRealRunc: the drain hold's stop within stop_grace_period on a real
// runc container (no Docker: runc run -d, then the runtime's kill as containerd's
// shim calls it). Armed with a 2 s budget and a 3 s grace period, with no verdict: a
// process that ignores SIGTERM gets it at 2 s and is SIGKILLed at 3 s after the kill
// began (before this, the wrapper returned at 2 s leaving it running, and dockerd
// then waited a whole grace period more); a process that exits on SIGTERM is not
// killed and the kill returns as soon as it is gone.
func TestKillEscalatesOnRealRunc(t *testing.T) {
	if os.Getenv("SWARMCKPT_INTEGRATION") == "" {
		t.Skip("SKIP INTEGRATION: set SWARMCKPT_INTEGRATION=1 (runs runc containers as root)")
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP INTEGRATION: needs root (runc run)")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skipf("SKIP INTEGRATION: runc not on PATH: %v", err)
	}
	d := t.TempDir()
	rootfs := filepath.Join(d, "rootfs")
	build := exec.Command("go", "build", "-o", filepath.Join(rootfs, "ignterm"), "./testdata/ignterm")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the container's process: %v\n%s", err, out)
	}
	for _, c := range []struct {
		name       string
		args       []string
		wantKilled bool
		min, max   time.Duration
	}{
		{"ignores SIGTERM", []string{"/ignterm"}, true, 2900 * time.Millisecond, 4500 * time.Millisecond},
		{"exits on SIGTERM", []string{"/ignterm", "exit"}, false, 1900 * time.Millisecond, 2900 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("swarmckpt-esc-%d-%v", os.Getpid(), c.wantKilled)
			dataRoot, bundle, state := filepath.Join(d, id, "data"), filepath.Join(d, id, "bundle"), filepath.Join(d, id, "state")
			drain := filepath.Join(dataRoot, AreaDir, DrainDir)
			for _, p := range []string{filepath.Join(dataRoot, "containers", id), drain, bundle, state} {
				must(t, os.MkdirAll(p, 0o700))
			}
			hostname := filepath.Join(dataRoot, "containers", id, "hostname")
			must(t, os.WriteFile(hostname, []byte("esc\n"), 0o644))
			spec := exec.Command(runc, "spec", "--bundle", bundle)
			if out, err := spec.CombinedOutput(); err != nil {
				t.Fatalf("runc spec: %v\n%s", err, out)
			}
			var cfg map[string]any
			b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
			must(t, err)
			mustJSON(t, b, &cfg)
			cfg["root"] = map[string]any{"path": rootfs, "readonly": true}
			proc := cfg["process"].(map[string]any)
			proc["terminal"], proc["args"] = false, c.args
			cfg["mounts"] = append(cfg["mounts"].([]any), map[string]any{"destination": "/etc/hostname", "type": "bind",
				"source": hostname, "options": []string{"rbind", "ro"}})
			b, _ = json.Marshal(cfg)
			must(t, os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600))
			// The container keeps runc's stdio: a file, not a pipe that would never close.
			stdio, err := os.Create(filepath.Join(d, id, "stdio"))
			must(t, err)
			defer stdio.Close()
			run := exec.Command(runc, "--root", state, "run", "-d", "--bundle", bundle, id)
			run.Stdout, run.Stderr = stdio, stdio
			if err := run.Run(); err != nil {
				out, _ := os.ReadFile(stdio.Name())
				t.Fatalf("runc run: %v\n%s", err, out)
			}
			t.Cleanup(func() {
				_ = exec.Command(runc, "--root", state, "kill", id, "KILL").Run()
				_ = exec.Command(runc, "--root", state, "delete", "--force", id).Run()
			})
			must(t, WriteJSONFile(drain, ArmFile(id), Arm{BudgetMS: 2000, GraceMS: 3000, Policy: "migrate"}))
			log := filepath.Join(d, id, "log.json")
			t.Chdir(bundle)
			w := &Wrapper{Runc: runc, Stdin: strings.NewReader(""), Stdout: os.Stderr, Stderr: os.Stderr, Now: time.Now,
				Exec: func(path string, argv []string, env []string) error {
					t.Errorf("exec %q: the held kill must run as a child", argv)
					return fmt.Errorf("no exec in this test")
				}}
			start := time.Now()
			code := w.Main([]string{"--root", state, "--log", log, "--log-format", "json", "kill", id, "15"})
			took := time.Since(start)
			if code != 0 {
				t.Fatalf("kill exit %d", code)
			}
			out, _ := exec.Command(runc, "--root", state, "state", id).Output()
			if !strings.Contains(string(out), `"status": "stopped"`) {
				t.Fatalf("container not stopped after the kill returned (%s): %s", took, out)
			}
			lg, _ := os.ReadFile(log)
			killed := strings.Contains(string(lg), "SIGKILL, as swarm would")
			t.Logf("%s: kill returned after %s, SIGKILL sent: %v", c.name, took.Round(time.Millisecond), killed)
			if killed != c.wantKilled || took < c.min || took > c.max {
				t.Fatalf("kill took %s (want %s-%s), SIGKILL sent %v (want %v); runc log:\n%s", took, c.min, c.max, killed, c.wantKilled, lg)
			}
		})
	}
}
