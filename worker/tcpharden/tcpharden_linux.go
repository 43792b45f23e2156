package tcpharden

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Sysctl is the per-namespace file Harden writes.
const Sysctl = "/proc/sys/net/ipv4/tcp_retrans_collapse"

// ErrNamespace: the network namespace cannot be opened or entered.
var ErrNamespace = errors.New("tcpharden: network namespace unavailable")

// Harden turns off retransmit collapsing in the network namespace at path (e.g.
// /proc/PID/ns/net). Idempotent; the setting lasts as long as the namespace.
func Harden(path string) error {
	return inNetns(path, func() error {
		if err := os.WriteFile(Sysctl, []byte("0\n"), 0o644); err != nil {
			return fmt.Errorf("tcpharden: turn off TCP retransmit collapsing in %s: %w", path, err)
		}
		return nil
	})
}

// Hardened reports whether retransmit collapsing is off in the namespace at path.
func Hardened(path string) (bool, error) {
	var off bool
	err := inNetns(path, func() error {
		b, err := os.ReadFile(Sysctl)
		if err != nil {
			return fmt.Errorf("tcpharden: read %s in %s: %w", Sysctl, path, err)
		}
		off = strings.TrimSpace(string(b)) == "0"
		return nil
	})
	return off, err
}

// inNetns runs f on a locked OS thread that entered the network namespace at path
// (/proc/sys/net is per namespace, as seen by the calling thread). The thread exits
// with its goroutine (LockOSThread without Unlock), so nothing else ever runs there.
func inNetns(path string, f func() error) error {
	ns, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNamespace, err)
	}
	defer ns.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("%w: enter %s: %w", ErrNamespace, path, err)
			return
		}
		done <- f()
	}()
	return <-done
}
