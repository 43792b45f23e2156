package ociwrap

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDecideKill(t *testing.T) {
	armed := Arm{BudgetMS: 9000, Policy: "migrate"}
	for _, c := range []struct {
		name   string
		armed  bool
		arm    Arm
		signal string
		want   KillAction
	}{
		{"unarmed TERM", false, Arm{}, "15", KillPass},
		{"unarmed KILL", false, Arm{}, "9", KillPass},
		{"armed TERM", true, armed, "15", KillHold},
		{"armed SIGTERM name", true, armed, "SIGTERM", KillHold},
		{"armed custom stop signal", true, armed, "SIGINT", KillHold},
		{"armed KILL number", true, armed, "9", KillPass},
		{"armed KILL name", true, armed, "KILL", KillPass},
		{"armed SIGKILL name", true, armed, "sigkill", KillPass},
		{"armed without budget", true, Arm{}, "15", KillPass},
		{"armed negative budget", true, Arm{BudgetMS: -1}, "15", KillPass},
	} {
		if got := DecideKill(c.armed, c.arm, c.signal); got != c.want {
			t.Errorf("%s: DecideKill = %v, want %v", c.name, got, c.want)
		}
	}
	if got := (Arm{BudgetMS: int64(time.Hour / time.Millisecond)}).Budget(); got != MaxHold {
		t.Errorf("budget of an hour = %s, want the cap %s", got, MaxHold)
	}
}

func TestParseKill(t *testing.T) {
	for _, c := range []struct {
		args       []string
		id, signal string
	}{
		{[]string{id, "15"}, id, "15"},
		{[]string{"--all", id, "9"}, id, "9"},
		{[]string{id}, id, "SIGTERM"},
		{nil, "", ""},
	} {
		if gid, gsig := parseKill(c.args); gid != c.id || gsig != c.signal {
			t.Errorf("parseKill(%q) = %q %q, want %q %q", c.args, gid, gsig, c.id, c.signal)
		}
	}
}

func TestWaitVerdict(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	v, err := WaitVerdict(dir, id, now.Add(-time.Second), time.Now)
	if v != nil || err != nil {
		t.Fatalf("past deadline, no verdict: %v %v, want nil nil", v, err)
	}
	must(t, WriteJSONFile(dir, VerdictFile(id), Verdict{Outcome: VerdictCheckpointed}))
	v, err = WaitVerdict(dir, id, now.Add(time.Hour), time.Now)
	if err != nil || v == nil || v.Outcome != VerdictCheckpointed {
		t.Fatalf("verdict present: %+v %v", v, err)
	}
	must(t, os.WriteFile(filepath.Join(dir, VerdictFile(id)), []byte("{"), 0o600))
	if _, err := WaitVerdict(dir, id, now.Add(time.Hour), time.Now); err == nil {
		t.Fatal("a corrupt verdict was accepted")
	}
}

// killArgs is dockerd's stop: runc kill ID SIGNAL.
func (n node) killArgs(sig string) []string {
	return []string{"--root", n.root, "--log", filepath.Join(n.bundle, "log.json"), "--log-format", "json", "kill", id, sig}
}

func (n node) drainDir(t *testing.T) string {
	d := filepath.Join(n.dataRoot, AreaDir, DrainDir)
	must(t, os.MkdirAll(d, 0o700))
	return d
}

// runKill runs the wrapper in the bundle (as containerd's shim does) with a verdict
// source that records the stop request it finds and answers v (nil: the deadline passed).
func (n node) runKill(t *testing.T, sig string, v *Verdict) (execed []string, held *StopRequest) {
	t.Helper()
	t.Chdir(n.bundle)
	w := &Wrapper{Runc: n.runc, Stdin: strings.NewReader(""), Stdout: os.Stderr, Stderr: os.Stderr, Now: time.Now,
		Exec: func(path string, argv []string, env []string) error {
			execed = append([]string{path}, argv[1:]...)
			return errors.New("exec recorded by test")
		},
		WaitVerdict: func(dir, cid string, deadline time.Time) (*Verdict, error) {
			var req StopRequest
			b, err := os.ReadFile(filepath.Join(dir, StopFile(cid)))
			if err != nil {
				t.Fatalf("hold started without a stop request: %v", err)
			}
			mustJSON(t, b, &req)
			held = &req
			return v, nil
		}}
	w.Main(n.killArgs(sig))
	return execed, held
}

func TestKillHold(t *testing.T) {
	for _, c := range []struct {
		name     string
		arm      bool
		sig      string
		verdict  *Verdict
		wantHold bool
	}{
		{"unarmed", false, "15", nil, false},
		{"armed KILL", true, "9", nil, false},
		{"armed release", true, "15", &Verdict{Outcome: VerdictRelease}, true},
		{"armed checkpointed", true, "15", &Verdict{Outcome: VerdictCheckpointed}, true},
		{"armed timeout", true, "SIGTERM", nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newNode(t, nil)
			dir := n.drainDir(t)
			if c.arm {
				must(t, WriteJSONFile(dir, ArmFile(id), Arm{BudgetMS: 9000, Policy: "migrate"}))
			}
			before := time.Now()
			execed, held := n.runKill(t, c.sig, c.verdict)
			if want := append([]string{n.runc}, n.killArgs(c.sig)...); !slices.Equal(execed, want) {
				t.Fatalf("exec'd %q, want the kill passed on unchanged %q", execed, want)
			}
			if (held != nil) != c.wantHold {
				t.Fatalf("held = %+v, want hold %v", held, c.wantHold)
			}
			if held != nil {
				if held.ID != id || held.Signal != c.sig || held.Root != n.root || held.Bundle != n.bundle {
					t.Fatalf("stop request %+v", held)
				}
				if d := held.Deadline.Sub(before); d < 8*time.Second || d > 10*time.Second {
					t.Fatalf("deadline %s after the kill, want the 9 s budget", d)
				}
			}
			for _, f := range []string{StopFile(id), VerdictFile(id)} {
				if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("%s left behind after the kill: %v", f, err)
				}
			}
			if c.arm {
				if _, err := os.Stat(filepath.Join(dir, ArmFile(id))); err != nil {
					t.Fatalf("the arm file must stay until the worker disarms: %v", err)
				}
			}
		})
	}
}

