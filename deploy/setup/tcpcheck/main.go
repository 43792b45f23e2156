//go:debug multipathtcp=0

// Command tcpcheck proves that a CRIU binary can dump a process holding an established
// TCP connection, which is what swarmckpt needs and what CRIU 4.1 cannot do on some
// kernels ("Can't get 1:16 opt"). make setup runs it as root:
//
//	go run ./deploy/setup/tcpcheck -criu /usr/local/sbin/criu
//
// It re-executes itself in a fresh network namespace (so CRIU's network lock never
// touches the host), opens a TCP connection to itself over loopback with data in flight,
// and has CRIU dump that process with --tcp-established --leave-running into a private
// temporary directory. Exit 0 when the dump succeeded; otherwise the tail of CRIU's log.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	criu := flag.String("criu", "criu", "criu binary to check")
	child := flag.Bool("child", false, "internal: hold a TCP connection until killed")
	flag.Parse()
	if *child {
		holdConnection()
		return
	}
	if err := check(*criu); err != nil {
		fmt.Fprintf(os.Stderr, "tcpcheck: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("tcpcheck: criu dumped an established TCP connection")
}

func check(criu string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "swarmckpt-tcpcheck-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The child runs in its own network namespace and session; its stdout says when the
	// connection is up.
	cmd := exec.Command("unshare", "--net", "--", exe, "-child")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start child (needs root and unshare): %w", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	buf := make([]byte, 64)
	_ = out.(*os.File).SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := out.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "ready") {
		return fmt.Errorf("child did not open its TCP connection (%v, %q)", err, buf[:n])
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	dump := exec.Command(criu, "dump", "-t", pid, "-D", dir, "-o", "dump.log", "-v4",
		"--tcp-established", "--leave-running", "--shell-job", "--network-lock", "nftables")
	if b, err := dump.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "dump.log"))
		lines := strings.Split(strings.TrimSpace(string(log)), "\n")
		if len(lines) > 6 {
			lines = lines[len(lines)-6:]
		}
		return fmt.Errorf("%s cannot dump an established TCP connection: %v %s\n%s", criu, err, b, strings.Join(lines, "\n"))
	}
	imgs, _ := filepath.Glob(filepath.Join(dir, "tcp-stream-*.img"))
	if len(imgs) == 0 {
		return fmt.Errorf("%s dumped the process but wrote no tcp-stream image", criu)
	}
	return nil
}

func holdConnection() {
	if err := exec.Command("ip", "link", "set", "lo", "up").Run(); err != nil {
		fmt.Fprintln(os.Stderr, "ip link set lo up:", err)
		os.Exit(1)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := l.Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, _ = c.Write([]byte("unread bytes in the peer's receive queue"))
	fmt.Println("ready")
	_ = s
	for {
		time.Sleep(time.Hour)
	}
}
