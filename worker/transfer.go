package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// Transfer endpoint: PUT /v1/sets/<set ID> with a tar stream (imageset.Send) as body, or
// a live stream (imageset.LiveContentType, from DumpTo) written while the dump runs.
// The receiver writes into <sets>/.incoming-<set ID>, hashing while it writes, and
// renames it to <sets>/<set ID> only when every file matched the manifest.
const setsPath = "/v1/sets/"

func (w *Worker) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+setsPath+"{id}/pages", func(rw http.ResponseWriter, r *http.Request) {
		from, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			http.Error(rw, "bad remote address "+r.RemoteAddr, http.StatusBadRequest)
			return
		}
		addr, err := w.ReceivePages(r.PathValue("id"), from.Addr(), r.URL.Query().Get("digests"))
		if err != nil {
			http.Error(rw, err.Error(), transferStatus(err))
			return
		}
		fmt.Fprintln(rw, addr)
	})
	mux.HandleFunc("GET "+setsPath+"{id}/manifest", func(rw http.ResponseWriter, r *http.Request) {
		// Send asks first whether this node holds the set already (a migration streamed
		// it here while dumping): only complete sets are answered.
		final, err := w.setPath(r.PathValue("id"))
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		b, err := os.ReadFile(filepath.Join(final, imageset.ManifestName))
		if err != nil {
			http.Error(rw, "no image set "+r.PathValue("id")+" on this node", http.StatusNotFound)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write(b)
	})
	mux.HandleFunc("PUT "+setsPath+"{id}", func(rw http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		receive := w.Receive
		if r.Header.Get("Content-Type") == imageset.LiveContentType {
			receive = w.ReceiveLive
		}
		v, err := receive(r.Context(), id, r.Body)
		if err != nil {
			http.Error(rw, err.Error(), transferStatus(err))
			return
		}
		fmt.Fprintf(rw, "received %s\n", v)
	})
	w.api(mux)
	return w.authorized(mux)
}

// transferStatus is the HTTP status of a failed receive (of a set or of its pages):
// 400 for what the sender sent wrong, 409 for a set already here, 410 for one dropped
// while it arrived, 500 otherwise.
func transferStatus(err error) int {
	switch {
	case errors.Is(err, imageset.ErrChecksum), errors.Is(err, imageset.ErrMissing), errors.Is(err, imageset.ErrManifest), errors.Is(err, ErrBadSetID), errors.Is(err, errBadDigests):
		return http.StatusBadRequest
	case errors.Is(err, os.ErrExist):
		return http.StatusConflict
	case errors.Is(err, ErrDroppedWhileArriving):
		return http.StatusGone
	}
	return http.StatusInternalServerError
}

// Receive stores the stream r (imageset.Send's tar) as image set id, verified on the fly.
func (w *Worker) Receive(ctx context.Context, id string, r io.Reader) (imageset.Verified, error) {
	return w.receive(id, r, imageset.Receive)
}

// ReceiveLive stores the live stream r (a dump streaming from DumpTo) as image set id,
// verified on the fly against the manifest that ends the stream.
// The pre-dumps of a pre-copy sent ahead of it (.precopy-<id>, precopy.go) are
// adopted: the stream does not carry them again, and they go with the set.
func (w *Worker) ReceiveLive(ctx context.Context, id string, r io.Reader) (imageset.Verified, error) {
	pre := imageset.Verified{}
	if !strings.HasPrefix(id, preCopyPrefix) {
		pre = w.preSent(id)
	}
	v, err := w.receive(id, r, func(r io.Reader, dir string) (imageset.Verified, error) {
		return imageset.ReceiveLiveAdopting(r, dir, pre)
	})
	if pre.Valid() {
		// Adopted into the set, or broken by a failed stream (a new migration
		// pre-copies again): either way of no further use.
		if derr := w.dropPreDumps(id); derr != nil {
			w.log.Warn("cannot remove the pre-dumps sent ahead of a set", "set", id, "err", derr)
		}
	}
	return v, err
}

