package rewrite_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helperEnv turns the test binary into a traffic helper process for the real CRIU
// tests: "server ADDR" echoes every line of each connection; "client ADDR" sends
// "seq N" lines on one connection, checks each echo and prints "ok N".
const helperEnv = "SWARMCKPT_REWRITE_HELPER"

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		role, addr, _ := strings.Cut(role, " ")
		os.Exit(runHelper(role, addr))
	}
	os.Exit(m.Run())
}

func runHelper(role, addr string) int {
	switch role {
	case "server":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Println("ERR listen:", err)
			return 1
		}
		fmt.Println("listening", ln.Addr())
		for {
			c, err := ln.Accept()
			if err != nil {
				fmt.Println("ERR accept:", err)
				return 1
			}
			fmt.Println("accepted", c.RemoteAddr())
			go func() {
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						fmt.Println("closed", c.RemoteAddr(), err)
						c.Close()
						return
					}
					if _, err := c.Write([]byte(l)); err != nil {
						fmt.Println("ERR write:", err)
						c.Close()
						return
					}
				}
			}()
		}
	case "client":
		defer func() {
			// Stay alive after an error: a process exiting while CRIU detaches from
			// it fails the restore ("Unable to detach"). The test kills it.
			select {}
		}()
		var c net.Conn
		var err error
		for i := 0; i < 500; i++ {
			if c, err = net.Dial("tcp", addr); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			fmt.Println("ERR dial:", err)
			return 1
		}
		fmt.Println("connected", c.LocalAddr(), "->", c.RemoteAddr())
		r := bufio.NewReader(c)
		for n := 1; ; n++ {
			want := "seq " + strconv.Itoa(n) + "\n"
			if _, err := c.Write([]byte(want)); err != nil {
				fmt.Println("ERR write:", err)
				return 1
			}
			got, err := r.ReadString('\n')
			if err != nil {
				fmt.Println("ERR read:", err)
				return 1
			}
			if got != want {
				fmt.Printf("ERR echo %q, want %q\n", got, want)
				return 1
			}
			fmt.Println("ok", n)
			time.Sleep(5 * time.Millisecond)
		}
	}
	fmt.Println("ERR unknown role", role)
	return 2
}
