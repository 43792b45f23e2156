package dump_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
)

// fakeRunc writes a stand-in for `runc --root R state ID` that runs script (sh).
func fakeRunc(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "runc")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// WaitEnded's three outcomes, with runc's answers played by a script: the state
// "stopped", runc no longer knowing the container (the shim reaped it), and a killed
// container that keeps running, which must end in an error naming it once the caller's
// deadline passes (DumpInto gives it 10 s and logs a warning).
func TestRuncWaitEnded(t *testing.T) {
	c := container.Ref{ID: "0123456789abcdef", Name: "memhog"}
	cases := []struct {
		name, script string
		wantErr      bool
	}{
		{"stopped", `echo '{"id":"x","status":"stopped"}'`, false},
		{"forgotten", `echo "container does not exist" >&2; exit 1`, false},
		{"stopped after a while", `n=$(cat "$0.n" 2>/dev/null || echo 0); echo $((n+1)) > "$0.n"
if [ "$n" -ge 3 ]; then echo '{"status":"stopped"}'; else echo '{"status":"running"}'; fi`, false},
		{"still running", `echo '{"id":"x","status":"running"}'`, true},
		{"runc fails otherwise", `echo "permission denied" >&2; exit 1`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &dump.Runc{Runc: fakeRunc(t, tc.script), Root: t.TempDir()}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := r.WaitEnded(ctx, c)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("WaitEnded = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("WaitEnded returned nil for a container runc still reports running")
			}
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), c.String()) {
				t.Fatalf("WaitEnded = %v, want the deadline's error naming %s", err, c)
			}
			if waited := time.Since(start); waited < 250*time.Millisecond {
				t.Fatalf("WaitEnded gave up after %s, before the caller's deadline", waited)
			}
		})
	}
}
