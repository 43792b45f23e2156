//go:build linux

package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A failed restore's CRIU log outlives the rollback: kept next to the set (0600), and
// the error names the kept copy and carries CRIU's error lines.
func TestKeepFailedLog(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(dir, "sets", "snap.redis.1")
	placed := filepath.Join(dir, "restore", "id-abc")
	if err := os.MkdirAll(filepath.Join(placed, "work"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(set), 0o700); err != nil {
		t.Fatal(err)
	}
	log := "(00.01) pie: restoring\n(00.02) Error (criu/files-reg.c:2136): File usr/bin/redis-server has bad size 100 (expect 200)\n(00.03) Error (criu/cr-restore.c:1517): 9 killed by signal 9\n"
	if err := os.WriteFile(filepath.Join(placed, "work", "restore.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(placed+".restoring-abc", "work", "restore.log")
	cause := fmt.Errorf("%w: runc restore from %s failed: exit status 1; CRIU log: bad size (full log: %s)", ErrRestore, placed, stale)
	err := keepFailedLog(cause, placed, set, "abc")
	kept := set + FailedLogSuffix
	fi, serr := os.Stat(kept)
	if serr != nil {
		t.Fatalf("CRIU log not kept: %v", serr)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("kept log has mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(kept); string(b) != log {
		t.Errorf("kept log differs: %q", b)
	}
	if !errors.Is(err, ErrRestore) || !strings.Contains(err.Error(), kept) || strings.Contains(err.Error(), stale) {
		t.Errorf("error %q: want ErrRestore naming %s instead of %s", err, kept, stale)
	}
	// Without CRIU's error lines in the cause, they are added from the log.
	err = keepFailedLog(errors.New("docker start: exit status 1"), placed, set, "abc")
	if !strings.Contains(err.Error(), "bad size 100") || !strings.Contains(err.Error(), "CRIU log kept at "+kept) {
		t.Errorf("error %q: want the kept path and CRIU's error lines", err)
	}
	// No CRIU log (the runtime never ran): the error is unchanged, nothing written.
	plain := errors.New("docker create: no such network")
	if got := keepFailedLog(plain, filepath.Join(dir, "nowhere"), filepath.Join(dir, "sets", "other"), "x"); got != plain {
		t.Errorf("got %v, want the error unchanged", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "sets", "other"+FailedLogSuffix)); err == nil {
		t.Error("a log was kept although there was none")
	}
}
