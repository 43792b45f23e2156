package ociwrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Wrapper runs one runtime invocation.
type Wrapper struct {
	// Runc is the real runc binary.
	Runc string
	// Stdin, Stdout and Stderr are handed to runc restore (the container's stdio);
	// Stderr also receives the wrapper's own error messages.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Exec replaces the process with argv (syscall.Exec); tests substitute it.
	Exec func(path string, argv []string, env []string) error
	// Now is the clock for log lines; tests may fix it.
	Now func() time.Time
	// WaitVerdict waits for a held kill's verdict (drainhold.go); nil means poll the
	// drain directory until the deadline (WaitVerdict). Tests substitute it.
	WaitVerdict func(dir, id string, deadline time.Time) (*Verdict, error)
	// Run runs runc (path) with args as a child and returns its stdout and exit code
	// (the SIGKILL after a held kill, drainhold.go); nil means os/exec. Tests
	// substitute it.
	Run func(path string, args []string) (stdout []byte, code int, err error)
}

// FindRunc locates runc: $SWARMCKPT_RUNC, else runc on PATH, never self.
func FindRunc() (string, error) {
	if p := os.Getenv("SWARMCKPT_RUNC"); p != "" {
		return p, nil
	}
	self, _ := os.Executable()
	for _, p := range []string{"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc", "/usr/local/bin/runc"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && p != self {
			return p, nil
		}
	}
	p, err := exec.LookPath("runc")
	if err != nil {
		return "", fmt.Errorf("swarmckpt-runtime: runc not found (set SWARMCKPT_RUNC): %w", err)
	}
	return p, nil
}

// Main handles args (without argv[0]) and returns the exit code. Pass-through calls do
// not return (exec) unless exec itself fails.
func (w *Wrapper) Main(args []string) int {
	if len(args) == 1 && args[0] == SysctlHookCommand {
		if err := SysctlHook(w.Stdin); err != nil {
			fmt.Fprintln(w.Stderr, "swarmckpt-runtime: "+err.Error())
			return 1
		}
		return 0
	}
	if len(args) == 2 && args[0] == HookCommand {
		if err := Hook(args[1], w.Stdin); err != nil {
			fmt.Fprintln(w.Stderr, "swarmckpt-runtime: "+err.Error())
			return 1
		}
		return 0
	}
	inv := Parse(args)
	switch inv.Command {
	case "create":
		if inv.ID != "" && inv.Bundle != "" {
			dir, err := w.lookup(inv)
			if err != nil {
				// A broken marker must not turn into a silent fresh start.
				w.fail(inv, err)
				return 1
			}
			if dir != "" {
				at, stale, err := expired(dir, w.Now())
				if err != nil {
					w.fail(inv, err)
					return 1
				}
				if stale {
					w.retire(inv, dir, at)
					return w.passThrough(args)
				}
				if err := w.restore(inv, dir); err != nil {
					w.fail(inv, err)
					return 1
				}
				return 0
			}
		}
	case "kill":
		return w.kill(inv, args)
	case "start":
		if inv.Root != "" && inv.ID != "" && !strings.ContainsRune(inv.ID, '/') {
			flag := filepath.Join(inv.Root, inv.ID, RestoredFlag)
			if err := os.Remove(flag); err == nil {
				return 0
			}
		}
	}
	return w.passThrough(args)
}

func (w *Wrapper) passThrough(args []string) int {
	err := w.Exec(w.Runc, append([]string{"runc"}, args...), os.Environ())
	fmt.Fprintf(w.Stderr, "swarmckpt-runtime: exec %s: %v\n", w.Runc, err)
	return 127
}

func (w *Wrapper) lookup(inv Invocation) (string, error) {
	if strings.ContainsRune(inv.ID, '/') {
		return "", nil
	}
	dataRoot, err := DataRoot(inv.Bundle, inv.ID)
	if err != nil || dataRoot == "" {
		// Not a Docker bundle (or unreadable: runc will report that itself).
		return "", nil
	}
	return Find(dataRoot, inv.ID)
}

