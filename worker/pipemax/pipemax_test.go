package pipemax

import (
	"bufio"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gov returns a Governor over a plain file standing in for the sysctl, set to v.
func gov(t *testing.T, v int) Governor {
	t.Helper()
	d := t.TempDir()
	g := Governor{Sysctl: filepath.Join(d, "pipe-max-size"), Dir: filepath.Join(d, "run"), Log: slog.New(slog.DiscardHandler)}
	if err := os.WriteFile(g.Sysctl, []byte(strconv.Itoa(v)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return g
}

// governed is what Governor and Fake both do.
type governed interface {
	Current() (int, error)
	Raise(min int) (func() error, error)
	Reconcile() error
}

var (
	_ governed = Governor{}
	_ governed = (*Fake)(nil)
)

func want(t *testing.T, g governed, v int, why string) {
	t.Helper()
	n, err := g.Current()
	if err != nil {
		t.Fatal(err)
	}
	if n != v {
		t.Fatalf("%s: pipe-max-size %d, want %d", why, n, v)
	}
}

// TestConformance runs the same rules against the real Governor (a plain file standing
// in for the sysctl) and the Fake.
func TestConformance(t *testing.T) {
	for name, mk := range map[string]func(t *testing.T, v int) governed{
		"governor": func(t *testing.T, v int) governed { return gov(t, v) },
		"fake":     func(t *testing.T, v int) governed { return NewFake(v) },
	} {
		t.Run(name+"/RaiseAndPutBack", func(t *testing.T) {
			g := mk(t, 512<<10)
			rel, err := g.Raise(4 << 20)
			if err != nil {
				t.Fatal(err)
			}
			want(t, g, 4<<20, "while held")
			if err := rel(); err != nil {
				t.Fatal(err)
			}
			want(t, g, 512<<10, "after the release")
			if err := rel(); err != nil { // a second call does nothing
				t.Fatal(err)
			}
			want(t, g, 512<<10, "after a second release")
		})
		t.Run(name+"/LastHolderPutsBack", func(t *testing.T) {
			g := mk(t, 1<<20)
			rel1, err := g.Raise(4 << 20)
			if err != nil {
				t.Fatal(err)
			}
			rel2, err := g.Raise(4 << 20)
			if err != nil {
				t.Fatal(err)
			}
			if err := rel1(); err != nil {
				t.Fatal(err)
			}
			want(t, g, 4<<20, "one of two holders released")
			if err := g.Reconcile(); err != nil {
				t.Fatal(err)
			}
			want(t, g, 4<<20, "Reconcile while a holder is left")
			if err := rel2(); err != nil {
				t.Fatal(err)
			}
			want(t, g, 1<<20, "both released")
		})
		t.Run(name+"/HighEnoughIsLeftAlone", func(t *testing.T) {
			g := mk(t, 8<<20)
			rel, err := g.Raise(4 << 20)
			if err != nil {
				t.Fatal(err)
			}
			want(t, g, 8<<20, "already above")
			if err := rel(); err != nil {
				t.Fatal(err)
			}
			want(t, g, 8<<20, "after the release")
		})
	}
}

func TestSavedValueFile(t *testing.T) {
	g := gov(t, 512<<10)
	rel, err := g.Raise(4 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(filepath.Join(g.Dir, "saved")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("saved value: %v %v, want a 0600 file", info, err)
	}
	if err := rel(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(g.Dir, "saved")); !os.IsNotExist(err) {
		t.Fatalf("saved value left after the last release: %v", err)
	}
}

func TestBadSavedValueIsReported(t *testing.T) {
	g := gov(t, 512<<10)
	rel, err := g.Raise(4 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(g.Dir, "saved"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = rel()
	if err == nil || !strings.Contains(err.Error(), "not a size") || !strings.Contains(err.Error(), "by hand") {
		t.Fatalf("release with a corrupt saved value: %v", err)
	}
	want(t, g, 4<<20, "nothing written from a corrupt saved value")
}

func TestCanRaise(t *testing.T) {
	g := gov(t, 512<<10)
	if err := g.CanRaise(); err != nil {
		t.Fatalf("a writable file: %v", err)
	}
	g.Sysctl = filepath.Join(g.Dir, "missing", "pipe-max-size")
	if err := g.CanRaise(); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("a missing file: %v", err)
	}
}

// TestHolderProcesses: holders in other processes count (the lab's workers share one
// kernel), and the raise of a holder killed with -9 is put back by Reconcile once no
// holder is left.
func TestHolderProcesses(t *testing.T) {
	if os.Getenv("PIPEMAX_HOLDER") != "" {
		return // the helper, run by holder()
	}
	g := gov(t, 512<<10)
	a := holder(t, g)
	want(t, g, 4<<20, "held by another process")
	b := holder(t, g)
	if err := a.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	if err := g.Reconcile(); err != nil {
		t.Fatal(err)
	}
	want(t, g, 4<<20, "one holder killed, one alive")
	if err := b.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	b.Wait()
	want(t, g, 4<<20, "both holders killed, before Reconcile")
	if err := g.Reconcile(); err != nil {
		t.Fatal(err)
	}
	want(t, g, 512<<10, "Reconcile after every holder died")
}

// holder starts this test binary as a process that raises g to 4 MiB and then waits
// to be killed; it returns once the raise is done.
func holder(t *testing.T, g Governor) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHolderHelper$")
	cmd.Env = append(os.Environ(), "PIPEMAX_HOLDER=1", "PIPEMAX_SYSCTL="+g.Sysctl, "PIPEMAX_DIR="+g.Dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "raised" {
		t.Fatalf("holder process: %q %v", line, err)
	}
	return cmd
}

func TestHolderHelper(t *testing.T) {
	if os.Getenv("PIPEMAX_HOLDER") == "" {
		t.Skip("helper process of TestHolderProcesses, not a test on its own")
	}
	g := Governor{Sysctl: os.Getenv("PIPEMAX_SYSCTL"), Dir: os.Getenv("PIPEMAX_DIR"), Log: slog.New(slog.DiscardHandler)}
	if _, err := g.Raise(4 << 20); err != nil {
		os.Stdout.WriteString("error: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("raised\n")
	time.Sleep(time.Hour) // until killed
}
