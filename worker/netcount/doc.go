// Package netcount reads a container's network traffic counters: the bytes its
// network namespace's interfaces sent and received (/proc/PID/net/dev, loopback left
// out), for the minimal algorithm's "did this container carry a byte since its last
// image?" (docs/algorithms.md "minimal on a real stack").
package netcount
