package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/serve"
	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/window"
)

// Status is the JSON the client serves on GET /status.
type Status struct {
	Role            string   `json:"role"`
	Instance        string   `json:"instance"`
	Seq             uint64   `json:"seq"`            // last seq sent
	LastReplySeq    uint64   `json:"last_reply_seq"` // last seq answered
	Replies         uint64   `json:"replies"`
	Gaps            uint64   `json:"gaps"`
	Missing         uint64   `json:"missing"`
	Duplicates      uint64   `json:"duplicates"`
	Phantoms        uint64   `json:"phantoms"`
	LostOnReconnect uint64   `json:"lost_on_reconnect"`
	Reconnects      uint64   `json:"reconnects"`
	Errors          uint64   `json:"errors"`
	LastError       string   `json:"last_error,omitempty"`
	Connected       bool     `json:"connected"`
	ConnID          uint64   `json:"conn_id"`
	LocalAddr       string   `json:"local_addr"`
	RemoteAddr      string   `json:"remote_addr"`
	LastReplyAgeMS  int64    `json:"last_reply_age_ms"`
	MaxReplyGapMS   float64  `json:"max_reply_gap_ms"` // longest time between two replies
	LastRTTMS       float64  `json:"last_rtt_ms"`
	MaxRTTMS        float64  `json:"max_rtt_ms"`
	Healthy         bool     `json:"healthy"`
	Problems        []string `json:"problems,omitempty"`
	// Churn is set with --churn (not part of Healthy: a churn connection caught
	// half-open by a restore may legitimately fail).
	Churn *ChurnStatus `json:"churn,omitempty"`
}

const sendRing = 1 << 14

type client struct {
	log      *slog.Logger
	target   string
	interval time.Duration
	size     int
	instance string
	churn    *churner // nil without --churn

	mu         sync.Mutex
	chk        *Checker
	connID     uint64
	connected  bool
	local      string
	remote     string
	reconnects uint64
	errors     uint64
	lastErr    string
	lastReply  time.Time
	maxGap     time.Duration
	lastRTT    time.Duration
	maxRTT     time.Duration
	sentAt     [sendRing]time.Time
	replies    *window.Ring // every reply with its round trip (GET /window)
}

func runClient(ctx context.Context, log *slog.Logger, target string, interval time.Duration, size int, churn time.Duration, httpAddr string) error {
	c := &client{log: log, target: target, interval: interval, size: size,
		instance: serve.InstanceID(), chk: NewChecker(), replies: window.New(0)}
	log.Info("echo client starting", "connect", target, "interval", interval.String(), "size", size, "churn", churn.String(), "instance", c.instance)
	if churn > 0 {
		c.churn = &churner{target: target, every: churn, timeout: 10 * time.Second}
		go c.churn.run(ctx)
	}
	go func() {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /status", c.serveStatus)
		mux.HandleFunc("GET /{$}", c.serveStatus)
		mux.HandleFunc("GET /healthz", c.serveHealth)
		mux.HandleFunc("GET /window", c.replies.Handler(serve.JSON))
		if err := serve.HTTP(ctx, log, httpAddr, mux); err != nil {
			log.Error("status server stopped", "err", err)
		}
	}()
	go c.progress(ctx)
	for ctx.Err() == nil {
		conn, err := c.dial(ctx)
		if err != nil {
			return nil // ctx done
		}
		err = c.session(ctx, conn)
		if ctx.Err() != nil {
			return nil
		}
		c.mu.Lock()
		c.connected = false
		c.errors++
		c.lastErr = err.Error()
		c.mu.Unlock()
		log.Warn("connection lost; will reconnect", "conn", c.connID, "err", err)
	}
	return nil
}

