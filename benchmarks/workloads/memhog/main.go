// CRIU cannot dump MPTCP sockets ("inet: Unsupported proto 262"), and Go >= 1.24 makes
// listeners MPTCP by default: keep every socket plain TCP so the process can be
// checkpointed. (Not a doc comment: see doc.go.)
//
//go:debug multipathtcp=0

package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/probe"
	"github.com/swarmckpt/swarmckpt/benchmarks/workloads/internal/serve"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "get" {
		os.Exit(probe.Main(ctx, os.Args[2:], os.Stdout, os.Stderr))
	}
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "memhog:", err)
		os.Exit(1)
	}
}

// hog wraps Memory with the lock the writer and the HTTP handlers share.
type hog struct {
	log      *slog.Logger
	instance string
	dirty    float64
	tick     time.Duration
	began    time.Time

	mu     sync.Mutex
	mem    *Memory
	paused bool
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("memhog", flag.ContinueOnError)
	mib := fs.Int("mib", 64, "MiB of memory to hold")
	dirty := fs.Float64("dirty-fraction", 0.1, "fraction of the memory rewritten per second (0 = never, 1 = all of it)")
	seed := fs.Uint64("seed", 1, "seed of the deterministic content")
	tick := fs.Duration("tick", 100*time.Millisecond, "writer step; each step rewrites dirty-fraction*tick/1s of the memory")
	listen := fs.String("listen", ":8080", "HTTP address")
	progress := fs.Duration("progress", 10*time.Second, "interval of the progress log line (0 = never: with --dirty-fraction 0 the process then runs no instruction unless asked over HTTP)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dirty < 0 || *dirty > 100 || *tick <= 0 || *progress < 0 {
		return errors.New("--dirty-fraction must be in [0,100], --tick > 0 and --progress >= 0")
	}
	log := serve.Logger(stdout, "memhog")
	t0 := time.Now()
	mem, err := NewMemory(*mib, *seed)
	if err != nil {
		return err
	}
	h := &hog{log: log, instance: serve.InstanceID(), dirty: *dirty, tick: *tick, began: time.Now(), mem: mem}
	log.Info("memory filled", "mib", *mib, "chunks", mem.Chunks(), "seed", *seed,
		"dirty_fraction", *dirty, "fill_ms", time.Since(t0).Milliseconds(), "instance", h.instance)
	if *dirty > 0 {
		go h.writer(ctx)
	}
	if *progress > 0 {
		go h.progress(ctx, *progress)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /checksum", h.checksum)
	mux.HandleFunc("GET /verify", h.verify)
	mux.HandleFunc("/pause", h.setPaused(true))
	mux.HandleFunc("/resume", h.setPaused(false))
	mux.HandleFunc("GET /stats", h.stats)
	mux.HandleFunc("GET /{$}", h.stats)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return serve.HTTP(ctx, log, *listen, mux)
}

// writer rewrites dirty*chunks per second in steps of h.tick, in batches of at most
// 1 MiB per lock hold so a /checksum waits little.
func (h *hog) writer(ctx context.Context) {
	t := time.NewTicker(h.tick)
	defer t.Stop()
	perStep := h.dirty * float64(h.mem.Chunks()) * h.tick.Seconds()
	acc := 0.0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		acc += perStep
		n := int(acc)
		acc -= float64(n)
		for n > 0 {
			b := min(n, 256)
			h.mu.Lock()
			if h.paused {
				h.mu.Unlock()
				acc = 0
				break
			}
			h.mem.WriteNext(b)
			h.mu.Unlock()
			n -= b
		}
	}
}

func (h *hog) checksum(w http.ResponseWriter, _ *http.Request) {
	h.mu.Lock() // pauses the writer while hashing
	t0 := time.Now()
	sum := h.mem.Checksum()
	writes, paused := h.mem.Writes(), h.paused
	h.mu.Unlock()
	serve.JSON(w, http.StatusOK, map[string]any{
		"sha256": hex.EncodeToString(sum[:]), "writes": writes, "mib": h.mem.MiB(),
		"seed": h.mem.seed, "paused": paused, "hash_ms": time.Since(t0).Milliseconds(),
		"instance": h.instance,
	})
}

func (h *hog) verify(w http.ResponseWriter, _ *http.Request) {
	h.mu.Lock()
	t0 := time.Now()
	bad := h.mem.Verify()
	writes := h.mem.Writes()
	h.mu.Unlock()
	code := http.StatusOK
	if len(bad) > 0 {
		code = http.StatusInternalServerError
		h.log.Error("VERIFY FAILED: memory differs from what its counters say", "bad_chunks", len(bad), "writes", writes)
	}
	if len(bad) > 20 {
		bad = bad[:20]
	}
	serve.JSON(w, code, map[string]any{
		"ok": code == http.StatusOK, "writes": writes, "chunks": h.mem.Chunks(),
		"bad_chunks_first": bad, "verify_ms": time.Since(t0).Milliseconds(),
	})
}

func (h *hog) setPaused(p bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
			return
		}
		h.mu.Lock()
		h.paused = p
		writes := h.mem.Writes()
		h.mu.Unlock()
		h.log.Info("writer", "paused", p, "writes", writes)
		serve.JSON(w, http.StatusOK, map[string]any{"paused": p, "writes": writes})
	}
}

func (h *hog) stats(w http.ResponseWriter, _ *http.Request) {
	h.mu.Lock()
	writes, paused := h.mem.Writes(), h.paused
	h.mu.Unlock()
	c := uint64(h.mem.Chunks())
	serve.JSON(w, http.StatusOK, map[string]any{
		"mib": h.mem.MiB(), "chunks": c, "chunk_bytes": ChunkSize, "dirty_fraction": h.dirty,
		"writes": writes, "generation": writes / c, "bytes_rewritten": writes * ChunkSize,
		"paused": paused, "instance": h.instance, "uptime_ms": time.Since(h.began).Milliseconds(),
		"target_mib_per_s": h.dirty * float64(h.mem.MiB()),
	})
}

func (h *hog) progress(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		writes, paused := h.mem.Writes(), h.paused
		h.mu.Unlock()
		h.log.Info("progress", "writes", writes, "paused", paused)
	}
}
