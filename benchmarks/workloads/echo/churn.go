package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ChurnStatus is the churn part of the client's /status (--churn): short connections
// opened besides the long-lived one, each carrying one line and its echo.
type ChurnStatus struct {
	Every     string  `json:"every"`     // --churn
	Started   uint64  `json:"started"`   // connections dialed
	OK        uint64  `json:"ok"`        // connected, echoed and closed
	Failed    uint64  `json:"failed"`    // failed at dial, write, read or a bad echo
	InFlight  int64   `json:"in_flight"` // dialed, not finished yet
	LastError string  `json:"last_error,omitempty"`
	MaxMS     float64 `json:"max_ms"`  // longest dial-to-echo time of a successful one
	LastMS    float64 `json:"last_ms"` // dial-to-echo time of the last successful one
}

// churner opens a new connection every `every`, each in its own goroutine (a stalled one
// does not hold back the next): dial, write one line, read its echo, close. This is the
// connect-per-request client of real stacks, whose sockets are caught in every TCP
// state by a checkpoint (SYN_SENT, established, closing).
type churner struct {
	target  string
	every   time.Duration
	timeout time.Duration

	started, ok, failed atomic.Uint64
	inFlight            atomic.Int64
	mu                  sync.Mutex
	lastErr             string
	maxDur, lastDur     time.Duration
}

func (ch *churner) run(ctx context.Context) {
	t := time.NewTicker(ch.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		go ch.one(ctx, ch.started.Add(1))
	}
}

func (ch *churner) one(ctx context.Context, n uint64) {
	ch.inFlight.Add(1)
	defer ch.inFlight.Add(-1)
	start := time.Now()
	err := ch.exchange(ctx, n)
	if ctx.Err() != nil {
		return
	}
	d := time.Since(start)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if err != nil {
		ch.failed.Add(1)
		ch.lastErr = err.Error()
		return
	}
	ch.ok.Add(1)
	ch.lastDur = d
	ch.maxDur = max(ch.maxDur, d)
}

func (ch *churner) exchange(ctx context.Context, n uint64) error {
	d := net.Dialer{Timeout: ch.timeout}
	conn, err := d.DialContext(ctx, "tcp", ch.target)
	if err != nil {
		return fmt.Errorf("churn %d: %w", n, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(ch.timeout)); err != nil {
		return fmt.Errorf("churn %d: %w", n, err)
	}
	if _, err := conn.Write(FormatLine(n, 0)); err != nil {
		return fmt.Errorf("churn %d: write: %w", n, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("churn %d: read: %w", n, err)
	}
	if got, err := ParseSeq(line); err != nil || got != n {
		return fmt.Errorf("churn %d: echo %q is not what was sent", n, line)
	}
	return nil
}

func (ch *churner) status() *ChurnStatus {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return &ChurnStatus{Every: ch.every.String(), Started: ch.started.Load(), OK: ch.ok.Load(),
		Failed: ch.failed.Load(), InFlight: ch.inFlight.Load(), LastError: ch.lastErr,
		MaxMS: ms(ch.maxDur), LastMS: ms(ch.lastDur)}
}