func (w *Worker) receive(id string, r io.Reader, into func(io.Reader, string) (imageset.Verified, error)) (imageset.Verified, error) {
	final, err := w.setPath(id)
	if err != nil {
		return imageset.Verified{}, err
	}
	if _, err := os.Stat(final); err == nil {
		return imageset.Verified{}, fmt.Errorf("worker %s: receive set %s: %w", w.cfg.Node, id, os.ErrExist)
	}
	tmp := filepath.Join(w.SetsDir(), ".incoming-"+id)
	_ = os.RemoveAll(tmp) // a previous, interrupted transfer
	arr := w.arrive(id)
	defer w.arrived(id, arr)
	start := time.Now()
	v, err := into(r, tmp)
	if err != nil {
		w.dropPages(id)
		return v, fmt.Errorf("worker %s: receive set %s: %w", w.cfg.Node, id, err)
	}
	if pr := w.takePages(id); pr != nil {
		if v, err = w.adoptPages(v, pr); err != nil {
			return v, errors.Join(fmt.Errorf("worker %s: receive set %s: %w", w.cfg.Node, id, err), os.RemoveAll(tmp))
		}
	}
	if err := w.keepArrived(id, arr, tmp, final); err != nil {
		return v, errors.Join(fmt.Errorf("worker %s: receive set %s: %w", w.cfg.Node, id, err), os.RemoveAll(tmp))
	}
	// Reported received means on disk: after a DumpInto the sender kills the container
	// on this answer, and this set is then its only copy. The write-out started as the
	// files arrived (imageset.Writeback) leaves little to wait for.
	tSync := time.Now()
	if err := w.p.Sync(final); err != nil {
		return v, errors.Join(fmt.Errorf("worker %s: receive set %s: %w (is the disk full or failing?); nothing was kept", w.cfg.Node, id, err), os.RemoveAll(final))
	}
	w.log.Info("image set received", "set", id, "bytes", v.Manifest().TotalBytes(), "seconds", time.Since(start).Seconds(), "sync_s", time.Since(tSync).Seconds())
	v = v.Moved(final)
	w.remember(id, v)
	if v.Unhashed() {
		w.scheduleHash(id, v) // latehash_linux.go
	}
	return v, nil
}

// removeStaleIncoming removes the partial sets of transfers a previous worker process
// was receiving when it ended (killed mid-transfer: a failed receive removes its own).
// Start calls it before the endpoint listens, so no transfer of this process is cut.
func (w *Worker) removeStaleIncoming() {
	stale, _ := filepath.Glob(filepath.Join(w.SetsDir(), ".incoming-*"))
	// A pre-copy's pre-dumps (precopy.go) are of no use to a worker that restarted:
	// the migration that asked for them failed with the old one.
	pre, _ := filepath.Glob(filepath.Join(w.SetsDir(), preCopyPrefix+"*"))
	stale = append(stale, pre...)
	for _, d := range stale {
		if err := os.RemoveAll(d); err != nil {
			w.log.Warn("could not remove the partial set of an interrupted transfer", "dir", d, "err", err)
			continue
		}
		w.log.Info("removed the partial set of an interrupted transfer", "dir", d)
	}
}

// failedLogTTL is how long the CRIU log of a failed dump or restore
// (<set>.failed-dump.log, <set>.failed-restore.log) is kept once its set is gone: it
// is named in the failure's error for diagnosis, so it outlives the drop of an aborted
// snapshot's set, but not forever.
const failedLogTTL = 7 * 24 * time.Hour

// pruneFailedLogs removes the failed dumps' and restores' CRIU logs older than
// failedLogTTL whose set is gone (Start calls it).
func (w *Worker) pruneFailedLogs(now time.Time) {
	for _, pat := range []string{"*.failed-dump.log", "*.failed-restore.log"} {
		logs, _ := filepath.Glob(filepath.Join(w.SetsDir(), pat))
		for _, l := range logs {
			set := strings.TrimSuffix(strings.TrimSuffix(l, ".failed-dump.log"), ".failed-restore.log")
			fi, err := os.Stat(l)
			if err != nil || now.Sub(fi.ModTime()) < failedLogTTL {
				continue
			}
			if _, err := os.Stat(set); err == nil {
				continue // its set is still there: it goes with it
			}
			if err := os.Remove(l); err == nil {
				w.log.Info("removed an old failed dump or restore log", "log", l)
			}
		}
	}
}

// arriving is a set being received; dropped: DropSet was asked for it meanwhile.
type arriving struct{ dropped bool }

