// Command testimg is the data plane's own tiny test workload, built statically and
// imported into Docker as swarmckpt/dptest:dev by the worker's tests and benchmarks so
// that they do not depend on any registry. Modes:
//
//	testimg counter               prints "count N" every 100 ms
//	testimg memhog MIB            fills MIB MiB with a deterministic pattern, prints
//	                              "sum HEX pass N" once a second (sha256 of the memory)
//	testimg echo-server :PORT     echoes every line back on each TCP connection
//	                              (plain TCP; TESTIMG_MPTCP=1 makes it MPTCP, which CRIU refuses)
//	testimg echo-client ADDR      sends "seq N" lines, checks each echo, prints "ok N";
//	                              prints "ERR ..." and exits 3 on any gap or error
//	testimg filewriter DIR        state in the container's own filesystem: deletes the
//	                              image's /etc/image-file, writes DIR/config once, then
//	                              keeps DIR/db open and appends "line N" to it every
//	                              50 ms, printing "wrote N"
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testimg counter|memhog MIB|echo-server :PORT|echo-client ADDR")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "counter":
		for i := 0; ; i++ {
			fmt.Printf("count %d\n", i)
			time.Sleep(100 * time.Millisecond)
		}
	case "memhog":
		memhog(arg(2))
	case "echo-server":
		echoServer(arg(2))
	case "echo-client":
		echoClient(arg(2))
	case "filewriter":
		fileWriter(arg(2))
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
}

func arg(i int) string {
	if len(os.Args) <= i {
		fmt.Fprintf(os.Stderr, "%s needs an argument\n", os.Args[1])
		os.Exit(2)
	}
	return os.Args[i]
}

func memhog(mib string) {
	n, err := strconv.Atoi(mib)
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "bad MiB %q\n", mib)
		os.Exit(2)
	}
	buf := make([]byte, n<<20)
	x := uint64(0x9e3779b97f4a7c15)
	for i := 0; i+8 <= len(buf); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for j := 0; j < 8; j++ {
			buf[i+j] = byte(x >> (8 * j))
		}
	}
	for pass := 0; ; pass++ {
		fmt.Printf("sum %x pass %d\n", sha256.Sum256(buf), pass)
		time.Sleep(time.Second)
	}
}

func echoServer(addr string) {
	// Go enables MPTCP on listeners by default, which CRIU cannot dump; TESTIMG_MPTCP=1
	// keeps it on to test exactly that failure.
	var lc net.ListenConfig
	lc.SetMultipathTCP(os.Getenv("TESTIMG_MPTCP") == "1")
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		fmt.Println("ERR listen:", err)
		os.Exit(3)
	}
	fmt.Println("listening", addr)
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Println("ERR accept:", err)
			os.Exit(3)
		}
		fmt.Println("accepted", c.RemoteAddr())
		go func(c net.Conn) {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					fmt.Println("closed", c.RemoteAddr(), err)
					return
				}
				if _, err := c.Write([]byte(line)); err != nil {
					fmt.Println("closed", c.RemoteAddr(), err)
					return
				}
			}
		}(c)
	}
}

func echoClient(addr string) {
	var c net.Conn
	var err error
	for i := 0; i < 100; i++ {
		d := net.Dialer{}
		d.SetMultipathTCP(false)
		if c, err = d.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		fmt.Println("ERR dial:", err)
		os.Exit(3)
	}
	fmt.Println("connected", c.LocalAddr(), "->", c.RemoteAddr())
	r := bufio.NewReader(c)
	for i := 0; ; i++ {
		want := fmt.Sprintf("seq %d\n", i)
		if _, err := c.Write([]byte(want)); err != nil {
			fmt.Println("ERR write:", err)
			os.Exit(3)
		}
		got, err := r.ReadString('\n')
		if err != nil {
			fmt.Println("ERR read:", err)
			os.Exit(3)
		}
		if got != want {
			fmt.Printf("ERR got %q want %q\n", got, want)
			os.Exit(3)
		}
		fmt.Printf("ok %d\n", i)
		time.Sleep(50 * time.Millisecond)
	}
}

func fileWriter(dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "filewriter:", err)
		os.Exit(1)
	}
	if err := os.Remove("/etc/image-file"); err != nil && !os.IsNotExist(err) {
		fail(err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		fail(err)
	}
	if err := os.WriteFile(dir+"/config", []byte("written once\n"), 0o640); err != nil {
		fail(err)
	}
	f, err := os.OpenFile(dir+"/db", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fail(err)
	}
	for i := 0; ; i++ {
		if _, err := fmt.Fprintf(f, "line %d\n", i); err != nil {
			fail(err)
		}
		fmt.Printf("wrote %d\n", i)
		time.Sleep(50 * time.Millisecond)
	}
}
