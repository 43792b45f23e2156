package ociwrap

import (
	"os"
	"os/signal"
	"syscall"
	"time"
)

// HoldArg, as the first argument of swarmckpt-runtime, makes it the process of a
// network keeper container instead of a runtime: `swarmckpt-runtime __swarmckpt_hold
// DURATION` sleeps until DURATION passed or a SIGTERM/SIGINT came, and exits 0. The
// worker bind-mounts this (static) binary into a keeper container that holds a swarm
// network on a node while a restore joins it (worker/restore, keeper.go).
const HoldArg = "__swarmckpt_hold"

// Hold blocks for d, or until SIGTERM or SIGINT (a container's PID 1 ignores signals
// it has no handler for, so docker stop would otherwise wait its full timeout).
func Hold(d time.Duration) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-time.After(d):
	}
}
