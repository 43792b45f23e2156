package criuimg

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// Environment variables that turn the test binary into a traffic helper process for
// the real CRIU tests (see criu_linux_test.go).
const (
	helperEnv       = "SWARMCKPT_CUT_HELPER"        // "server" or "client"
	helperAddrEnv   = "SWARMCKPT_CUT_HELPER_ADDR"   // address to listen on or dial
	helperStatusEnv = "SWARMCKPT_CUT_HELPER_STATUS" // file the helper keeps its counters in
)

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		switch role {
		case "states-server", "states-client":
			os.Exit(runStatesHelper(role, os.Getenv(helperAddrEnv), os.Getenv(helperStatusEnv)))
		}
		os.Exit(runHelper(role, os.Getenv(helperAddrEnv), os.Getenv(helperStatusEnv)))
	}
	os.Exit(m.Run())
}

// runHelper holds one TCP connection and pushes bytes both ways as fast as it can,
// recording "written read" counters (16 bytes, little endian) at offset 0 of status.
func runHelper(role, addr, status string) int {
	var conn net.Conn
	switch role {
	case "server":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper listen:", err)
			return 1
		}
		conn, err = ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper accept:", err)
			return 1
		}
		ln.Close()
	case "client":
		var err error
		for i := 0; i < 500; i++ {
			if conn, err = net.Dial("tcp", addr); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper dial:", err)
			return 1
		}
	default:
		fmt.Fprintln(os.Stderr, "helper: unknown role", role)
		return 2
	}
	f, err := os.OpenFile(status, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper status:", err)
		return 1
	}
	var written, read atomic.Uint64
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			read.Add(uint64(n))
			if err != nil {
				if err != io.EOF {
					fmt.Fprintln(os.Stderr, "helper read:", err)
				}
				os.Exit(0)
			}
		}
	}()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Write(buf)
			written.Add(uint64(n))
			if err != nil {
				fmt.Fprintln(os.Stderr, "helper write:", err)
				os.Exit(0)
			}
		}
	}()
	var rec [16]byte
	for {
		binary.LittleEndian.PutUint64(rec[:8], written.Load())
		binary.LittleEndian.PutUint64(rec[8:], read.Load())
		if _, err := f.WriteAt(rec[:], 0); err != nil {
			fmt.Fprintln(os.Stderr, "helper status write:", err)
			return 1
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// readStatus returns the helper's (written, read) counters, or ok=false if not yet there.
func readStatus(t *testing.T, path string) (written, read uint64, ok bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 16 {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:16]), true
}
