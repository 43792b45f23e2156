package ociwrap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ExpiresFile in a restore directory (swarm-task placements) holds an RFC 3339 time
// after which the placement is stale: a swarm-native restore places a set on every
// node swarm might pick, and if the coordinator dies before it takes the unused ones
// back, a much later task of that slot on such a node must not come back from an old
// checkpoint. The wrapper retires an expired placement (moves it to the restored/ area,
// where the worker deletes it) and lets runc create the container normally.
const ExpiresFile = "expires"

// expired reads dir's ExpiresFile: ok is true when it exists and its time is past.
// An unreadable or malformed file is an error (a broken marker never turns into a
// silent fresh start).
func expired(dir string, now time.Time) (at time.Time, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, ExpiresFile))
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read %s: %w", filepath.Join(dir, ExpiresFile), err)
	}
	at, err = time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%s: %w", filepath.Join(dir, ExpiresFile), err)
	}
	return at, now.After(at), nil
}

// retire moves an expired placement out of the restore area.
func (w *Wrapper) retire(inv Invocation, dir string, at time.Time) {
	done := filepath.Join(filepath.Dir(dir), "..", RestoredDir)
	_ = os.MkdirAll(done, 0o700)
	dst := filepath.Join(done, fmt.Sprintf("%s.expired.%d", filepath.Base(dir), w.Now().UnixNano()))
	msg := fmt.Sprintf("placement %s expired at %s (its restore was abandoned): container %s starts normally", dir, at.Format(time.RFC3339), inv.ID)
	if err := os.Rename(dir, dst); err != nil {
		msg += fmt.Sprintf(" (could not move it to %s: %v)", dst, err)
	}
	w.log(inv, "warning", msg)
}
