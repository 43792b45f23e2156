package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
)

// Releaser undoes holds: the real NetLock and Freezer, or fakes in tests.
type Releaser struct {
	Lock   netlock.Locker
	Freeze freezer.Freezer
	// Owns checks that pid still belongs to container id (nil: BelongsTo).
	Owns func(pid int, id string) bool
	Log  *slog.Logger
	// UntracedWait bounds the wait for a CRIU still dumping the container before a
	// release (awaitUntraced). Default 10 s.
	UntracedWait time.Duration
}

// BelongsTo reports whether pid's cgroup names container id: guards against PID reuse.
func BelongsTo(pid int, id string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	return err == nil && strings.Contains(string(b), id)
}

// Release thaws and unlocks the container of h and reports whether it acted. A
// container whose process is gone needs nothing (its namespace and cgroup went with it).
func (r Releaser) Release(ctx context.Context, h Hold) (bool, error) {
	owns := r.Owns
	if owns == nil {
		owns = BelongsTo
	}
	if !owns(h.Pid, h.ContainerID) {
		return false, nil
	}
	c := container.Ref{ID: h.ContainerID, Name: h.Name, Pid: h.Pid}
	r.awaitUntraced(ctx, h)
	var errs []error
	// Thaw first: a frozen container cannot answer retransmissions anyway.
	if h.Frozen {
		if err := r.Freeze.Thaw(ctx, c); err != nil && !errors.Is(err, freezer.ErrNoCgroup) {
			errs = append(errs, err)
		}
	}
	if h.Locked {
		if err := r.Lock.Unlock(ctx, c, nil); err != nil && !errors.Is(err, netlock.ErrNamespace) {
			errs = append(errs, err)
		}
	}
	return true, errors.Join(errs...)
}

// awaitUntraced waits (at most UntracedWait) while h's process is ptrace-seized: a
// dead worker's CRIU may still be dumping the container (runc and CRIU outlive the
// worker that started them), and when it ends it puts back the freezer state it found,
// frozen, so a thaw before that would be undone and the container left frozen with no
// hold to release it (seen in the fault-injection test: kill -9 of a worker mid-dump).
// A tracer still there after the wait is killed if it is a CRIU.
func (r Releaser) awaitUntraced(ctx context.Context, h Hold) {
	wait := r.UntracedWait
	if wait <= 0 {
		wait = 10 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		tracer := tracerOf(h.Pid)
		if tracer == 0 {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if isCRIU(tracer) {
				_ = syscall.Kill(tracer, syscall.SIGKILL)
			}
			if r.Log != nil {
				r.Log.Warn("container still ptrace-seized: releasing it anyway", "container", h.Name, "tracer", tracer, "criu_killed", isCRIU(tracer))
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tracerOf is the TracerPid of pid (0: none, or unreadable).
func tracerOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			var n int
			fmt.Sscan(strings.TrimSpace(v), &n)
			return n
		}
	}
	return 0
}

// isCRIU tells whether pid runs CRIU (directly or through a loader wrapper).
func isCRIU(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), "criu")
}

// Reconcile releases every hold of the journal whose deadline passed at now or whose
// owner (the worker that wrote it) has ended, and removes it. It returns the released
// holds.
func (r Releaser) Reconcile(ctx context.Context, j Journal, now time.Time) ([]Hold, error) {
	p, err := r.reconcile(ctx, j, now)
	return p.released, err
}

// pass is what one reconcile did and left.
type pass struct {
	released []Hold
	// next is the earliest deadline of the holds kept (zero when none is left).
	next time.Time
	// owners are the live owners of the holds kept.
	owners map[Owner]bool
}

// reconcile is Reconcile also returning the earliest deadline and the owners of the
// holds it kept.
func (r Releaser) reconcile(ctx context.Context, j Journal, now time.Time) (pass, error) {
	holds, err := j.List()
	var p pass
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, h := range holds {
		orphaned := h.Orphaned()
		if !h.Expired(now) && !orphaned {
			if p.next.IsZero() || h.Deadline.Before(p.next) {
				p.next = h.Deadline
			}
			if h.Owner != nil {
				if p.owners == nil {
					p.owners = map[Owner]bool{}
				}
				p.owners[*h.Owner] = true
			}
			continue
		}
		why := "past its deadline " + h.Deadline.Format(time.RFC3339Nano)
		if orphaned {
			why = fmt.Sprintf("whose worker (%s) ended", h.Owner)
		}
		acted, err := r.Release(ctx, h)
		if err != nil {
			errs = append(errs, fmt.Errorf("release %s (%.12s) %s: %w", h.Name, h.ContainerID, why, err))
			p.next = now // try again after the interval
			continue
		}
		// Remove only if the hold was not renewed (or taken over) meanwhile.
		if cur, ok, _ := j.Get(h.ContainerID); ok && cur.Deadline.Equal(h.Deadline) && sameOwner(cur.Owner, h.Owner) {
			_ = j.Remove(h.ContainerID)
		}
		if !acted {
			if r.Log != nil {
				r.Log.Info("hold of a container that is gone: dropped", "container", h.Name, "id", h.ContainerID, "hold", why)
			}
			continue
		}
		if r.Log != nil {
			msg := "deadline passed: container thawed and unlocked by the watchdog"
			if orphaned {
				msg = "the worker holding the container ended: container thawed and unlocked by the watchdog"
			}
			r.Log.Warn(msg, "container", h.Name, "id", h.ContainerID, "frozen", h.Frozen, "locked", h.Locked,
				"deadline", h.Deadline, "owner", h.Owner)
		}
		p.released = append(p.released, h)
	}
	return p, errors.Join(errs...)
}

