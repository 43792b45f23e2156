package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/serve"
	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/window"
)

// holderConfig is the configuration of one account holder.
type holderConfig struct {
	ID        int           // holder id, 1..Count
	Count     int           // number of holders K
	Initial   int64         // initial balance of every holder
	Interval  time.Duration // time between transfers this holder initiates
	MaxAmount int64         // transfers move 1..MaxAmount
	Listen    string        // TCP address for peer connections, default :9000
	HTTP      string        // HTTP address for /state, default :8080
	Peers     []string      // static peer addresses host:port (may include self)
	Service   string        // or: DNS name resolving to every holder's IP (dnsrr)
	PeerPort  string        // port of peers found through Service
	Seed      uint64        // seed of the transfer choices
}

type peerConn struct {
	id     int
	conn   net.Conn
	r      *bufio.Reader
	out    chan []byte
	ackMu  sync.Mutex
	ack    []byte
	ackSig chan struct{}
	done   chan struct{}
	once   sync.Once
}

func (pc *peerConn) close() {
	pc.once.Do(func() {
		close(pc.done)
		pc.conn.Close()
	})
}

type holder struct {
	cfg      holderConfig
	log      *slog.Logger
	instance string

	mu          sync.Mutex
	ledger      *Ledger
	pausedUntil time.Time // transfers are not initiated before this (a lease: see setPaused)
	peers       map[int]*peerConn
	ever        map[int]bool
	reconnects  uint64
	disconnects uint64
	addrIDs     map[string]int // dial target -> holder id learned in the handshake
	// sentAt holds per peer the send time of every transfer not yet acked; an ack
	// records each transfer it covers in acks with its latency (send to ack).
	sentAt map[int]map[uint64]time.Time
	acks   *window.Ring
}

func runHolder(ctx context.Context, log *slog.Logger, cfg holderConfig) error {
	l, err := NewLedger(cfg.ID, cfg.Count, cfg.Initial)
	if err != nil {
		return err
	}
	h := &holder{cfg: cfg, log: log.With("id", cfg.ID), instance: serve.InstanceID(), ledger: l,
		peers: map[int]*peerConn{}, ever: map[int]bool{}, addrIDs: map[string]int{},
		sentAt: map[int]map[uint64]time.Time{}, acks: window.New(0)}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen for peers on %s: %w", cfg.Listen, err)
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	h.log.Info("holder starting", "count", cfg.Count, "initial", cfg.Initial, "listen", ln.Addr().String(),
		"peers", strings.Join(cfg.Peers, ","), "service", cfg.Service, "instance", h.instance)
	go h.accept(ln)
	go h.discover(ctx)
	go h.transfers(ctx)
	go h.progress(ctx)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", h.serveState)
	mux.HandleFunc("GET /{$}", h.serveState)
	mux.HandleFunc("/pause", h.setPaused(true))
	mux.HandleFunc("/resume", h.setPaused(false))
	mux.HandleFunc("GET /healthz", h.serveHealth)
	mux.HandleFunc("GET /window", h.acks.Handler(serve.JSON))
	return serve.HTTP(ctx, h.log, cfg.HTTP, mux)
}

func (h *holder) hello() []byte {
	return Message{Kind: "HELLO", A: int64(h.cfg.ID), B: int64(h.cfg.Count), C: h.cfg.Initial}.Format()
}

// readHello reads the peer's HELLO and checks it agrees on count and initial.
func (h *holder) readHello(r *bufio.Reader) (int, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("reading HELLO: %w", err)
	}
	m, err := ParseMessage(line)
	if err != nil || m.Kind != "HELLO" {
		return 0, fmt.Errorf("want HELLO, got %q: %w", line, ErrWire)
	}
	if m.B != int64(h.cfg.Count) || m.C != h.cfg.Initial {
		return 0, fmt.Errorf("peer %d has count=%d initial=%d, we have %d and %d: fix the flags", m.A, m.B, m.C, h.cfg.Count, h.cfg.Initial)
	}
	return int(m.A), nil
}

// accept takes connections from holders with a lower id (the dialing side of a pair).
func (h *holder) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			r := bufio.NewReader(c)
			id, err := h.readHello(r)
			if err == nil {
				_, err = c.Write(h.hello())
			}
			if err != nil {
				h.log.Warn("handshake failed", "remote", c.RemoteAddr().String(), "err", err)
				c.Close()
				return
			}
			_ = c.SetDeadline(time.Time{})
			if id >= h.cfg.ID { // the lower id dials; it will close this one too
				c.Close()
				return
			}
			h.register(id, c, r)
		}()
	}
}