// ErrDroppedWhileArriving: the set was dropped (its snapshot aborted or removed) while
// it was being received, so it is not kept.
var ErrDroppedWhileArriving = errors.New("the set was dropped while it arrived (its snapshot was aborted or removed); nothing was kept")

// arrive records that set id is being received.
func (w *Worker) arrive(id string) *arriving {
	a := &arriving{}
	w.recvMu.Lock()
	defer w.recvMu.Unlock()
	if w.incoming == nil {
		w.incoming = map[string]*arriving{}
	}
	w.incoming[id] = a
	return a
}

// arrived ends the record of arrive.
func (w *Worker) arrived(id string, a *arriving) {
	w.recvMu.Lock()
	defer w.recvMu.Unlock()
	if w.incoming[id] == a {
		delete(w.incoming, id)
	}
}

// keepArrived renames the received set tmp to final unless DropSet was asked for it
// while it arrived. Under recvMu: a DropSet after it finds final and removes it.
func (w *Worker) keepArrived(id string, a *arriving, tmp, final string) error {
	w.recvMu.Lock()
	defer w.recvMu.Unlock()
	if a.dropped {
		w.log.Info("image set dropped while it arrived; not kept", "set", id)
		return ErrDroppedWhileArriving
	}
	return os.Rename(tmp, final)
}

// Send implements Sets: it streams set id to the worker at addr.
func (w *Worker) Send(ctx context.Context, id, addr string) (SendResult, error) {
	set, err := w.setPath(id)
	if err != nil {
		return SendResult{}, err
	}
	if err := w.awaitHash(ctx, id); err != nil { // the receiver checks every digest
		return SendResult{}, err
	}
	local, err := imageset.ReadManifest(set)
	if err != nil {
		return SendResult{}, fmt.Errorf("worker %s: send set %s: %w", w.cfg.Node, id, ErrNoSet)
	}
	if same, err := holdsSame(ctx, w.peer, addr, id, local); err != nil {
		w.log.Debug("could not ask the target for the set; sending it", "set", id, "to", addr, "err", err)
	} else if same {
		// A migration streamed it there while dumping (DumpTo): nothing to send. The
		// target verifies every file before it restores the set, as after any transfer.
		w.log.Info("image set already on the target with the same files; not sent again", "set", id, "to", addr)
		return SendResult{AlreadyThere: true}, nil
	}
	body := newStreamBody()
	go func() { body.end(imageset.Send(body, set)) }()
	return SendResult{}, put(ctx, w.peer, set, w.peer.url(addr, setsPath+id), "application/x-tar", body)
}

// holdsSame tells whether the worker at addr holds set id with the files (names, sizes,
// sha256) of local. A worker without the set answers 404: false.
func holdsSame(ctx context.Context, p peer, addr, id string, local *imageset.Manifest) (bool, error) {
	remote, err := remoteManifest(ctx, p, addr, id)
	if err != nil || remote == nil {
		return false, err
	}
	return local.SameFiles(remote), nil
}

