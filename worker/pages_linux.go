package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// The receiving side of DumpInto: a one-shot CRIU page server per incoming set.
//
// POST /v1/sets/{id}/pages opens a listener on the transfer endpoint's host (a free
// port) and answers its address. The first connection from the host that asked is
// handed to `criu page-server --ps-socket`, which writes the memory pages the dumping
// CRIU sends into <sets>/.pages-<id>/images; the worker hashes them while they are
// written (dump.Follow), or, with page digests after the restore (Config.PageDigests,
// latehash_linux.go), only follows their growth for the write-out and hashes them once
// the restore ran (dump.FollowSizes; the set is PagesUnhashed until then). The live stream of the other images (PUT /v1/sets/{id}) then
// completes the set: once it verified, the page files are adopted into it with their
// digests (imageset.Verified.Adopt) and the set is renamed into place. Whatever fails,
// both directories are removed: nothing half-received stays.

// pagesAcceptTimeout bounds how long a page server waits for its connection;
// pagesWaitTimeout how long a live stream waits for its page server to finish. A page
// transfer no live stream claimed is removed when both have passed.
const (
	pagesAcceptTimeout = 30 * time.Second
	pagesWaitTimeout   = 2 * time.Minute
)

// pageServer is the optional part of a Dumper that receives pages (dump.Runc, dump.Fake).
type pageServer interface {
	PageServer(ctx context.Context, conn *os.File, images, logFile string) error
}

// errBadDigests: a page transfer asked for an unknown Config.PageDigests.
var errBadDigests = errors.New("bad request")

// pagesRecv is one incoming page transfer.
type pagesRecv struct {
	dir    string // <sets>/.pages-<id>
	late   bool   // digests after the restore: the files come without (FollowSizes)
	cancel context.CancelFunc
	done   chan struct{} // closed when files/err are set
	files  []imageset.File
	err    error
}

func (w *Worker) pagesDir(id string) string { return filepath.Join(w.SetsDir(), ".pages-"+id) }