// targets returns the addresses to dial now.
func (h *holder) targets(ctx context.Context) []string {
	if h.cfg.Service == "" {
		return h.cfg.Peers
	}
	ips, err := net.DefaultResolver.LookupHost(ctx, h.cfg.Service)
	if err != nil {
		h.log.Debug("lookup failed", "service", h.cfg.Service, "err", err)
		return nil
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip, h.cfg.PeerPort))
	}
	return out
}

// discover dials the peers with a higher id until connected to all count-1 peers, and
// again whenever a connection is lost.
func (h *holder) discover(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		h.mu.Lock()
		full := len(h.peers) == h.cfg.Count-1
		h.mu.Unlock()
		if !full {
			for _, addr := range h.targets(ctx) {
				h.mu.Lock()
				id, known := h.addrIDs[addr]
				skip := known && (id <= h.cfg.ID || h.peers[id] != nil)
				h.mu.Unlock()
				if !skip {
					h.dial(ctx, addr)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *holder) dial(ctx context.Context, addr string) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return // not up yet; retried on the next round
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	_, err = c.Write(h.hello())
	var id int
	if err == nil {
		id, err = h.readHello(r)
	}
	if err != nil {
		h.log.Warn("handshake failed", "addr", addr, "err", err)
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	h.mu.Lock()
	h.addrIDs[addr] = id
	h.mu.Unlock()
	if id <= h.cfg.ID { // ourselves, or a lower id that dials us
		c.Close()
		return
	}
	h.register(id, c, r)
}

func (h *holder) register(id int, c net.Conn, r *bufio.Reader) {
	pc := &peerConn{id: id, conn: c, r: r, out: make(chan []byte, 1024),
		ackSig: make(chan struct{}, 1), done: make(chan struct{})}
	h.mu.Lock()
	if h.peers[id] != nil || id < 1 || id > h.cfg.Count || id == h.cfg.ID {
		h.mu.Unlock()
		c.Close()
		return
	}
	h.peers[id] = pc
	again := h.ever[id]
	h.ever[id] = true
	if again {
		h.reconnects++
	}
	n := len(h.peers)
	h.mu.Unlock()
	if again {
		h.log.Warn("RECONNECT to peer", "peer", id, "local", c.LocalAddr().String(), "remote", c.RemoteAddr().String())
	} else {
		h.log.Info("connected to peer", "peer", id, "local", c.LocalAddr().String(),
			"remote", c.RemoteAddr().String(), "connected", n, "of", h.cfg.Count-1)
	}
	go h.reader(pc)
	go h.writer(pc)
}

func (h *holder) drop(pc *peerConn, err error) {
	pc.close()
	h.mu.Lock()
	if h.peers[pc.id] == pc {
		delete(h.peers, pc.id)
		h.disconnects++
	}
	h.mu.Unlock()
	h.log.Error("connection to peer lost; queued transfers on it are lost", "peer", pc.id, "queued", len(pc.out), "err", err)
}

func (h *holder) reader(pc *peerConn) {
	for {
		line, err := pc.r.ReadString('\n')
		if err != nil {
			h.drop(pc, fmt.Errorf("read: %w", err))
			return
		}
		m, err := ParseMessage(line)
		if err != nil {
			h.drop(pc, err)
			return
		}
		switch m.Kind {
		case "T":
			h.mu.Lock()
			cum, ok, err := h.ledger.Credit(pc.id, uint64(m.A), m.B)
			h.mu.Unlock()
			if err != nil {
				h.drop(pc, err)
				return
			}
			if !ok {
				h.log.Error("TRANSFER OUT OF SEQUENCE (lost or repeated)", "peer", pc.id, "seq", m.A, "amount", m.B)
			}
			pc.ackMu.Lock()
			pc.ack = Message{Kind: "A", A: m.A, B: cum}.Format()
			pc.ackMu.Unlock()
			select {
			case pc.ackSig <- struct{}{}:
			default:
			}
		case "A":
			now := time.Now()
			h.mu.Lock()
			err := h.ledger.Ack(pc.id, m.B)
			// The ack names the newest transfer it covers (acks are cumulative).
			for seq, t := range h.sentAt[pc.id] {
				if seq <= uint64(m.A) {
					h.acks.Add(now, now.Sub(t))
					delete(h.sentAt[pc.id], seq)
				}
			}
			h.mu.Unlock()
			if err != nil {
				h.log.Error("bad ack", "peer", pc.id, "err", err)
			}
		default:
			h.drop(pc, fmt.Errorf("unexpected %s after handshake: %w", m.Kind, ErrWire))
			return
		}
	}
}

// writer sends queued transfers and the latest ack (acks are cumulative, so only the
// newest matters).
func (h *holder) writer(pc *peerConn) {
	for {
		var b []byte
		select {
		case <-pc.done:
			return
		case b = <-pc.out:
		case <-pc.ackSig:
			pc.ackMu.Lock()
			b, pc.ack = pc.ack, nil
			pc.ackMu.Unlock()
		}
		if len(b) == 0 {
			continue
		}
		if _, err := pc.conn.Write(b); err != nil {
			h.drop(pc, fmt.Errorf("write: %w", err))
			return
		}
	}
}

// transfers initiates a transfer to a random connected peer every interval.
func (h *holder) transfers(ctx context.Context) {
	rng := rand.New(rand.NewPCG(h.cfg.Seed, uint64(h.cfg.ID)))
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		if time.Now().Before(h.pausedUntil) || len(h.peers) == 0 || h.ledger.Balance() == 0 {
			h.mu.Unlock()
			continue
		}
		ids := sortedKeys(h.peers)
		to := ids[rng.IntN(len(ids))]
		amount := min(1+rng.Int64N(h.cfg.MaxAmount), h.ledger.Balance())
		seq, err := h.ledger.Debit(to, amount)
		pc := h.peers[to]
		if err == nil {
			if h.sentAt[to] == nil {
				h.sentAt[to] = map[uint64]time.Time{}
			}
			h.sentAt[to][seq] = time.Now()
		}
		h.mu.Unlock()
		if err != nil {
			h.log.Error("debit failed", "err", err)
			continue
		}
		select {
		case pc.out <- Message{Kind: "T", A: int64(seq), B: amount}.Format():
		case <-pc.done:
			h.log.Error("transfer lost: connection closed before it was sent", "peer", to, "seq", seq, "amount", amount)
		case <-ctx.Done():
			return
		}
	}
}

func (h *holder) state() State {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.ledger.State()
	s.ConnectedPeers = sortedKeys(h.peers)
	s.Reconnects, s.Disconnects, s.Instance = h.reconnects, h.disconnects, h.instance
	s.Paused = time.Now().Before(h.pausedUntil)
	return s
}

func (h *holder) serveState(w http.ResponseWriter, _ *http.Request) {
	serve.JSON(w, http.StatusOK, h.state())
}

func (h *holder) serveHealth(w http.ResponseWriter, _ *http.Request) {
	s := h.state()
	var problems []string
	if len(s.ConnectedPeers) != s.Count-1 {
		problems = append(problems, fmt.Sprintf("connected to %d of %d peers", len(s.ConnectedPeers), s.Count-1))
	}
	if s.SeqAnomalies+s.AckAnomalies > 0 {
		problems = append(problems, fmt.Sprintf("seq_anomalies=%d ack_anomalies=%d", s.SeqAnomalies, s.AckAnomalies))
	}
	if s.Reconnects > 0 {
		problems = append(problems, fmt.Sprintf("reconnects=%d", s.Reconnects))
	}
	if len(problems) > 0 {
		http.Error(w, "unhealthy: "+strings.Join(problems, ", "), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// setPaused serves /pause and /resume. A pause is a lease: it ends by itself after
// ?for=DURATION (default 60s), so a query that dies half-way never leaves the bank
// stopped.
func (h *holder) setPaused(p bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
			return
		}
		lease := 60 * time.Second
		if v := r.URL.Query().Get("for"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				http.Error(w, "bad ?for= duration, e.g. 30s", http.StatusBadRequest)
				return
			}
			lease = d
		}
		h.mu.Lock()
		if p {
			h.pausedUntil = time.Now().Add(lease)
		} else {
			h.pausedUntil = time.Time{}
		}
		until := h.pausedUntil
		h.mu.Unlock()
		serve.JSON(w, http.StatusOK, map[string]any{"id": h.cfg.ID, "paused": p, "until": until})
	}
}

func (h *holder) progress(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := h.state()
		h.log.Info("progress", "balance", s.Balance, "unacked", s.InFlight, "sent", s.TransfersSent,
			"received", s.TransfersReceived, "connected", len(s.ConnectedPeers), "reconnects", s.Reconnects,
			"anomalies", s.SeqAnomalies+s.AckAnomalies, "paused", s.Paused)
	}
}
