package watchdog

import (
	"context"
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Exited returns a channel that is closed once o has ended (at once if it has already),
// or never if ctx ends first. It watches o through a pidfd (the kernel wakes it when
// the process exits, nothing polls); where pidfds are not available (kernel < 5.3,
// seccomp) it looks at /proc/PID/stat every interval.
func Exited(ctx context.Context, o Owner, interval time.Duration) <-chan struct{} {
	done := make(chan struct{})
	pidfd, err := unix.PidfdOpen(o.Pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			close(done)
			return done
		}
		go pollExited(ctx, o, interval, done)
		return done
	}
	// The pidfd names whatever process has the PID now: it is o's only if o is still
	// alive after it was opened (a PID is not reused while a pidfd holds it).
	if !o.Alive() {
		unix.Close(pidfd)
		close(done)
		return done
	}
	// A pipe whose write end ctx closes ends the poll without a timeout.
	r, w, err := os.Pipe()
	if err != nil {
		unix.Close(pidfd)
		go pollExited(ctx, o, interval, done)
		return done
	}
	stop := context.AfterFunc(ctx, func() { w.Close() })
	go func() {
		defer unix.Close(pidfd)
		defer r.Close()
		defer func() {
			if stop() { // ctx did not end: the write end is still open
				w.Close()
			}
		}()
		rfd := int(r.Fd())
		for {
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}, {Fd: int32(rfd), Events: unix.POLLIN}}
			_, err := unix.Poll(fds, -1)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				// Cannot poll: look at /proc instead.
				pollExited(ctx, o, interval, done)
				return
			}
			if fds[0].Revents != 0 {
				close(done)
				return
			}
			if fds[1].Revents != 0 { // ctx ended
				return
			}
		}
	}()
	return done
}

// pollExited closes done once o is no longer alive, looking every interval, unless
// ctx ends first.
func pollExited(ctx context.Context, o Owner, interval time.Duration, done chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for o.Alive() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	close(done)
}