// idleWait is the longest the watchdog sleeps between two looks at its journal when it
// is told of every change to it (inotify): a safety net, not its precision.
const idleWait = time.Second

// Run is the watchdog process's loop: reconcile, then sleep until the earliest deadline
// of the journal (at least interval, at most idleWait), until the journal changes, or
// until the owner of a hold ends, until ctx ends or the journal directory is removed.
// Without inotify it looks every interval. A hold is thus released within interval of
// its deadline, and at once (within interval) when the worker that wrote it dies;
// an idle watchdog wakes once a second instead of polling.
func (r Releaser) Run(ctx context.Context, j Journal, interval time.Duration) error {
	changed := watchDir(ctx, j.Dir)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	ended := make(chan struct{}, 1)
	watching := map[Owner]ownerWatch{}
	defer func() {
		for _, w := range watching {
			w.cancel()
		}
	}()
	for {
		if _, err := os.Stat(j.Dir); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		now := time.Now()
		p, err := r.reconcile(ctx, j, now)
		if err != nil && r.Log != nil {
			r.Log.Error("watchdog", "err", err)
		}
		wait := wakeAfter(now, p.next, interval, changed != nil)
		if watchOwners(ctx, watching, p.owners, interval, ended) {
			wait = interval // an owner ended but looked alive still: look again soon
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-changed:
			if !ok {
				changed = nil // inotify failed: poll every interval
			}
		case <-ended:
		case <-timer.C:
		}
	}
}

// ownerWatch is a running Exited of one owner.
type ownerWatch struct {
	cancel context.CancelFunc
	done   <-chan struct{}
}

// watchOwners makes watching watch exactly owners: for each new one, a watch (Exited)
// that signals ended when it ends; the watches of owners no longer needed stop. It
// reports whether the watch of one of owners has seen it end already (a pass that saw
// it alive raced with its exit).
func watchOwners(ctx context.Context, watching map[Owner]ownerWatch, owners map[Owner]bool, interval time.Duration, ended chan<- struct{}) (endedAlready bool) {
	for o, w := range watching {
		if !owners[o] {
			w.cancel()
			delete(watching, o)
		}
	}
	for o := range owners {
		if w, ok := watching[o]; ok {
			select {
			case <-w.done:
				endedAlready = true
			default:
			}
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		done := Exited(wctx, o, interval)
		watching[o] = ownerWatch{cancel: cancel, done: done}
		go func() {
			select {
			case <-done:
				select {
				case ended <- struct{}{}:
				default:
				}
			case <-wctx.Done():
			}
		}()
	}
	return endedAlready
}

// wakeAfter is how long Run sleeps at now, given the earliest deadline left (zero:
// none) and whether it is woken by changes to the journal.
func wakeAfter(now, next time.Time, interval time.Duration, notified bool) time.Duration {
	if !notified {
		return interval
	}
	wait := idleWait
	if !next.IsZero() {
		wait = min(wait, max(next.Sub(now), interval))
	}
	return wait
}

// watchDir returns a channel that receives when an entry of dir is written, renamed
// in or removed, or dir itself goes; nil if inotify is not available.
func watchDir(ctx context.Context, dir string) <-chan struct{} {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil
	}
	mask := uint32(syscall.IN_MOVED_TO | syscall.IN_CLOSE_WRITE | syscall.IN_DELETE | syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF)
	if _, err := syscall.InotifyAddWatch(fd, dir, mask); err != nil {
		syscall.Close(fd)
		return nil
	}
	f := os.NewFile(uintptr(fd), "inotify:"+dir) // non-blocking: Close ends a Read
	context.AfterFunc(ctx, func() { f.Close() })
	ch := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch
}

// LockFile is the file inside the journal dir that a running watchdog holds flock on.
const LockFile = "watchdog.lock"

// Hold the flock for the process lifetime; returns false when another watchdog has it.
func acquire(dir string) (*os.File, bool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(dir+"/"+LockFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false, nil
	}
	return f, true, nil
}

// Serve runs the watchdog for journal dir unless one already runs (then it returns nil at
// once). It is the body of `swarmckpt worker watchdog`.
func Serve(ctx context.Context, r Releaser, dir string, interval time.Duration) error {
	f, ok, err := acquire(dir)
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	if !ok {
		return nil
	}
	defer f.Close()
	return r.Run(ctx, Journal{Dir: dir}, interval)
}

// Running reports whether a watchdog holds the journal's lock.
func Running(dir string) bool {
	f, ok, err := acquire(dir)
	if err != nil {
		return false
	}
	if ok {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		return false
	}
	return true
}

// Ensure starts the watchdog process argv (e.g. swarmckpt worker watchdog --journal DIR)
// in its own session, detached from the worker, unless one already holds the journal.
// It returns the started process's PID, or 0 when one was running.
func Ensure(dir string, argv []string) (int, error) {
	if Running(dir) {
		return 0, nil
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer devnull.Close()
	logf, err := os.OpenFile(dir+"/watchdog.log", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("watchdog: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("watchdog: start %v: %w", argv, err)
	}
	pid := cmd.Process.Pid
	go func() { _ = cmd.Wait() }() // reap it if it ends while we live; it outlives us otherwise
	// Wait until it holds the lock so that a following Ensure does not start a second.
	for i := 0; i < 200 && !Running(dir); i++ {
		time.Sleep(5 * time.Millisecond)
	}
	return pid, nil
}
