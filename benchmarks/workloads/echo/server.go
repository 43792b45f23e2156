package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/serve"
)

// serverConn is what the server's /status shows about one connection.
type serverConn struct {
	ID       uint64    `json:"id"`
	Remote   string    `json:"remote_addr"`
	Local    string    `json:"local_addr"`
	Since    time.Time `json:"since"`
	Messages uint64    `json:"messages"`
	LastSeq  uint64    `json:"last_seq"`
	conn     net.Conn
}

type server struct {
	log      *slog.Logger
	instance string
	total    atomic.Uint64
	messages atomic.Uint64

	mu    sync.Mutex
	conns map[uint64]*serverConn
}

func runServer(ctx context.Context, log *slog.Logger, listen, httpAddr string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is the port taken?)", listen, err)
	}
	s := &server{log: log, instance: serve.InstanceID(), conns: map[uint64]*serverConn{}}
	log.Info("echo server listening", "addr", ln.Addr().String(), "instance", s.instance)
	go func() {
		<-ctx.Done()
		ln.Close()
		s.mu.Lock() // on shutdown close the connections too, so clients see it
		for _, c := range s.conns {
			c.conn.Close()
		}
		s.mu.Unlock()
	}()
	go func() {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /status", s.status)
		mux.HandleFunc("GET /{$}", s.status)
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		if err := serve.HTTP(ctx, log, httpAddr, mux); err != nil {
			log.Error("status server stopped", "err", err)
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept on %s: %w", listen, err)
		}
		go s.handle(c)
	}
}

func (s *server) handle(c net.Conn) {
	defer c.Close()
	id := s.total.Add(1)
	sc := &serverConn{ID: id, Remote: c.RemoteAddr().String(), Local: c.LocalAddr().String(), Since: time.Now(), conn: c}
	s.mu.Lock()
	s.conns[id] = sc
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, id)
		s.mu.Unlock()
	}()
	log := s.log.With("conn", id, "remote", sc.Remote)
	log.Info("connection accepted")
	r := bufio.NewReaderSize(c, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				log.Info("connection closed by client")
			} else {
				log.Warn("connection failed", "err", err)
			}
			return
		}
		if _, err := c.Write(line); err != nil {
			log.Warn("write failed", "err", err)
			return
		}
		seq, _ := ParseSeq(string(line))
		s.messages.Add(1)
		s.mu.Lock()
		sc.Messages++
		sc.LastSeq = seq
		s.mu.Unlock()
	}
}

func (s *server) status(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	conns := make([]serverConn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, *c)
	}
	s.mu.Unlock()
	serve.JSON(w, http.StatusOK, map[string]any{
		"role": "server", "instance": s.instance, "connections_total": s.total.Load(),
		"messages": s.messages.Load(), "active": conns,
	})
}
