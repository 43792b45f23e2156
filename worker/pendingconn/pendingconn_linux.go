package pendingconn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SynSent returns the sockets in SYN_SENT of the network namespace of pid (inode ->
// ports). Taken while the namespace is still network-locked, it names every connect
// whose SYN the lock dropped.
func SynSent(pid int) (map[uint64]Ports, error) {
	var entries []Entry
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, name))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && name == "tcp6" {
				continue // IPv6 off in the namespace
			}
			return nil, fmt.Errorf("pendingconn: the container's TCP sockets: %w", err)
		}
		es, err := Parse(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		entries = append(entries, es...)
	}
	out := map[uint64]Ports{}
	for _, e := range entries {
		if e.State == tcpSynSent && e.Inode != 0 {
			out[e.Inode] = Ports{e.Local.Port(), e.Remote.Port()}
		}
	}
	return out, nil
}

// Fail shuts down every socket in SYN_SENT whose ports are in want, held by any process
// in the PID namespace of pid (a container's init), and returns the ports of those it
// ended. A socket that left SYN_SENT before its turn is left alone.
func Fail(ctx context.Context, pid int, want []Ports) ([]Ports, error) {
	if len(want) == 0 {
		return nil, nil
	}
	all, err := SynSent(pid)
	if err != nil {
		return nil, err
	}
	set := make(map[Ports]bool, len(want))
	for _, p := range want {
		set[p] = true
	}
	pending := map[uint64]Ports{}
	for ino, p := range all {
		if set[p] {
			pending[ino] = p
		}
	}
	return FailInodes(ctx, pid, pending)
}

// FailInodes shuts down the sockets named by inode (as SynSent returns them) that are
// still in SYN_SENT, held by any process in the PID namespace of pid, and returns the
// ports of those it ended.
func FailInodes(ctx context.Context, pid int, pending map[uint64]Ports) ([]Ports, error) {
	if len(pending) == 0 {
		return nil, nil
	}
	holders, err := holders(ctx, pid, pending)
	if err != nil {
		return nil, err
	}
	var failed []Ports
	var errs []error
	for ino, h := range holders {
		ok, err := shutdownIn(h.pid, h.fd)
		if err != nil {
			errs = append(errs, fmt.Errorf("pendingconn: socket %s (pid %d fd %d): %w", pending[ino], h.pid, h.fd, err))
			continue
		}
		if ok {
			failed = append(failed, pending[ino])
		}
	}
	return failed, errors.Join(errs...)
}

type holder struct{ pid, fd int }

// holders finds, for each inode, one process of pid's PID namespace and its fd for it.
func holders(ctx context.Context, pid int, inodes map[uint64]Ports) (map[uint64]holder, error) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		return nil, fmt.Errorf("pendingconn: container init %d: %w", pid, err)
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("pendingconn: %w", err)
	}
	out := map[uint64]holder{}
	for _, d := range procs {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p)); err != nil || l != ns {
			continue
		}
		fdDir := fmt.Sprintf("/proc/%d/fd", p)
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // exited meanwhile
		}
		for _, f := range fds {
			l, err := os.Readlink(filepath.Join(fdDir, f.Name()))
			if err != nil {
				continue
			}
			s, ok := strings.CutPrefix(l, "socket:[")
			if !ok {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
			if err != nil {
				continue
			}
			if _, want := inodes[ino]; !want {
				continue
			}
			if _, seen := out[ino]; seen {
				continue
			}
			fd, _ := strconv.Atoi(f.Name())
			out[ino] = holder{p, fd}
		}
		if len(out) == len(inodes) {
			break
		}
	}
	return out, nil
}

// shutdownIn takes fd of process pid and shuts it down if it is still in SYN_SENT.
func shutdownIn(pid, fd int) (bool, error) {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false, fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(pfd)
	sfd, err := unix.PidfdGetfd(pfd, fd, 0)
	if err != nil {
		return false, fmt.Errorf("pidfd_getfd: %w", err)
	}
	defer unix.Close(sfd)
	info, err := unix.GetsockoptTCPInfo(sfd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return false, fmt.Errorf("TCP_INFO: %w", err)
	}
	if info.State != tcpSynSent {
		return false, nil
	}
	if err := unix.Shutdown(sfd, unix.SHUT_RDWR); err != nil {
		return false, fmt.Errorf("shutdown: %w", err)
	}
	return true, nil
}