// ReceivePages opens a one-shot page server for set id, accepting a connection from
// from only, and returns its HOST:PORT. digests is when the pages are hashed
// (Config.PageDigests; empty: this worker's setting).
func (w *Worker) ReceivePages(id string, from netip.Addr, digests string) (string, error) {
	switch digests {
	case "":
		digests = w.cfg.PageDigests
	case PageDigestsAfterRestore, PageDigestsOnArrival:
	default:
		return "", fmt.Errorf("worker %s: receive pages of set %s: %w: page digests %q (want %s or %s)", w.cfg.Node, id, errBadDigests, digests, PageDigestsAfterRestore, PageDigestsOnArrival)
	}
	ps, ok := w.p.Dumper.(pageServer)
	if !ok {
		return "", fmt.Errorf("worker %s: this node's dumper cannot run a page server", w.cfg.Node)
	}
	final, err := w.setPath(id)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(final); err == nil {
		return "", fmt.Errorf("worker %s: receive pages of set %s: %w", w.cfg.Node, id, os.ErrExist)
	}
	host, _, err := net.SplitHostPort(w.addr)
	if err != nil {
		return "", fmt.Errorf("worker %s: transfer endpoint %q: %w", w.cfg.Node, w.addr, err)
	}
	dir := w.pagesDir(id)
	_ = os.RemoveAll(dir) // an interrupted transfer
	images := imageset.ImagesPath(dir)
	if err := os.MkdirAll(w.SetsDir(), imageset.DirMode); err != nil {
		return "", fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	for _, d := range []string{dir, images, filepath.Join(dir, dump.WorkDir)} {
		if err := os.Mkdir(d, imageset.DirMode); err != nil {
			return "", errors.Join(fmt.Errorf("worker %s: receive pages of set %s: %w", w.cfg.Node, id, err), os.RemoveAll(dir))
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", errors.Join(fmt.Errorf("worker %s: page server for set %s: %w", w.cfg.Node, id, err), os.RemoveAll(dir))
	}
	ctx, cancel := context.WithTimeout(context.Background(), pagesAcceptTimeout+pagesWaitTimeout)
	pr := &pagesRecv{dir: dir, late: digests == PageDigestsAfterRestore, cancel: cancel, done: make(chan struct{})}
	w.pagesMu.Lock()
	if old := w.pages[id]; old != nil {
		old.cancel()
	}
	if w.pages == nil {
		w.pages = map[string]*pagesRecv{}
	}
	w.pages[id] = pr
	w.pagesMu.Unlock()
	go func() {
		pr.files, pr.err = w.servePages(ctx, ps, ln.(*net.TCPListener), from, images, filepath.Join(dir, dump.WorkDir, "page-server.log"), pr.late)
		close(pr.done)
		<-ctx.Done() // a live stream claims it (and cancels) before; else its time is up
		if w.takePagesIf(id, pr) {
			w.log.Warn("page transfer abandoned: no image set came to claim it; removed", "set", id, "err", pr.err)
			_ = os.RemoveAll(pr.dir)
		}
	}()
	w.log.Info("page server open", "set", id, "addr", ln.Addr().String(), "from", from, "page_digests", digests)
	return ln.Addr().String(), nil
}

// servePages accepts the dumping CRIU's connection and runs the page server on it,
// hashing the page files while they are written; late: only following their growth
// (their digests stay empty, for HashLate after the restore).
func (w *Worker) servePages(ctx context.Context, ps pageServer, ln *net.TCPListener, from netip.Addr, images, logFile string, late bool) ([]imageset.File, error) {
	defer ln.Close()
	_ = ln.SetDeadline(time.Now().Add(pagesAcceptTimeout))
	stopAccept := context.AfterFunc(ctx, func() { ln.Close() }) // dropPages: stop waiting
	defer stopAccept()
	var conn *net.TCPConn
	for conn == nil {
		c, err := ln.AcceptTCP()
		if err != nil {
			return nil, fmt.Errorf("no page transfer arrived within %s: %w", pagesAcceptTimeout, err)
		}
		if peer := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap(); peer != from.Unmap() {
			w.log.Warn("page server: refused a connection from another host", "from", peer, "want", from)
			c.Close()
			continue
		}
		conn = c
	}
	_ = ln.Close()
	f, err := conn.File()
	conn.Close()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// CRIU reads the socket in blocking mode (a non-blocking one makes its page server
	// spin on EAGAIN).
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	followed := make(chan map[string]imageset.File, 1)
	follow := dump.Follow
	if late {
		follow = dump.FollowSizes
	}
	go func() { followed <- follow(images, stop) }()
	err = ps.PageServer(ctx, f, images, logFile)
	close(stop)
	known := <-followed
	if err != nil {
		return nil, err
	}
	m := &imageset.Manifest{}
	if err := imageset.SealKnown(filepath.Dir(images), m, known); err != nil {
		return nil, err
	}
	if len(m.Files) == 0 {
		return nil, fmt.Errorf("the page server received no pages")
	}
	return m.Files, nil
}

// takePages removes and returns the page transfer of set id, if any.
func (w *Worker) takePages(id string) *pagesRecv {
	w.pagesMu.Lock()
	defer w.pagesMu.Unlock()
	pr := w.pages[id]
	delete(w.pages, id)
	return pr
}

// takePagesIf removes the page transfer of set id if it is still pr.
func (w *Worker) takePagesIf(id string, pr *pagesRecv) bool {
	w.pagesMu.Lock()
	defer w.pagesMu.Unlock()
	if w.pages[id] != pr {
		return false
	}
	delete(w.pages, id)
	return true
}

// removeStalePages removes the page directories a previous worker process left (no
// page server outlives its worker).
func (w *Worker) removeStalePages() {
	stale, _ := filepath.Glob(filepath.Join(w.SetsDir(), ".pages-*"))
	for _, d := range stale {
		if err := os.RemoveAll(d); err == nil {
			w.log.Info("removed the pages of an interrupted transfer", "dir", d)
		}
	}
}

// adoptPages waits for the page transfer pr to end and moves its files into v.
func (w *Worker) adoptPages(v imageset.Verified, pr *pagesRecv) (imageset.Verified, error) {
	defer os.RemoveAll(pr.dir)
	defer pr.cancel()
	select {
	case <-pr.done:
	case <-time.After(pagesWaitTimeout):
		return v, fmt.Errorf("the page server did not finish within %s of the rest of the set", pagesWaitTimeout)
	}
	if pr.err != nil {
		return v, fmt.Errorf("memory pages: %w", pr.err)
	}
	return v.Adopt(imageset.ImagesPath(pr.dir), pr.files, w.cfg.Node)
}

// dropPages ends and removes the page transfer of set id, if any.
func (w *Worker) dropPages(id string) {
	if pr := w.takePages(id); pr != nil {
		pr.cancel()
		<-pr.done
		_ = os.RemoveAll(pr.dir)
	}
}
