//go:build !linux

package activity

import "fmt"

// Sockets needs Linux's netlink sock_diag.
func Sockets(ns string) ([]Conn, error) {
	return nil, fmt.Errorf("%w: %s: netlink sock_diag is Linux only", ErrSockets, ns)
}
