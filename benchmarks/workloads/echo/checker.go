package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Verdict is what the Checker concluded about one reply.
type Verdict int

// Verdicts of Checker.Observe.
const (
	InOrder   Verdict = iota // the reply carried the next expected seq
	Gap                      // the reply skipped one or more seqs
	Duplicate                // the reply carried a seq already seen (or passed)
	Phantom                  // the reply carried a seq that was never sent
)

func (v Verdict) String() string {
	switch v {
	case InOrder:
		return "in-order"
	case Gap:
		return "gap"
	case Duplicate:
		return "duplicate"
	case Phantom:
		return "phantom"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// Checker is the pure sequence checker of the echo client. It is not safe for
// concurrent use; the client guards it with a mutex.
//
// Over one connection replies must arrive as 1, 2, 3, ... exactly as sent. After a
// reconnect (Reconnected) the expectation moves to the first seq sent on the new
// connection, and what was unanswered on the old one is counted as lost.
type Checker struct {
	next       uint64 // seq the next reply must carry
	sent       uint64 // highest seq sent so far
	Replies    uint64 // replies observed
	Gaps       uint64 // gap events
	Missing    uint64 // seqs skipped by gaps
	Duplicates uint64 // replies with a seq at or below the last one seen
	Phantoms   uint64 // replies with a seq never sent
	Lost       uint64 // messages unanswered when a connection broke
}

// NewChecker returns a checker expecting seq 1 first.
func NewChecker() *Checker { return &Checker{next: 1} }

// Sent records that seq was written. Seqs must be sent in increasing order.
func (c *Checker) Sent(seq uint64) {
	if seq > c.sent {
		c.sent = seq
	}
}

// LastSent returns the highest seq sent.
func (c *Checker) LastSent() uint64 { return c.sent }

// LastReply returns the highest seq that came back in order (or after a gap).
func (c *Checker) LastReply() uint64 { return c.next - 1 }

// Observe classifies one reply and updates the counters.
func (c *Checker) Observe(seq uint64) Verdict {
	c.Replies++
	switch {
	case seq > c.sent:
		c.Phantoms++
		return Phantom
	case seq < c.next:
		c.Duplicates++
		return Duplicate
	case seq > c.next:
		c.Gaps++
		c.Missing += seq - c.next
		c.next = seq + 1
		return Gap
	default:
		c.next++
		return InOrder
	}
}

// Reconnected tells the checker a new connection replaced a broken one and that the
// next message sent on it carries seq firstSeq. Messages sent but not answered on the
// old connection count as Lost; replies are expected from firstSeq on.
func (c *Checker) Reconnected(firstSeq uint64) {
	if c.sent >= c.next {
		c.Lost += c.sent - c.next + 1
	}
	c.next = firstSeq
}

// Clean reports whether no gap, duplicate, phantom or loss was ever seen.
func (c *Checker) Clean() bool {
	return c.Gaps == 0 && c.Duplicates == 0 && c.Phantoms == 0 && c.Lost == 0
}

// ErrBadLine is returned by ParseSeq for a line that is not "<seq>[ payload]\n".
var ErrBadLine = errors.New("echo: malformed line")

// FormatLine returns the wire line for seq with size bytes of payload.
func FormatLine(seq uint64, size int) []byte {
	b := strconv.AppendUint(nil, seq, 10)
	if size > 0 {
		b = append(b, ' ')
		for i := 0; i < size; i++ {
			b = append(b, 'a'+byte((seq+uint64(i))%26))
		}
	}
	return append(b, '\n')
}

// ParseSeq extracts the seq from a wire line.
func ParseSeq(line string) (uint64, error) {
	line = strings.TrimSuffix(line, "\n")
	head, _, _ := strings.Cut(line, " ")
	seq, err := strconv.ParseUint(head, 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("%w: %q", ErrBadLine, truncate(line, 40))
	}
	return seq, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
