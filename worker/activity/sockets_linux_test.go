package activity

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Sockets lists a loopback TCP connection of this process's own network namespace,
// both ends, and its counters move exactly by the bytes written and read; a read with
// no traffic in between gives the same counters.
func TestSocketsCountsBytesPerConnection(t *testing.T) {
	ns := "/proc/self/ns/net"
	if _, err := Sockets(ns); errors.Is(err, unix.EPERM) {
		t.Skipf("SKIP: entering a network namespace needs CAP_SYS_ADMIN: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			acc <- c
		}
	}()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	srv := <-acc
	defer srv.Close()
	local, remote := cl.LocalAddr().String(), cl.RemoteAddr().String()
	find := func() (client, server Conn) {
		t.Helper()
		cs, err := Sockets(ns)
		if err != nil {
			t.Fatal(err)
		}
		var okc, oks bool
		for _, c := range cs {
			if c.Local == local && c.Remote == remote {
				client, okc = c, true
			}
			if c.Local == remote && c.Remote == local {
				server, oks = c, true
			}
			if c.Local == ln.Addr().String() && c.Remote == "0.0.0.0:0" {
				t.Errorf("the listener is listed: %+v", c)
			}
		}
		if !okc || !oks {
			t.Fatalf("connection %s-%s not both ends in %+v", local, remote, cs)
		}
		return client, server
	}
	// The kernel counts the SYN as an acknowledged byte on the client's side
	// (tcpi_bytes_acked): compare with the fresh connection's counters.
	c0, s0 := find()
	if c0.Sent > 1 || c0.Received != 0 || s0.Sent > 1 || s0.Received != 0 {
		t.Fatalf("a fresh connection has bytes: client %+v server %+v", c0, s0)
	}
	if _, err := cl.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	// The server has not read yet: the bytes count as received on arrival.
	deadline := time.Now().Add(5 * time.Second)
	var c1, s1 Conn
	for c1, s1 = find(); s1.Received != 1000 && time.Now().Before(deadline); c1, s1 = find() {
		time.Sleep(10 * time.Millisecond)
	}
	if c1.Sent-c0.Sent != 1000 || s1.Received != 1000 || c1.Received != 0 || s1.Sent != s0.Sent {
		t.Fatalf("after 1000 bytes client->server: client %+v server %+v", c1, s1)
	}
	if _, err := io.ReadFull(srv, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(cl, buf); err != nil {
		t.Fatal(err)
	}
	c2, s2 := find()
	if c2.Sent-c0.Sent != 1000 || c2.Received != 2 || s2.Sent-s0.Sent != 2 || s2.Received != 1000 {
		t.Fatalf("after 2 bytes back: client %+v server %+v", c2, s2)
	}
	if c3, s3 := find(); c3 != c2 || s3 != s2 {
		t.Fatalf("no traffic, yet the counters moved: %+v %+v, then %+v %+v", c2, s2, c3, s3)
	}
	if _, err := Sockets("/proc/0/ns/net"); !errors.Is(err, ErrSockets) {
		t.Fatalf("Sockets of no namespace: %v, want ErrSockets", err)
	}
	// Read lists them too, sorted.
	c, err := Reader{}.Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for i, k := range c.Conns {
		if (k.Local == local && k.Remote == remote) || (k.Local == remote && k.Remote == local) {
			n++
		}
		if i > 0 && (c.Conns[i-1].Local > k.Local || (c.Conns[i-1].Local == k.Local && c.Conns[i-1].Remote > k.Remote)) {
			t.Fatalf("Read's conns not sorted: %+v", c.Conns)
		}
	}
	if n != 2 {
		t.Fatalf("Read lists %d ends of %s-%s, want 2: %+v", n, local, remote, c.Conns)
	}
}
