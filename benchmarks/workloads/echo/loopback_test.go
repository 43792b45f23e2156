package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/window"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func clientStatus(url string) (Status, error) {
	var s Status
	resp, err := http.Get(url)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// TestClientServerOverLoopback starts the client before the server (it must wait, not
// count a reconnect), checks replies flow cleanly, then restarts the server and checks
// the client reports exactly one reconnect.
func TestClientServerOverLoopback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	echoAddr, clientHTTP := freeAddr(t), freeAddr(t)
	go func() { _ = runClient(ctx, log, echoAddr, 2*time.Millisecond, 16, 0, clientHTTP) }()
	time.Sleep(300 * time.Millisecond) // the client is dialing a server that is not there yet
	sctx, stopServer := context.WithCancel(ctx)
	serverDone := make(chan struct{})
	go func() { _ = runServer(sctx, log, echoAddr, freeAddr(t)); close(serverDone) }()

	url := "http://" + clientHTTP + "/status"
	waitFor := func(what string, ok func(Status) bool) Status {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s, err := clientStatus(url)
			if err == nil && ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: last status %+v err %v", what, s, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	s := waitFor("100 clean replies", func(s Status) bool { return s.Replies >= 100 })
	if !s.Healthy || s.Reconnects != 0 || s.Gaps != 0 || s.Duplicates != 0 || s.ConnID != 1 {
		t.Fatalf("first connection not clean: %+v", s)
	}
	// GET /window: the replies so far, with their round trips and the longest gap.
	from := time.Now().Add(-time.Minute)
	resp, err := http.Get(fmt.Sprintf("http://%s/window?from=%d", clientHTTP, from.UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	var w window.Stats
	err = json.NewDecoder(resp.Body).Decode(&w)
	resp.Body.Close()
	if err != nil || w.Events < 100 || w.MaxMS <= 0 || w.StallMS <= 0 {
		t.Fatalf("/window = %+v (%v), want >= 100 replies with round trips and a longest gap", w, err)
	}
	stopServer()
	<-serverDone
	// runServer closed its listener and its connections. Start a new server.
	go func() { _ = runServer(ctx, log, echoAddr, freeAddr(t)) }()
	s = waitFor("a reconnect", func(s Status) bool { return s.ConnID >= 2 && s.Connected })
	if s.Reconnects != 1 || s.Healthy {
		t.Fatalf("after server restart: reconnects=%d healthy=%v, want 1 and false", s.Reconnects, s.Healthy)
	}
}

// TestClientChurnOverLoopback: with --churn the client also opens a new connection every
// period, each carrying one line and its echo; the server counts each one.
func TestClientChurnOverLoopback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	echoAddr, clientHTTP := freeAddr(t), freeAddr(t)
	go func() { _ = runServer(ctx, log, echoAddr, freeAddr(t)) }()
	go func() { _ = runClient(ctx, log, echoAddr, 10*time.Millisecond, 0, 5*time.Millisecond, clientHTTP) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := clientStatus("http://" + clientHTTP + "/status")
		if err == nil && s.Churn != nil && s.Churn.OK >= 20 {
			if s.Churn.Failed != 0 || s.Churn.MaxMS <= 0 || s.Churn.Every != "5ms" {
				t.Fatalf("churn status %+v: want no failure, a duration, every 5ms", *s.Churn)
			}
			if !s.Healthy || s.ConnID != 1 {
				t.Fatalf("the long-lived connection suffered from the churn: %+v", s)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for 20 churn connections: %+v err %v", s.Churn, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
