package criuimg

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"
)

// statesBlackhole is where the states client's pending connect goes: a loopback
// address whose packets an nftables rule of the test drops, so the SYN is never answered.
const statesBlackhole = "127.0.0.9"

// runStatesHelper holds TCP sockets in several states for TestCRIUTCPStates.
//
// states-server listens on addr; each accepted connection's first byte says what to
// do with it: 'c' close it at once (the client's end goes CLOSE_WAIT, the server's
// becomes a kernel-only orphan), 'h' read to EOF and keep it open (the client's end
// half-closed in FIN_WAIT2, the server's in CLOSE_WAIT), anything else keep it open.
//
// states-client opens: a connect to statesBlackhole:80 that stays SYN_SENT, and three
// connections to addr ('e' kept established, 'c', 'h' shut down for writing), then
// writes "ready" into status and holds every socket until killed.
func runStatesHelper(role, addr, status string) int {
	fail := func(what string, err error) int {
		fmt.Fprintln(os.Stderr, role, what+":", err)
		return 1
	}
	switch role {
	case "states-server":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fail("listen", err)
		}
		var keep []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				runtime.KeepAlive(keep)
				return fail("accept", err)
			}
			keep = append(keep, c)
			go func() {
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err != nil {
					return
				}
				switch b[0] {
				case 'c':
					c.Close()
				case 'h':
					_, _ = io.Copy(io.Discard, c)
				}
			}()
		}
	case "states-client":
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
		if err != nil {
			return fail("socket", err)
		}
		sa := &syscall.SockaddrInet4{Port: 80, Addr: [4]byte{127, 0, 0, 9}}
		if err := syscall.Connect(fd, sa); err != syscall.EINPROGRESS {
			return fail("connect to the blackhole", err)
		}
		var keep []net.Conn
		for _, mode := range []byte{'e', 'c', 'h'} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return fail("dial", err)
			}
			if _, err := c.Write([]byte{mode}); err != nil {
				return fail("write", err)
			}
			switch mode {
			case 'c':
				// Wait for the server's FIN: the end is then CLOSE_WAIT.
				if _, err := io.ReadAll(c); err != nil {
					return fail("read to EOF", err)
				}
			case 'h':
				if err := c.(*net.TCPConn).CloseWrite(); err != nil {
					return fail("shutdown", err)
				}
			}
			keep = append(keep, c)
		}
		if err := os.WriteFile(status, []byte("ready"), 0o600); err != nil {
			return fail("status", err)
		}
		for { // hold every socket until killed (a collected net.Conn closes its socket)
			time.Sleep(time.Hour)
			runtime.KeepAlive(keep)
			runtime.KeepAlive(fd)
		}
	}
	return 2
}
