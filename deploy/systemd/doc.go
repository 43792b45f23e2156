// Package systemd holds the systemd units that supervise swarmckpt on a real install:
// swarmckpt-coordinator.service, swarmckpt-worker@NODE.service and
// swarmckpt-agent@NODE.service, each restarted whenever it ends (Restart=always, 1 s),
// with example settings files (*.env.example, installed as /etc/swarmckpt/*.env). The
// worker's unit signals only the worker's own process (KillMode=process): the detached
// watchdog it starts must outlive it. The lab supervises its daemons the same way
// (deploy/lab, Supervise). docs/operations.md ("Supervision") says how to install them.
//
// The package has no code: its test checks the units (restart policy, kill mode, flags
// the CLI knows, and systemd-analyze verify where systemd is installed).
package systemd
