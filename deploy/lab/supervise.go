package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// RestartPolicy is how the lab restarts a daemon that ended, as systemd's Restart=always
// does for the units in deploy/systemd: after Delay, whatever the exit status; a daemon
// that keeps dying right after its start (ran less than MinRun, Burst times in a row) is
// restarted ever later, doubling up to MaxDelay, so that a broken flag does not spin a
// core; one run of at least MinRun resets that.
type RestartPolicy struct {
	// Delay is the wait before a restart (systemd's RestartSec). Default 300 ms.
	Delay time.Duration
	// MinRun is the shortest run that counts as a successful start. Default 2 s.
	MinRun time.Duration
	// Burst is how many short runs in a row are restarted after Delay before backing
	// off. Default 5.
	Burst int
	// MaxDelay bounds the backed-off delay. Default 10 s.
	MaxDelay time.Duration
}

// DefaultRestartPolicy is the lab's policy: restarted within a second.
func DefaultRestartPolicy() RestartPolicy {
	return RestartPolicy{Delay: 300 * time.Millisecond, MinRun: 2 * time.Second, Burst: 5, MaxDelay: 10 * time.Second}
}

// Next is the pure part: given how long the run that just ended lasted and how many
// short runs came right before it, it returns the delay before the next start and the
// new count of short runs in a row.
func (p RestartPolicy) Next(ran time.Duration, short int) (time.Duration, int) {
	if ran >= p.MinRun {
		return p.Delay, 0
	}
	short++
	if short <= p.Burst {
		return p.Delay, short
	}
	d := p.Delay
	for i := p.Burst; i < short && d < p.MaxDelay; i++ {
		d *= 2
	}
	return min(d, p.MaxDelay), short
}

// Supervise runs argv (its stdin, stdout and stderr are this process's) and restarts it
// whenever it ends, by policy, logging every exit and restart, until ctx ends: then it
// sends the running child SIGTERM, waits up to 10 s for it (then SIGKILL) and returns.
// The child runs in this process's session and process group. 'lab up --daemons' runs
// each daemon under it (`swarmckpt lab supervise -- ...`); 'lab down' kills both by
// their command lines, which name the lab's directories.
func Supervise(ctx context.Context, log *slog.Logger, p RestartPolicy, argv []string) error {
	if len(argv) == 0 {
		return errors.New("lab supervise: no command to run: give it after --")
	}
	log = log.With("component", "supervise", "cmd", argv[0], "args", len(argv)-1)
	short := 0
	for n := 1; ; n++ {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("lab supervise: start %v: %w", argv, err)
		}
		log.Info("started", "pid", cmd.Process.Pid, "start", n)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			log.Info("stopped", "pid", cmd.Process.Pid)
			return nil
		}
		ran := time.Since(start)
		var delay time.Duration
		delay, short = p.Next(ran, short)
		log.Warn("exited; restarting", "pid", cmd.Process.Pid, "status", exitStatus(err), "ran", ran.Round(time.Millisecond), "restart_in", delay, "short_runs", short)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil
		}
	}
}

// exitStatus says how a child ended ("exit 1", "signal killed").
func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "signal " + ws.Signal().String()
		}
		return fmt.Sprintf("exit %d", ee.ExitCode())
	}
	if err != nil {
		return err.Error()
	}
	return "exit 0"
}
