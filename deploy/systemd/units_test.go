package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// unit is one unit file: section -> key -> values (in order; a key may repeat).
type unit map[string]map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, sec := unit{}, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			sec = strings.Trim(l, "[]")
			u[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || sec == "" {
				t.Fatalf("%s: bad line %q", path, l)
			}
			u[sec][k] = append(u[sec][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u unit) get(sec, key string) string {
	v := u[sec][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

var units = map[string]string{ // file -> the subcommand its ExecStart runs
	"swarmckpt-worker@.service":     "worker",
	"swarmckpt-agent@.service":      "agent",
	"swarmckpt-coordinator.service": "coordinator",
}

// TestUnitsRestartAlways: every daemon is restarted whenever it ends, within a second
// or so, for ever; the worker's unit leaves its watchdog alive (KillMode=process); the
// others stop their whole cgroup.
func TestUnitsRestartAlways(t *testing.T) {
	for file, sub := range units {
		u := readUnit(t, file)
		if got := u.get("Service", "Restart"); got != "always" {
			t.Errorf("%s: Restart=%q, want always", file, got)
		}
		d, err := time.ParseDuration(u.get("Service", "RestartSec"))
		if err != nil || d > 2*time.Second {
			t.Errorf("%s: RestartSec=%q (%v), want at most 2s", file, u.get("Service", "RestartSec"), err)
		}
		if got := u.get("Unit", "StartLimitIntervalSec"); got != "0" {
			t.Errorf("%s: StartLimitIntervalSec=%q, want 0 (never give up restarting)", file, got)
		}
		want := "mixed"
		if sub == "worker" {
			want = "process" // the watchdog (worker watchdog) must outlive the worker
		}
		if got := u.get("Service", "KillMode"); got != want {
			t.Errorf("%s: KillMode=%q, want %s", file, got, want)
		}
		exec := u.get("Service", "ExecStart")
		if !strings.HasPrefix(exec, "/usr/local/bin/swarmckpt "+sub+" ") {
			t.Errorf("%s: ExecStart=%q, want /usr/local/bin/swarmckpt %s ...", file, exec, sub)
		}
		if strings.Contains(file, "@") && !strings.Contains(exec, "--node %i") {
			t.Errorf("%s: ExecStart does not pass the instance as --node: %q", file, exec)
		}
	}
}

// TestUnitsFlagsExist: every flag an ExecStart passes is one its subcommand takes (the
// binary's --help lists them). Needs the built binary: $SWARMCKPT_BIN (make test sets it).
func TestUnitsFlagsExist(t *testing.T) {
	bin := os.Getenv("SWARMCKPT_BIN")
	if bin == "" {
		t.Skip("SKIP INTEGRATION: SWARMCKPT_BIN not set (make test-integration sets it to bin/swarmckpt); the units' flags are not checked against the CLI")
	}
	for file, sub := range units {
		out, _ := exec.Command(bin, append(strings.Fields(sub), "--help")...).CombinedOutput()
		for _, a := range strings.Fields(readUnit(t, file).get("Service", "ExecStart")) {
			if !strings.HasPrefix(a, "--") {
				continue
			}
			if !strings.Contains(string(out), "  -"+strings.TrimPrefix(a, "--")+" ") && !strings.Contains(string(out), "  -"+strings.TrimPrefix(a, "--")+"\n") {
				t.Errorf("%s: swarmckpt %s has no flag %s (its --help:\n%s)", file, sub, a, out)
			}
		}
	}
}

// TestUnitsVerify runs systemd-analyze verify on the units (instantiated for a node,
// ExecStart pointed at an executable that exists here): systemd must accept every line.
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIP: systemd-analyze not installed (apt-get install systemd); the units are not verified by systemd")
	}
	dir := t.TempDir()
	var paths []string
	for file := range units {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, strings.Replace(file, "@.", "@node-1.", 1))
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/swarmckpt", "/bin/true")), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	// systemd-analyze exits 0 on lines it ignores: any output is a finding.
	out, err := exec.Command(sa, append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