// dial retries name resolution and connection until it succeeds or ctx ends.
func (c *client) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	attempts := 0
	for {
		conn, err := d.DialContext(ctx, "tcp", c.target)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		attempts++
		if attempts == 1 || attempts%20 == 0 {
			c.log.Info("waiting for server", "connect", c.target, "attempt", attempts, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// session runs one connection until it fails.
func (c *client) session(ctx context.Context, conn net.Conn) error {
	defer conn.Close()
	c.mu.Lock()
	c.connID++
	if c.connID > 1 {
		c.reconnects++
		c.chk.Reconnected(c.chk.LastSent() + 1)
	}
	c.connected = true
	c.local, c.remote = conn.LocalAddr().String(), conn.RemoteAddr().String()
	c.lastReply = time.Now()
	id := c.connID
	c.mu.Unlock()
	if id > 1 {
		c.log.Warn("RECONNECT", "conn", id, "local", c.local, "remote", c.remote)
	} else {
		c.log.Info("connected", "conn", id, "local", c.local, "remote", c.remote)
	}

	readErr := make(chan error, 1)
	go func() { readErr <- c.read(conn) }()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case err := <-readErr:
			return fmt.Errorf("read: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		c.mu.Lock()
		seq := c.chk.LastSent() + 1
		c.chk.Sent(seq)
		c.sentAt[seq%sendRing] = time.Now()
		c.mu.Unlock()
		if _, err := conn.Write(FormatLine(seq, c.size)); err != nil {
			return fmt.Errorf("write seq %d: %w", seq, err)
		}
	}
}

func (c *client) read(conn net.Conn) error {
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		seq, err := ParseSeq(line)
		now := time.Now()
		c.mu.Lock()
		if err != nil {
			c.errors++
			c.lastErr = err.Error()
			c.mu.Unlock()
			c.log.Error("bad reply", "err", err)
			continue
		}
		expected := c.chk.LastReply() + 1
		v := c.chk.Observe(seq)
		if gap := now.Sub(c.lastReply); gap > c.maxGap {
			c.maxGap = gap
		}
		c.lastReply = now
		if c.chk.LastSent()-seq < sendRing && v != Phantom {
			if sent := c.sentAt[seq%sendRing]; !sent.IsZero() {
				c.lastRTT = now.Sub(sent)
				if c.lastRTT > c.maxRTT {
					c.maxRTT = c.lastRTT
				}
				c.replies.Add(now, c.lastRTT)
			}
		}
		c.mu.Unlock()
		if v != InOrder {
			c.log.Warn(strings.ToUpper(v.String()), "seq", seq, "expected", expected)
		}
	}
}

func (c *client) status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{
		Role: "client", Instance: c.instance,
		Seq: c.chk.LastSent(), LastReplySeq: c.chk.LastReply(), Replies: c.chk.Replies,
		Gaps: c.chk.Gaps, Missing: c.chk.Missing, Duplicates: c.chk.Duplicates,
		Phantoms: c.chk.Phantoms, LostOnReconnect: c.chk.Lost,
		Reconnects: c.reconnects, Errors: c.errors, LastError: c.lastErr,
		Connected: c.connected, ConnID: c.connID, LocalAddr: c.local, RemoteAddr: c.remote,
		MaxReplyGapMS: ms(c.maxGap), LastRTTMS: ms(c.lastRTT), MaxRTTMS: ms(c.maxRTT),
	}
	if !c.lastReply.IsZero() {
		s.LastReplyAgeMS = time.Since(c.lastReply).Milliseconds()
	}
	stall := max(2*time.Second, 20*c.interval)
	if !c.connected {
		s.Problems = append(s.Problems, "not connected")
	}
	if c.connected && time.Duration(s.LastReplyAgeMS)*time.Millisecond > stall {
		s.Problems = append(s.Problems, fmt.Sprintf("no reply for %d ms", s.LastReplyAgeMS))
	}
	for _, p := range []struct {
		n    uint64
		what string
	}{{s.Gaps, "gaps"}, {s.Duplicates, "duplicates"}, {s.Phantoms, "phantoms"},
		{s.Reconnects, "reconnects"}, {s.LostOnReconnect, "lost_on_reconnect"}} {
		if p.n > 0 {
			s.Problems = append(s.Problems, fmt.Sprintf("%s=%d", p.what, p.n))
		}
	}
	s.Healthy = len(s.Problems) == 0
	if c.churn != nil {
		s.Churn = c.churn.status()
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (c *client) serveStatus(w http.ResponseWriter, _ *http.Request) {
	serve.JSON(w, http.StatusOK, c.status())
}

func (c *client) serveHealth(w http.ResponseWriter, _ *http.Request) {
	s := c.status()
	if !s.Healthy {
		http.Error(w, "unhealthy: "+strings.Join(s.Problems, ", "), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// progress logs a summary line every 5 s.
func (c *client) progress(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := c.status()
		c.log.Info("progress", "seq", s.Seq, "last_reply", s.LastReplySeq, "gaps", s.Gaps,
			"duplicates", s.Duplicates, "reconnects", s.Reconnects, "max_rtt_ms", s.MaxRTTMS,
			"healthy", s.Healthy)
	}
}
