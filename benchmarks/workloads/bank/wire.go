package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrWire is returned for a line that is not a valid protocol message.
var ErrWire = errors.New("bank: malformed message")

// Message is one protocol line: HELLO, T (transfer) or A (ack).
type Message struct {
	Kind string // "HELLO", "T" or "A"
	A, B int64  // HELLO: id, count; T: seq, amount; A: seq, cumulative
	C    int64  // HELLO: initial
}

// Format returns the wire line of m.
func (m Message) Format() []byte {
	if m.Kind == "HELLO" {
		return fmt.Appendf(nil, "HELLO %d %d %d\n", m.A, m.B, m.C)
	}
	return fmt.Appendf(nil, "%s %d %d\n", m.Kind, m.A, m.B)
}

// ParseMessage parses one wire line.
func ParseMessage(line string) (Message, error) {
	f := strings.Fields(line)
	bad := func() (Message, error) {
		return Message{}, fmt.Errorf("%w: %q", ErrWire, line)
	}
	if len(f) == 0 {
		return bad()
	}
	want := 3
	if f[0] == "HELLO" {
		want = 4
	} else if f[0] != "T" && f[0] != "A" {
		return bad()
	}
	if len(f) != want {
		return bad()
	}
	var n [3]int64
	for i, s := range f[1:] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return bad()
		}
		n[i] = v
	}
	return Message{Kind: f[0], A: n[0], B: n[1], C: n[2]}, nil
}