// restore claims dir, runs runc restore and consumes dir on success.
func (w *Wrapper) restore(inv Invocation, dir string) error {
	claimed := dir + ".restoring-" + inv.ID
	if err := os.Rename(dir, claimed); err != nil {
		return fmt.Errorf("claim restore directory %s: %w", dir, err)
	}
	w.log(inv, "info", "restoring container "+inv.ID+" from "+dir)
	prepare := func() error {
		// Addresses first (it may wait for the coordinator's map), then the lock.
		if err := w.readdress(inv, claimed); err != nil {
			return err
		}
		// The writable layer: the files the images' processes have open.
		if err := w.rootfsBeforeRestore(inv, claimed); err != nil {
			return err
		}
		if changed, err := ResolveBindSources(inv.Bundle); err != nil {
			return err
		} else if len(changed) > 0 {
			w.log(inv, "info", "bind mount sources resolved for CRIU: "+strings.Join(changed, ", "))
		}
		if err := w.sysctlsBeforeRestore(inv); err != nil {
			return err
		}
		return w.lockBeforeRestore(inv, claimed)
	}
	if err := prepare(); err != nil {
		msg := err.Error()
		_ = os.WriteFile(filepath.Join(claimed, ErrorFile), []byte(msg+"\n"), 0o600)
		if rerr := os.Rename(claimed, dir); rerr != nil {
			msg += fmt.Sprintf(" (and could not put %s back: %v)", dir, rerr)
		}
		return errors.New(msg)
	}
	args := append([]string{"runc"}, inv.Global...)
	args = append(args, "restore", "--detach",
		"--image-path", filepath.Join(claimed, "images"),
		"--work-path", filepath.Join(claimed, "work"),
		"--bundle", inv.Bundle)
	if inv.PidFile != "" {
		args = append(args, "--pid-file", inv.PidFile)
	}
	if inv.ConsoleSocket != "" {
		args = append(args, "--console-socket", inv.ConsoleSocket)
	}
	for _, e := range inv.Extra {
		if e == "--no-pivot" || e == "--no-new-keyring" {
			args = append(args, e)
		}
	}
	_ = os.MkdirAll(filepath.Join(claimed, "work"), 0o700)
	if _, err := os.Stat(filepath.Join(claimed, LazyFile)); err == nil {
		// Post-copy: the worker started `criu lazy-pages` with work dir DIR/work (its
		// socket there is how CRIU's restore finds it); pages come on demand.
		args = append(args, "--lazy-pages")
	}
	args = append(args, inv.ID)
	// The restored processes get this process's stdio (containerd's pipes for the
	// container's logs): runc maps the checkpointed stdio onto them with --inherit-fd.
	// So no output capture here: runc reports errors into --log, we add CRIU's log tail.
	cmd := &exec.Cmd{Path: w.Runc, Args: args, Env: os.Environ(), Stdin: w.Stdin, Stdout: w.Stdout, Stderr: w.Stderr}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		msg := fmt.Sprintf("runc restore from %s failed: %v; CRIU log: %s", dir, err,
			logTail(filepath.Join(claimed, "work", "restore.log")))
		_ = os.WriteFile(filepath.Join(claimed, ErrorFile), []byte(msg+"\n"), 0o600)
		if rerr := os.Rename(claimed, dir); rerr != nil {
			msg += fmt.Sprintf(" (and could not put %s back: %v)", dir, rerr)
		}
		return errors.New(msg)
	}
	// The processes run: from here on, only bookkeeping. start must succeed.
	if inv.Root != "" {
		_ = os.WriteFile(filepath.Join(inv.Root, inv.ID, RestoredFlag), nil, 0o600)
	}
	area := filepath.Dir(filepath.Dir(dir))
	done := filepath.Join(area, RestoredDir)
	_ = os.MkdirAll(done, 0o700)
	stamp := fmt.Sprintf("%s.%d", filepath.Base(dir), w.Now().UnixNano())
	if err := os.Rename(claimed, filepath.Join(done, stamp)); err != nil {
		w.log(inv, "warning", fmt.Sprintf("restored %s but could not move %s to %s: %v", inv.ID, claimed, done, err))
	}
	w.log(inv, "info", fmt.Sprintf("restored container %s from %s in %.3fs", inv.ID, dir, time.Since(start).Seconds()))
	return nil
}

// LazyFile in a restore directory asks for a lazy-pages (post-copy) restore.
const LazyFile = "lazy-pages"

func (w *Wrapper) fail(inv Invocation, err error) {
	msg := "swarmckpt-runtime: create " + inv.ID + ": " + err.Error()
	fmt.Fprintln(w.Stderr, msg)
	w.log(inv, "error", msg)
}

// log appends one JSON line in runc's log format to --log, where containerd looks for
// the reason of a failure.
func (w *Wrapper) log(inv Invocation, level, msg string) {
	if inv.Log == "" {
		return
	}
	f, err := os.OpenFile(inv.Log, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	b, _ := json.Marshal(map[string]string{"level": level, "msg": msg, "time": w.Now().UTC().Format(time.RFC3339Nano)})
	_, _ = f.Write(append(b, '\n'))
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no " + path + ")"
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
	return strings.Join(errs, " | ") + " (full log: " + path + ")"
}

// New returns a Wrapper that execs the real runc.
func New(runc string) *Wrapper {
	return &Wrapper{Runc: runc, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Exec: syscall.Exec, Now: time.Now}
}
