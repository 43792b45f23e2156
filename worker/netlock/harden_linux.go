package netlock

import (
	"context"
	"fmt"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/tcpharden"
)

// Harden implements Locker with tcpharden in /proc/PID/ns/net.
func (n *NFT) Harden(_ context.Context, c container.Ref) error {
	if c.Pid <= 0 {
		return fmt.Errorf("netlock %s: no pid: %w", c, ErrNamespace)
	}
	if err := tcpharden.Harden(fmt.Sprintf("/proc/%d/ns/net", c.Pid)); err != nil {
		return fmt.Errorf("netlock %s: %w: %w", c, ErrNamespace, err)
	}
	return nil
}

// Hardened implements Locker.
func (n *NFT) Hardened(_ context.Context, c container.Ref) (bool, error) {
	if c.Pid <= 0 {
		return false, fmt.Errorf("netlock %s: no pid: %w", c, ErrNamespace)
	}
	off, err := tcpharden.Hardened(fmt.Sprintf("/proc/%d/ns/net", c.Pid))
	if err != nil {
		return false, fmt.Errorf("netlock %s: %w: %w", c, ErrNamespace, err)
	}
	return off, nil
}