func TestKillHoldBrokenArmPassesOn(t *testing.T) {
	n := newNode(t, nil)
	dir := n.drainDir(t)
	must(t, os.WriteFile(filepath.Join(dir, ArmFile(id)), []byte("not json"), 0o600))
	execed, held := n.runKill(t, "15", nil)
	if held != nil || len(execed) == 0 {
		t.Fatalf("a broken arm file must pass the kill on at once: held %+v exec %q", held, execed)
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

// BenchmarkKillDecisionUnarmed is what the wrapper adds to the kill of a container
// that is not armed (every unlabelled one): reading the bundle's config.json (here
// padded to 16 KiB, about a Docker bundle's) and one stat.
func BenchmarkKillDecisionUnarmed(b *testing.B) {
	d := b.TempDir()
	dataRoot, bundle := filepath.Join(d, "data"), filepath.Join(d, "bundle")
	for _, p := range []string{filepath.Join(dataRoot, AreaDir, DrainDir), bundle} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	cfg, _ := json.Marshal(map[string]any{
		"process": map[string]any{"env": []string{strings.Repeat("X", 16<<10)}},
		"mounts":  []map[string]string{{"destination": "/etc/hostname", "source": filepath.Join(dataRoot, "containers", id, "hostname")}},
	})
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o600); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		dr, err := DataRoot(bundle, id)
		if err != nil || dr != dataRoot {
			b.Fatal(dr, err)
		}
		if _, hold, err := BeginHold(filepath.Join(dr, AreaDir, DrainDir), id, "15", "/r", bundle, time.Now()); hold || err != nil {
			b.Fatal(hold, err)
		}
	}
}

func TestDecideAfterHold(t *testing.T) {
	ckpt, rel := &Verdict{Outcome: VerdictCheckpointed}, &Verdict{Outcome: VerdictRelease}
	for _, c := range []struct {
		name        string
		v           *Verdict
		grace, held time.Duration
		want        AfterHold
	}{
		{"timed out, default grace", nil, 10 * time.Second, 9 * time.Second, AfterHold{Escalate: true, KillAfter: time.Second}},
		{"timed out, long grace", nil, 120 * time.Second, 49 * time.Second, AfterHold{Escalate: true, KillAfter: 71 * time.Second}},
		{"timed out past the grace period", nil, 10 * time.Second, 11 * time.Second, AfterHold{Escalate: true}},
		{"late release", rel, 10 * time.Second, 4 * time.Second, AfterHold{Escalate: true, KillAfter: 6 * time.Second}},
		{"quick release: dockerd's timer", rel, 10 * time.Second, 30 * time.Millisecond, AfterHold{}},
		{"checkpointed: already gone", ckpt, 10 * time.Second, 9 * time.Second, AfterHold{}},
		{"grace unknown (older arm file)", nil, 0, 9 * time.Second, AfterHold{}},
	} {
		if got := DecideAfterHold(c.v, c.grace, c.held); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// A hold that timed out: the wrapper passes the stop signal on as a child, and
// SIGKILLs the container that still runs when the grace period (from the first kill)
// ends; one that exits in time is not killed.
func TestKillTimeoutEscalates(t *testing.T) {
	for _, exits := range []bool{false, true} {
		n := newNode(t, nil)
		dir := n.drainDir(t)
		must(t, WriteJSONFile(dir, ArmFile(id), Arm{BudgetMS: 9000, GraceMS: 10000, Policy: "migrate"}))
		t.Chdir(n.bundle)
		clock := time.Now()
		var calls [][]string
		w := &Wrapper{Runc: n.runc, Stdin: strings.NewReader(""), Stdout: os.Stderr, Stderr: os.Stderr,
			Now: func() time.Time { clock = clock.Add(100 * time.Millisecond); return clock },
			Exec: func(path string, argv []string, env []string) error {
				t.Fatalf("exec %q after a timed-out hold: want the kill as a child, then SIGKILL", argv)
				return nil
			},
			WaitVerdict: func(dir, cid string, deadline time.Time) (*Verdict, error) {
				clock = deadline // the budget ran out
				return nil, nil
			},
			Run: func(path string, args []string) ([]byte, int, error) {
				calls = append(calls, args)
				if slices.Contains(args, "state") {
					if exits && len(calls) > 2 {
						return []byte(`{"status":"stopped"}`), 0, nil
					}
					return []byte(`{"status":"running"}`), 0, nil
				}
				return nil, 0, nil
			}}
		if code := w.Main(n.killArgs("15")); code != 0 {
			t.Fatalf("exit %d", code)
		}
		if len(calls) == 0 || !slices.Equal(calls[0], n.killArgs("15")) {
			t.Fatalf("first runc call %q, want the held kill unchanged", calls)
		}
		last := calls[len(calls)-1]
		killed := slices.Equal(last[len(last)-3:], []string{"kill", id, "KILL"})
		if killed == exits {
			t.Fatalf("exits in time %v: runc calls %q (SIGKILL sent: %v)", exits, calls, killed)
		}
		if killed && !slices.Equal(last[:len(last)-3], n.killArgs("15")[:6]) {
			t.Fatalf("SIGKILL without runc's global flags: %q", last)
		}
	}
}
