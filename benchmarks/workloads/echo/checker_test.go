package main

import (
	"errors"
	"testing"
)

func sendN(c *Checker, from, to uint64) {
	for s := from; s <= to; s++ {
		c.Sent(s)
	}
}

func TestCheckerInOrder(t *testing.T) {
	c := NewChecker()
	sendN(c, 1, 100)
	for s := uint64(1); s <= 100; s++ {
		if v := c.Observe(s); v != InOrder {
			t.Fatalf("seq %d: got %v, want in-order", s, v)
		}
	}
	if !c.Clean() || c.Replies != 100 || c.LastReply() != 100 {
		t.Fatalf("after 100 in-order replies: %+v, LastReply=%d", c, c.LastReply())
	}
}

func TestCheckerGapDuplicatePhantom(t *testing.T) {
	c := NewChecker()
	sendN(c, 1, 10)
	steps := []struct {
		seq  uint64
		want Verdict
	}{
		{1, InOrder}, {2, InOrder}, {5, Gap}, {6, InOrder}, {6, Duplicate},
		{3, Duplicate}, {7, InOrder}, {11, Phantom}, {10, Gap},
	}
	for i, s := range steps {
		if got := c.Observe(s.seq); got != s.want {
			t.Fatalf("step %d seq %d: got %v, want %v", i, s.seq, got, s.want)
		}
	}
	if c.Gaps != 2 || c.Missing != 4 || c.Duplicates != 2 || c.Phantoms != 1 {
		t.Fatalf("counters: gaps=%d missing=%d dups=%d phantoms=%d, want 2 4 2 1",
			c.Gaps, c.Missing, c.Duplicates, c.Phantoms)
	}
	if c.Clean() {
		t.Fatal("Clean() = true after gaps and duplicates")
	}
}

func TestCheckerReconnectCountsLost(t *testing.T) {
	c := NewChecker()
	sendN(c, 1, 10)
	for s := uint64(1); s <= 7; s++ {
		c.Observe(s)
	}
	// 8, 9, 10 were in flight when the connection broke; the new one starts at 11.
	c.Reconnected(11)
	if c.Lost != 3 {
		t.Fatalf("Lost = %d, want 3", c.Lost)
	}
	sendN(c, 11, 12)
	if v := c.Observe(11); v != InOrder {
		t.Fatalf("first reply on new connection: %v, want in-order", v)
	}
	if v := c.Observe(12); v != InOrder {
		t.Fatalf("second reply on new connection: %v, want in-order", v)
	}
	if c.Gaps != 0 {
		t.Fatalf("a reconnect must not count as a gap, got %d", c.Gaps)
	}
	// Nothing unanswered: a second reconnect loses nothing.
	c.Reconnected(13)
	if c.Lost != 3 {
		t.Fatalf("Lost = %d after clean reconnect, want 3", c.Lost)
	}
}

func TestLineRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 100} {
		line := FormatLine(12345, size)
		if line[len(line)-1] != '\n' {
			t.Fatalf("size %d: line does not end in newline: %q", size, line)
		}
		if want := len("12345") + 1 + size + map[bool]int{true: 1}[size > 0]; len(line) != want {
			t.Fatalf("size %d: len %d, want %d", size, len(line), want)
		}
		seq, err := ParseSeq(string(line))
		if err != nil || seq != 12345 {
			t.Fatalf("size %d: ParseSeq = %d, %v", size, seq, err)
		}
	}
	for _, bad := range []string{"", "\n", "abc\n", "0\n", "-1 x\n"} {
		if _, err := ParseSeq(bad); !errors.Is(err, ErrBadLine) {
			t.Errorf("ParseSeq(%q) = %v, want ErrBadLine", bad, err)
		}
	}
}