// remoteManifest is the manifest of set id on the worker at addr (nil, nil: it has no
// such set).
func remoteManifest(ctx context.Context, p peer, addr, id string) (*imageset.Manifest, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url(addr, setsPath+id+"/manifest"), nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.do(req)
	if err != nil {
		return nil, unreachable(ctx, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil
	default:
		return nil, fmt.Errorf("%s", resp.Status)
	}
	return imageset.DecodeManifest(io.LimitReader(resp.Body, 16<<20))
}

// unreachable marks err, a request to another worker that got no answer (refused,
// reset, cut off: that worker ended or restarts) while ctx still runs, with
// node.ErrWorkerUnreachable: the coordinator repeats the send once it is back.
func unreachable(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	return node.Mark(err, node.ErrWorkerUnreachable)
}

// put sends body to url and stops the body once the receiver answered, so that a
// writer still feeding it stops at once.
func put(ctx context.Context, p peer, set, url, contentType string, body *streamBody) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, body)
	if err != nil {
		body.stop()
		return fmt.Errorf("send %s: %w", set, err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := p.do(req)
	body.stop()
	if err != nil {
		return unreachable(ctx, fmt.Errorf("send %s to %s: %w", set, url, err))
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("send %s to %s: receiver answered %s: %s", set, url, resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode == http.StatusConflict {
			err = node.Mark(err, node.ErrSetExists) // the target holds a set of that ID
		}
		return err
	}
	return nil
}

var errReceiverDone = errors.New("the receiver stopped reading")

// streamBody is a request body that the HTTP transport copies with WriteTo: it hands
// the transport's connection writer to the producer, whose frames then go straight to
// the socket — no pipe between two goroutines re-cutting them into 32 KiB chunks
// (measured: 0.58 -> 0.31 CPU-seconds per GiB over loopback).
type streamBody struct {
	ready    chan io.Writer
	ended    chan struct{} // closed by end, after err is set
	err      error
	stopped  chan struct{} // closed by stop: the receiver answered
	endOnce  sync.Once
	stopOnce sync.Once
	w        io.Writer // the transport's writer, once the producer has it
	n        int64
}

func newStreamBody() *streamBody {
	return &streamBody{ready: make(chan io.Writer), ended: make(chan struct{}), stopped: make(chan struct{})}
}

// Write is the producer's side (one goroutine at a time).
func (b *streamBody) Write(p []byte) (int, error) {
	if b.w == nil {
		select {
		case b.w = <-b.ready:
		case <-b.stopped:
			return 0, errReceiverDone
		}
	}
	select {
	case <-b.stopped:
		return 0, errReceiverDone
	default:
	}
	n, err := b.w.Write(p)
	b.n += int64(n)
	return n, err
}

// end says the producer is done; a non-nil err aborts the request, so the receiver
// sees a cut stream and keeps nothing.
func (b *streamBody) end(err error) { b.endOnce.Do(func() { b.err = err; close(b.ended) }) }

func (b *streamBody) stop() { b.stopOnce.Do(func() { close(b.stopped) }) }

// WriteTo is the transport's side: it lends w to the producer until end.
func (b *streamBody) WriteTo(w io.Writer) (int64, error) {
	select {
	case b.ready <- w:
	case <-b.ended:
		return 0, b.err
	case <-b.stopped:
		return 0, errReceiverDone
	}
	select {
	case <-b.ended:
		return b.n, b.err
	case <-b.stopped:
		<-b.ended // the producer's next write fails; do not return while it may write to w
		return b.n, errReceiverDone
	}
}

func (b *streamBody) Read([]byte) (int, error) {
	return 0, errors.New("worker: a live stream body is copied with WriteTo only")
}

func (b *streamBody) Close() error { return nil }

// DumpTo implements Dumper: a Dump whose images stream to the worker at addr while CRIU
// writes them (the memory pages as they grow, the rest when CRIU is done), so the
// transfer overlaps the dump instead of following it. The set is also kept here, as
// Dump keeps it. The receiver hashes what it writes and accepts the set only if the
// closing manifest (digests of the very bytes sent) matches.
func (w *Worker) DumpTo(ctx context.Context, name, setID, addr string, leaveRunning bool) (*imageset.Manifest, error) {
	return w.dumpTo(ctx, name, setID, addr, dump.Options{LeaveRunning: leaveRunning})
}

// dumpTo is DumpTo with the dumper's options (DumpWith adds volumes).
func (w *Worker) dumpTo(ctx context.Context, name, setID, addr string, opts dump.Options) (*imageset.Manifest, error) {
	start := time.Now()
	m, err, serr := w.dumpStreamed(ctx, name, setID, addr, opts, nil)
	if err != nil {
		return nil, err
	}
	if serr != nil {
		return m, fmt.Errorf("worker %s: dumped %s into set %s, but streaming it to %s failed: %w (the set is intact on this node: Send it again, or restore it here)",
			w.cfg.Node, name, setID, addr, serr)
	}
	w.log.Info("image set dumped and streamed", "set", setID, "to", addr, "bytes", m.TotalBytes(),
		"dump_seconds", m.DumpSeconds, "seconds", time.Since(start).Seconds())
	return m, nil
}

// dumpStreamed is the dump of DumpTo and DumpInto: its images stream to the worker at
// addr as a live set (opts.Sink), closed by the set's manifest once the dump sealed it;
// fix, if not nil, amends the manifest first. The dump's error and the stream's come
// apart: after a failed dump the stream is cut, so the receiver keeps nothing.
func (w *Worker) dumpStreamed(ctx context.Context, name, setID, addr string, opts dump.Options, fix func(*imageset.Manifest)) (m *imageset.Manifest, dumpErr, streamErr error) {
	return w.dumpStreamedWith(ctx, setID, addr, opts, fix, func(opts dump.Options) (*imageset.Manifest, error) {
		return w.dump(ctx, name, setID, opts)
	})
}

// dumpStreamedWith is dumpStreamed with the dump itself given (do, called with opts
// and the live set's Sink): a held container is dumped from its arming record, not
// through the engine (drain_linux.go).
func (w *Worker) dumpStreamedWith(ctx context.Context, setID, addr string, opts dump.Options, fix func(*imageset.Manifest), do func(dump.Options) (*imageset.Manifest, error)) (m *imageset.Manifest, dumpErr, streamErr error) {
	set, err := w.setPath(setID)
	if err != nil {
		return nil, err, nil
	}
	body := newStreamBody()
	lw := imageset.NewLiveWriter(body)
	opts.Sink = lw
	sent := make(chan error, 1)
	go func() {
		sent <- put(ctx, w.peer, set, w.peer.url(addr, setsPath+setID), imageset.LiveContentType, body)
	}()
	m, err = do(opts)
	if err != nil {
		body.end(fmt.Errorf("dump failed: %w", err)) // the receiver drops what it got
		<-sent
		return nil, err, nil
	}
	if fix != nil {
		fix(m)
		err = imageset.WriteManifest(set, m)
	}
	var mb []byte
	if err == nil {
		mb, err = os.ReadFile(filepath.Join(set, imageset.ManifestName))
	}
	if err == nil {
		err = lw.Finish(mb)
	}
	body.end(err)
	return m, nil, errors.Join(err, <-sent)
}

// DumpInto implements Dumper: cold migration's fastest path. CRIU sends the memory
// pages straight to a page server of the worker at addr (no copy of them is written
// on this node), the other images follow in a live stream, and the target hashes the
// pages as they arrive. The container is network-locked and frozen (journaled, so the
// watchdog releases it if this worker dies) and dumped with --leave-running; it is
// killed only once the target verified and holds the whole set. If anything fails
// before that, it is thawed and unlocked and keeps running here, and the target keeps
// nothing. No set is left on this node either way.
func (w *Worker) DumpInto(ctx context.Context, name, setID, addr string) (*imageset.Manifest, error) {
	return w.dumpInto(ctx, name, setID, addr, dump.Options{})
}

// dumpInto is DumpInto with the dumper's options (DumpWith adds volumes).
func (w *Worker) dumpInto(ctx context.Context, name, setID, addr string, opts dump.Options) (*imageset.Manifest, error) {
	if _, err := w.setPath(setID); err != nil {
		return nil, err
	}
	c, err := w.resolveDumpable(ctx, name)
	if err != nil {
		return nil, err
	}
	killer, ok := w.p.Dumper.(killer)
	if !ok {
		return nil, fmt.Errorf("worker %s: this node's dumper cannot dump into another node", w.cfg.Node)
	}
	start := time.Now()
	psAddr, err := openPages(ctx, w.peer, addr, setID, "") // the target's setting
	if err != nil {
		return nil, fmt.Errorf("worker %s: dump %s into %s: %w (nothing was done to the container)", w.cfg.Node, name, addr, err)
	}
	deadline := w.deadline(time.Time{})
	if err := w.Lock(ctx, c.ID, nil, deadline); err != nil {
		return nil, fmt.Errorf("worker %s: dump %s into %s: %w", w.cfg.Node, name, addr, err)
	}
	release := func() error {
		ctx := context.WithoutCancel(ctx)
		return errors.Join(w.Thaw(ctx, c.ID), w.Unlock(ctx, c.ID, nil))
	}
	if err := w.Freeze(ctx, c.ID, deadline); err != nil {
		return nil, errors.Join(fmt.Errorf("worker %s: dump %s into %s: %w", w.cfg.Node, name, addr, err), release())
	}
	// The holds are renewed while the transfer runs (a large container may take longer
	// than OwnHold): if this worker hangs, the watchdog releases them within OwnHold
	// of the last renewal (at once if it dies).
	stopRenew := w.renewHolds(c, true, deadline, w.cfg.OwnHold/4)
	opts.LeaveRunning, opts.SendPages = true, psAddr
	m, derr, serr := w.dumpStreamed(ctx, c.ID, setID, addr, opts,
		func(m *imageset.Manifest) { m.LeaveRunning = false }) // it is killed below once the target holds the set
	err = errors.Join(derr, serr)
	deadline = stopRenew()
	_ = w.DropSet(context.WithoutCancel(ctx), setID) // without its pages it restores nowhere
	if err != nil {
		return nil, errors.Join(fmt.Errorf("worker %s: dump %s into %s failed; the container keeps running here: %w", w.cfg.Node, name, addr, err), release())
	}
	if err := w.end(context.WithoutCancel(ctx), c, killer); err != nil {
		// Thawing it would run it on both nodes: it stays frozen and locked until its
		// deadline (the watchdog then thaws it).
		return m, fmt.Errorf("worker %s: %s was migrated to %s, but ending it here failed: %w (it stays frozen until %s: remove it with docker rm -f)",
			w.cfg.Node, name, addr, err, deadline.Format(time.RFC3339))
	}
	w.log.Info("container dumped into another node", "container", name, "set", setID, "to", addr,
		"bytes", m.TotalBytes(), "dump_seconds", m.DumpSeconds, "seconds", time.Since(start).Seconds())
	return m, nil
}

// dumpIntoHeld is DumpInto's transfer for a container its caller holds (DumpWith with
// Into and LeaveRunning: a migration's container, frozen and network-locked by the
// node agent from before its dump to the migration's outcome, worker/agent park.go).
// It takes no hold of its own and leaves the container as it found it, on success
// too: the caller ends it once the migration committed, or releases it (it then runs
// on here). On success the set's only copy is on the target (its pages as received); on failure
// the target keeps nothing. No set is left on this node either way. The target hashes
// the received pages as it is configured: the manifest returned then lists them
// without digests (PagesUnhashed) until that worker hashed them after the restore.
func (w *Worker) dumpIntoHeld(ctx context.Context, name, setID, addr string, opts dump.Options) (*imageset.Manifest, error) {
	if _, err := w.setPath(setID); err != nil {
		return nil, err
	}
	start := time.Now()
	// Hashed as the target is configured (Config.PageDigests; by default after the
	// restore): the manifest read back below goes into the snapshot's record, which
	// then marks the pages pending (protocol.ImageSet.PagesPending) until the
	// coordinator reads their digests from the target (DigestWaiter).
	psAddr, err := openPages(ctx, w.peer, addr, setID, "")
	if err != nil {
		return nil, fmt.Errorf("worker %s: dump %s into %s: %w (nothing was done to the container)", w.cfg.Node, name, addr, err)
	}
	opts.LeaveRunning, opts.SendPages = true, psAddr
	_, derr, serr := w.dumpStreamed(ctx, name, setID, addr, opts, nil)
	_ = w.DropSet(context.WithoutCancel(ctx), setID) // without its pages it restores nowhere
	if err := errors.Join(derr, serr); err != nil {
		return nil, fmt.Errorf("worker %s: dump %s into %s failed (the target keeps nothing; the container is left as its caller holds it): %w", w.cfg.Node, name, addr, err)
	}
	// The set as the target holds it: with the pages and the digests it computed (this
	// node's manifest lists no pages), which a verify there compares with.
	m, err := remoteManifest(ctx, w.peer, addr, setID)
	if err == nil && m == nil {
		err = errors.New("it does not hold the set it verified")
	}
	if err != nil {
		return nil, fmt.Errorf("worker %s: dumped %s into %s, but reading the set's manifest there failed: %w (the container is left as its caller holds it; drop set %s there)", w.cfg.Node, name, addr, err, setID)
	}
	w.log.Info("held container dumped into another node", "container", name, "set", setID, "to", addr,
		"bytes", m.TotalBytes(), "dump_seconds", m.DumpSeconds, "seconds", time.Since(start).Seconds())
	return m, nil
}

// killer ends a frozen container's processes (the runc dumper; the fake).
type killer interface {
	Kill(context.Context, container.Ref) error
	WaitEnded(context.Context, container.Ref) error
}

// end kills c, frozen, and thaws it so that its processes die without running again;
// its network namespace goes with them (a lock still there, a fake's or one kept by
// another holder, is lifted) and so do its journaled holds. It waits up to 10 s for
// the end, so that the caller may act on c being gone (remove it, let swarm replace
// its task). An error from the kill leaves c frozen and held: the caller decides.
// The lock is lifted only once the processes ended: the RST or FIN their sockets
// send as they close must not reach a peer that keeps running (a partial migration's
// staying peers, coordinator/restore/partial.go), which would drop the connection
// the restored container continues.
func (w *Worker) end(ctx context.Context, c container.Ref, k killer) error {
	if err := k.Kill(ctx, c); err != nil {
		return err
	}
	if err := w.p.Freezer.Thaw(ctx, c); err != nil {
		w.log.Warn("thaw of a killed container failed; it ends when thawed", "container", c.Name, "err", err)
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := k.WaitEnded(wctx, c); err != nil {
		w.log.Warn("killed container has not ended yet", "container", c.Name, "err", err)
	}
	_ = w.p.Locker.Unlock(ctx, c, nil)
	_ = w.unhold(c, true, true)
	return nil
}

// Stop implements Holder.
func (w *Worker) Stop(ctx context.Context, name string) error {
	c, err := w.resolve(ctx, name)
	if err != nil {
		return fmt.Errorf("worker %s: stop %s: %w", w.cfg.Node, name, err)
	}
	k, ok := w.p.Dumper.(killer)
	if !ok {
		return fmt.Errorf("worker %s: stop %s: this node's dumper cannot end containers", w.cfg.Node, name)
	}
	frozen, err := w.p.Freezer.Frozen(ctx, c)
	if err != nil {
		return fmt.Errorf("worker %s: stop %s: %w", w.cfg.Node, name, err)
	}
	if !frozen {
		return fmt.Errorf("worker %s: stop %s: %w: it ran on after its dump (its hold expired?), so ending it would lose what it did since; it keeps running", w.cfg.Node, name, ErrNotFrozen)
	}
	if err := w.end(ctx, c, k); err != nil {
		return fmt.Errorf("worker %s: stop %s: %w (it stays frozen and locked until its hold's deadline)", w.cfg.Node, name, err)
	}
	w.awaitDockerStopped(ctx, c)
	w.log.Info("container stopped after its dump", "container", c.Name)
	return nil
}

// awaitDockerStopped waits (at most 10 s) until the engine itself reports c not
// running: it has then handled the exit, network release included. A removal sent
// while the engine still handles the exit raced with it on the lab and leaked c's
// attachment to a swarm network, whose address a restored container then could not
// get ("attaching to network failed ... Address already in use").
func (w *Worker) awaitDockerStopped(ctx context.Context, c container.Ref) {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		_, err := w.p.Inspector.Resolve(wctx, c.ID)
		if errors.Is(err, container.ErrNotRunning) || errors.Is(err, container.ErrNotFound) {
			return
		}
		select {
		case <-wctx.Done():
			w.log.Warn("the engine still reports a stopped container running", "container", c.Name, "err", err)
			return
		case <-t.C:
		}
	}
}

// renewHolds pushes the deadline of c's freeze, and of its lock when lock is set,
// (journaled until first) to now+OwnHold every interval until the returned function
// is called; that returns the last deadline journaled.
func (w *Worker) renewHolds(c container.Ref, lock bool, first time.Time, interval time.Duration) (stop func() time.Time) {
	done := make(chan struct{})
	last := make(chan time.Time, 1)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		d := first
		for {
			select {
			case <-done:
				last <- d
				return
			case <-t.C:
				d = w.deadline(time.Time{})
				if err := w.hold(c, lock, true, nil, d); err != nil {
					w.log.Warn("could not renew the hold of a container being dumped", "container", c.Name, "err", err)
				}
			}
		}
	}()
	return func() time.Time {
		close(done)
		return <-last
	}
}

// openPages asks the worker at addr to open a page server for set id, hashing the
// pages when digests says (Config.PageDigests; empty: as that worker is configured).
func openPages(ctx context.Context, p peer, addr, id, digests string) (string, error) {
	u := p.url(addr, setsPath+id+"/pages")
	if digests != "" {
		u += "?digests=" + url.QueryEscape(digests)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := p.do(req)
	if err != nil {
		return "", fmt.Errorf("open a page server: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("open a page server: receiver answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return strings.TrimSpace(string(b)), nil
}
