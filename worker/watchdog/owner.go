package watchdog

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Owner is the worker process that wrote a hold: its PID and its start time (clock
// ticks after boot, field 22 of /proc/PID/stat), so that a PID reused by another
// process is not taken for the owner.
type Owner struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// ErrNoProcess: the process is gone (or is a zombie: it ended, nobody reaped it yet).
var ErrNoProcess = errors.New("watchdog: no such process")

// Self is the calling process as an Owner.
func Self() (Owner, error) { return OwnerOf(os.Getpid()) }

// OwnerOf is the running process pid as an Owner.
func OwnerOf(pid int) (Owner, error) {
	start, err := procStart(pid)
	if err != nil {
		return Owner{}, err
	}
	return Owner{Pid: pid, Start: start}, nil
}

// Alive reports whether o still runs: a process of that PID and start time exists and
// has not ended.
func (o Owner) Alive() bool {
	start, err := procStart(o.Pid)
	return err == nil && start == o.Start
}

func (o Owner) String() string { return fmt.Sprintf("pid %d (start %d)", o.Pid, o.Start) }

// procStart reads the start time of pid from /proc/PID/stat; a zombie or a process
// that is gone is ErrNoProcess.
func procStart(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("%w: pid %d", ErrNoProcess, pid)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return 0, fmt.Errorf("%w: pid %d", ErrNoProcess, pid)
	}
	if err != nil {
		return 0, fmt.Errorf("watchdog: /proc/%d/stat: %w", pid, err)
	}
	return parseStat(pid, string(b))
}

// parseStat extracts the start time from a /proc/PID/stat line. Pure.
func parseStat(pid int, s string) (uint64, error) {
	// The command name (field 2) is in parentheses and may hold spaces or ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("watchdog: /proc/%d/stat: no command field in %q", pid, s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state), f[19] field 22 (starttime)
	if len(f) < 20 {
		return 0, fmt.Errorf("watchdog: /proc/%d/stat: %d fields after the command, want 20 or more", pid, len(f))
	}
	if f[0] == "Z" || f[0] == "X" || f[0] == "x" {
		return 0, fmt.Errorf("%w: pid %d ended (state %s)", ErrNoProcess, pid, f[0])
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("watchdog: /proc/%d/stat: start time %q: %w", pid, f[19], err)
	}
	return start, nil
}
