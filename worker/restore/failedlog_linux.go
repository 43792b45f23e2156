package restore

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// FailedLogSuffix names the copy of a failed restore's CRIU log kept next to its set:
// <sets>/<set>.failed-restore.log (mode 0600).
const FailedLogSuffix = ".failed-restore.log"

// FailedLogPath is where the CRIU log of a failed restore of the set at setDir is kept.
func FailedLogPath(setDir string) string { return filepath.Clean(setDir) + FailedLogSuffix }

// keptLogError is a restore error whose message points at the kept CRIU log.
type keptLogError struct {
	err error
	msg string
}

func (e *keptLogError) Error() string { return e.msg }
func (e *keptLogError) Unwrap() error { return e.err }

// keepFailedLog copies the CRIU log of a failed restore (placed/work/restore.log,
// written by runc restore through the runtime wrapper) to FailedLogPath(setDir)
// before the container and its restore directory are rolled back, and returns err
// with its message naming the kept copy instead of the restore directory's path
// (which is gone once the set is moved back). Without a CRIU log (the runtime never
// ran CRIU), err is returned as it is.
func keepFailedLog(err error, placed, setDir, id string) error {
	src := filepath.Join(placed, "work", "restore.log")
	in, oerr := os.Open(src)
	if oerr != nil {
		return err
	}
	defer in.Close()
	dst := FailedLogPath(setDir)
	tmp := dst + ".tmp"
	out, cerr := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if cerr == nil {
		_, cerr = io.Copy(out, in)
		if e := out.Close(); cerr == nil {
			cerr = e
		}
	}
	if cerr == nil {
		cerr = os.Rename(tmp, dst)
	}
	if cerr != nil {
		_ = os.Remove(tmp)
		return &keptLogError{err: err, msg: fmt.Sprintf("%v (the CRIU log %s could not be kept: %v)", err, src, cerr)}
	}
	msg := err.Error()
	// The wrapper names the log in its claimed directory; both are gone after rollback.
	for _, stale := range []string{filepath.Join(placed+".restoring-"+id, "work", "restore.log"), src} {
		msg = strings.ReplaceAll(msg, stale, dst)
	}
	if !strings.Contains(msg, dst) {
		msg += "; CRIU log kept at " + dst
	}
	if !strings.Contains(msg, "Error") {
		if tail := criuErrors(dst); tail != "" {
			msg += "; last CRIU errors: " + tail
		}
	}
	return &keptLogError{err: err, msg: msg}
}

// criuErrors returns the last lines of a CRIU log that report an error.
func criuErrors(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var errs []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "Error") {
			errs = append(errs, strings.TrimSpace(l))
		}
	}
	if len(errs) > 4 {
		errs = errs[len(errs)-4:]
	}
	return strings.Join(errs, " | ")
}
