package worker_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/restore"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
)

// TestUndumpableContainerIsRefusedBeforeAnyHold: a container with a process of another
// user, on a worker without CAP_SYS_RESOURCE, is refused by Lock, Freeze and Dump with
// an error naming it and the cause; nothing is locked, frozen or journaled.
func TestUndumpableContainerIsRefusedBeforeAnyHold(t *testing.T) {
	dir := t.TempDir()
	insp, lock, frz := container.NewFake(), netlock.NewFake(), freezer.NewFake()
	cfg := worker.DefaultConfig("n1")
	cfg.DataRoot, cfg.JournalDir, cfg.WatchdogArgv = filepath.Join(dir, "data"), filepath.Join(dir, "journal"), watchdogArgv(t)
	noRes := container.Privileges{CapEff: 0x1fffeffffff}
	w, err := worker.New(cfg, worker.Parts{Inspector: insp, Locker: lock, Freezer: frz, Dumper: dump.Fake{},
		Restorer: restore.NewFake(filepath.Join(dir, "consumed"), "img"),
		Dumpable: func(c container.Ref) error {
			var procs []container.Creds
			if c.Name == "redis" {
				procs = []container.Creds{{Pid: 1, Comm: "redis-server", UID: [3]int{999, 999, 999}, GID: [3]int{999, 999, 999}}}
			}
			return container.CheckDumpable(c, noRes, procs)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); os.RemoveAll(cfg.JournalDir) })
	ref := container.Ref{ID: strings.Repeat("r", 64), Name: "redis", Pid: 42}
	insp.Add(ref, container.Spec{Name: "redis", Image: "img"})
	insp.Add(container.Ref{ID: strings.Repeat("w", 64), Name: "web", Pid: 43}, container.Spec{Name: "web", Image: "img"})
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for name, call := range map[string]func() error{
		"lock":   func() error { return w.Lock(ctx, "redis", nil, deadline) },
		"freeze": func() error { return w.Freeze(ctx, "redis", deadline) },
		"dump":   func() error { _, err := w.Dump(ctx, "redis", "s1", false); return err },
	} {
		err := call()
		if !errors.Is(err, container.ErrOtherUser) || !strings.Contains(err.Error(), "redis") || !strings.Contains(err.Error(), "uid 999") {
			t.Errorf("%s: err = %v, want ErrOtherUser naming redis and uid 999", name, err)
		}
	}
	if st, _ := lock.State(ctx, ref); st.Locked() {
		t.Error("refused container was locked")
	}
	if f, _ := frz.Frozen(ctx, ref); f {
		t.Error("refused container was frozen")
	}
	if _, ok, _ := (watchdog.Journal{Dir: cfg.JournalDir}).Get(ref.ID); ok {
		t.Error("refused container journaled as held")
	}
	// The node agent asks the same before accepting a plan, over HTTP: refused with the
	// same reason, nothing held; a container of root processes passes.
	var ch worker.Dumper = &worker.Client{Addr: w.Addr()}
	if err := ch.CheckDump(ctx, "redis"); !errors.Is(err, worker.ErrRemote) || !strings.Contains(err.Error(), "uid 999") || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
		t.Errorf("CheckDump over HTTP: %v, want the refusal naming uid 999 and CAP_SYS_RESOURCE", err)
	}
	if err := ch.CheckDump(ctx, "web"); err != nil {
		t.Errorf("CheckDump of a root container: %v", err)
	}
	if _, ok, _ := (watchdog.Journal{Dir: cfg.JournalDir}).Get(ref.ID); ok {
		t.Error("CheckDump journaled a hold")
	}
	// A container of root processes on the same worker goes ahead.
	if err := w.Lock(ctx, "web", nil, deadline); err != nil {
		t.Fatalf("root container: %v", err)
	}
}

// TestCheckDumpOfAnOlderWorkerPasses: a worker without the route (404 from its mux)
// cannot tell, which is not a refusal; a JSON error is.
func TestCheckDumpOfAnOlderWorkerPasses(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/containers/bad/dumpable", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusInternalServerError)
		_, _ = rw.Write([]byte(`{"error":"runs as uid 999"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := &worker.Client{Addr: strings.TrimPrefix(srv.URL, "http://")}
	ctx := context.Background()
	if err := c.CheckDump(ctx, "bad"); !errors.Is(err, worker.ErrRemote) || !strings.Contains(err.Error(), "uid 999") {
		t.Fatalf("refusal: %v", err)
	}
	old := httptest.NewServer(http.NewServeMux()) // knows no route at all
	defer old.Close()
	if err := (&worker.Client{Addr: strings.TrimPrefix(old.URL, "http://")}).CheckDump(ctx, "x"); err != nil {
		t.Fatalf("older worker: %v, want nil (cannot tell)", err)
	}
}
