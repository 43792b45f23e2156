package worker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/swarmckpt/swarmckpt/criuimg"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/activity"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/freezer"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/migrate"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/pendingconn"
	"github.com/swarmckpt/swarmckpt/worker/pipemax"
	"github.com/swarmckpt/swarmckpt/worker/restore"
	"github.com/swarmckpt/swarmckpt/worker/space"
	"github.com/swarmckpt/swarmckpt/worker/watchdog"
	"github.com/swarmckpt/swarmckpt/worker/xlate"
)

// Sentinel errors. Each wraps the wire contract's sentinel, so that a caller across
// the node boundary (the worker's HTTP API, the agent's replies) matches it too:
// errors.Is(err, node.ErrNoSuchSet).
var (
	// ErrBadSetID: set IDs are [A-Za-z0-9_.-]+ and not "." or "..".
	ErrBadSetID = fmt.Errorf("worker: %w", node.ErrBadSetID)
	// ErrNoSet: no image set of that ID on this node.
	ErrNoSet = fmt.Errorf("worker: %w", node.ErrNoSuchSet)
	// ErrNotFrozen: Stop of a container that is not frozen since its dump.
	ErrNotFrozen = fmt.Errorf("worker: %w", node.ErrNotFrozen)
	// ErrUnhashed: the pages a direct transfer left here were never hashed and cannot
	// be (SetDigests).
	ErrUnhashed = fmt.Errorf("worker: %w", node.ErrPagesUnhashed)
)

// Parts are the primitives a Worker composes; tests pass fakes.
type Parts struct {
	Inspector container.Inspector
	Locker    netlock.Locker
	Freezer   freezer.Freezer
	Dumper    dump.Dumper
	Restorer  restore.Restorer
	// Placer places sets for swarm tasks (restore.Docker); nil refuses Service restores.
	Placer interface {
		PlaceForTask(v imageset.Verified, service string, slot int) (imageset.Verified, error)
	}
	// Networks takes a held post-copy source off its networks and puts it back
	// (restore.Docker); nil refuses DisconnectHeld and ReconnectHeld.
	Networks interface {
		Disconnect(ctx context.Context, containerID, network string) error
		Connect(ctx context.Context, containerID string, n container.Network) error
	}
	// CRIUVersion and Kernel for NodeInfo.
	CRIUVersion, Kernel string
	// Features answers `criu check --feature` (nil: all unsupported).
	Features migrate.FeatureChecker
	// Pipes raises fs.pipe-max-size while a post-copy dump serves pages (pipemax.Governor).
	// Nil: never raised; post-copy then needs the setting at 4 MiB already.
	Pipes Pipes
	// Activity reads what the container whose init process is pid did (nil:
	// activity.Reader{}.Read, its /proc and cgroup counters). Tests with fake
	// containers set it.
	Activity func(pid int) (activity.Counters, error)
	// Dumpable refuses, before anything is locked or frozen, a container that CRIU
	// cannot dump here (container.Dumpable: a process of another user without
	// CAP_SYS_RESOURCE). Nil: no check (tests with fake containers).
	Dumpable func(c container.Ref) error
	// Memory returns the memory in use (bytes) of the container whose init process is
	// pid: the estimate of what its dump writes, for the disk-space preflight
	// (CheckSpace; space.Reader.Memory). Nil: only the margin is counted (tests with
	// fake containers).
	Memory func(pid int) (int64, error)
	// Owns tells whether pid still belongs to container id before a hold is released
	// (nil: watchdog.BelongsTo, the cgroup check). Tests with fake containers set it.
	Owns func(pid int, id string) bool
	// Sync makes a set written here durable before it is reported, dumped or received
	// (nil: imageset.Sync). Tests make it fail.
	Sync func(set string) error
	// EndPendingConnects: a restored container's connects pending when its network
	// opens are ended at once (package pendingconn, through its processes' sockets).
	// False (tests with fake containers, whose pids are not theirs): left to their SYN's
	// retransmission.
	EndPendingConnects bool
	// RuncState answers `runc --root root state id` for a container whose stop is held
	// (drain_linux.go); nil runs runc. Tests with fake containers set it.
	RuncState func(ctx context.Context, root, id string) (RuncState, error)
	// Xlate keeps address translations in containers' namespaces (xlate.NFT); nil
	// refuses Translate.
	Xlate xlate.Translator
}

// Pipes is the host's fs.pipe-max-size as the worker drives it (pipemax.Governor).
type Pipes interface {
	migrate.PipeLimit
	// Raise makes the setting at least atLeast until release.
	Raise(atLeast int) (release func() error, err error)
	// Reconcile puts back a raise whose holder died.
	Reconcile() error
}

// Worker implements Service on one node.
type Worker struct {
	cfg     Config
	p       Parts
	log     *slog.Logger
	journal watchdog.Journal
	rel     watchdog.Releaser
	self    *watchdog.Owner // this process, written into every hold (nil: unknown)

	mu   sync.Mutex // serializes journal updates per worker
	addr string
	srv  *http.Server
	peer peer // how this worker reaches the others

	recvMu   sync.Mutex
	tasks    taskWatches                  // swarm-task placements (task_linux.go)
	verified map[string]imageset.Verified // sets hashed as they were written here, by set ID
	incoming map[string]*arriving         // sets being received, by set ID (transfer.go)
	hashes   map[string]*lateHash         // received sets whose pages are hashed later, by set ID (latehash_linux.go)

	bg     context.Context // ends with Close: background work (latehash_linux.go)
	bgStop context.CancelFunc

	pagesMu sync.Mutex
	pages   map[string]*pagesRecv // page servers of incoming DumpInto sets, by set ID

	pendingMu      sync.Mutex
	restoredLocked map[string]bool // containers restored network-locked, by ID: their unlock ends pending connects (pending_linux.go)

	lazyMu    sync.Mutex
	lazyEnded map[string]error // held post-copy dumps whose page server ended, and how, by set ID (postcopy_linux.go)
	xl        xlates           // translations kept, and their poll (xlate_linux.go)
	// lazyServing: containers whose held post-copy dump's page server still runs, by
	// container ID (CRIU holds their tasks stopped, the cgroup need not read frozen).
	lazyServing map[string]bool
}

var (
	_ Holder    = (*Worker)(nil)
	_ Dumper    = (*Worker)(nil)
	_ Sets      = (*Worker)(nil)
	_ Restorer  = (*Worker)(nil)
	_ Tasks     = (*Worker)(nil)
	_ Inspector = (*Worker)(nil)
)

// Roles returns the worker's roles, called in-process.
func (w *Worker) Roles() Roles {
	return Roles{Holder: w, Dumper: w, Sets: w, Restorer: w, Tasks: w, Inspector: w, Drainer: w, Translations: w, Lazy: w, PreCopier: w}
}

// New returns a Worker over parts. Call Start to reconcile the journal, start the
// watchdog and the transfer endpoint.
func New(cfg Config, p Parts) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DataRoot == "" {
		return nil, fmt.Errorf("%w: DataRoot unknown (use NewDocker, or set it)", ErrConfig)
	}
	w := &Worker{cfg: cfg, p: p, log: cfg.Log.With("component", "worker", "node", cfg.Node),
		journal: watchdog.Journal{Dir: cfg.JournalDir}}
	w.peer = newPeer(cfg.TLS.client(), cfg.Token)
	w.bg, w.bgStop = context.WithCancel(context.Background())
	w.rel = watchdog.Releaser{Lock: p.Locker, Freeze: p.Freezer, Owns: p.Owns, Log: w.log}
	if self, err := watchdog.Self(); err != nil {
		w.log.Warn("cannot identify this process for the watchdog; if this worker dies, its holds last until their deadline", "err", err)
	} else {
		w.self = &self
	}
	if w.p.Sync == nil {
		w.p.Sync = imageset.Sync
	}
	return w, nil
}

// NewDocker wires the real primitives for the Docker node of cfg.
func NewDocker(ctx context.Context, cfg Config) (*Worker, *client.Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	cli, err := container.DialDocker(cfg.DockerHost)
	if err != nil {
		return nil, nil, err
	}
	if cfg.DataRoot == "" {
		info, err := cli.Info(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("worker %s: docker info at %q: %w (is the node's dockerd up?)", cfg.Node, cfg.DockerHost, err)
		}
		cfg.DataRoot = info.DockerRootDir
	}
	d := &dump.Runc{Root: cfg.RuncRoot()}
	criu, kernel := d.Versions()
	r := &restore.Docker{Cli: cli, DataRoot: cfg.DataRoot, Log: cfg.Log}
	if t := cfg.TLS; t != nil {
		// CRIU's page-server connections (DumpInto, post-copy) with the worker's TLS files.
		files := t.Files
		d.TLS = &files
		r.LazyArgs = d.TLS.Args()
	}
	w, err := New(cfg, Parts{
		Inspector: container.NewDocker(cli), Locker: &netlock.NFT{}, Freezer: &freezer.Cgroup{},
		Dumper: d, Restorer: r, Placer: r, Networks: r, CRIUVersion: criu, Kernel: kernel, Features: migrate.CRIUFeatures{},
		Dumpable: container.Dumpable,
		Memory:   space.Reader{}.Memory,
		Pipes:    pipemax.Governor{Sysctl: pipemax.DefaultSysctl, Dir: pipemax.DefaultDir, Log: cfg.Log.With("component", "worker", "node", cfg.Node)},

		EndPendingConnects: true,
		Xlate:              &xlate.NFT{},
	})
	return w, cli, err
}

// SetsDir is where image sets live: <data-root>/swarmckpt/sets.
func (w *Worker) SetsDir() string { return setsDir(w.cfg.DataRoot) }

func (w *Worker) setPath(id string) (string, error) {
	if id == "" || id == "." || id == ".." || strings.IndexFunc(id, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) >= 0 {
		return "", fmt.Errorf("%w: %q", ErrBadSetID, id)
	}
	return filepath.Join(w.SetsDir(), id), nil
}

// Start reconciles the journal (releasing at once every hold of a worker process that
// has ended, whatever its deadline, and every hold whose deadline passed while no
// worker ran), makes sure the watchdog process runs, and starts the transfer endpoint.
// It returns when the endpoint listens; Close stops it.
func (w *Worker) Start(ctx context.Context) error {
	rel, err := w.rel.Reconcile(ctx, w.journal, time.Now())
	if err != nil {
		w.log.Error("journal reconcile: some holds of a previous worker could not be released (the watchdog retries)", "err", err)
	}
	if len(rel) > 0 {
		w.log.Warn("released the holds of a previous worker (it ended, or their deadline passed)", "count", len(rel))
	}
	if c, ok := w.p.Placer.(interface {
		CollectRestored(time.Duration) (int, error)
	}); ok {
		if n, err := c.CollectRestored(time.Hour); err != nil {
			w.log.Warn("collect consumed sets", "err", err)
		} else if n > 0 {
			w.log.Info("removed consumed sets older than an hour", "count", n)
		}
	}
	w.removeStalePages()
	w.resumeHashes() // latehash_linux.go
	w.removeStaleIncoming()
	w.pruneFailedLogs(time.Now())
	w.pruneDrainSets(ctx, time.Now())
	if w.p.Pipes != nil {
		if err := w.p.Pipes.Reconcile(); err != nil {
			w.log.Warn("could not put back a fs.pipe-max-size raised by a post-copy dump whose worker died", "err", err)
		}
	}
	if err := os.MkdirAll(w.cfg.JournalDir, 0o700); err != nil {
		return fmt.Errorf("worker %s: journal: %w", w.cfg.Node, err)
	}
	if err := w.ensureWatchdog(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", w.cfg.Listen)
	if err != nil {
		return fmt.Errorf("worker %s: listen %s: %w", w.cfg.Node, w.cfg.Listen, err)
	}
	w.addr = ln.Addr().String()
	if w.cfg.TLS != nil {
		ln = tls.NewListener(ln, w.cfg.TLS.Server)
	}
	w.srv = &http.Server{Handler: w.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := w.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.log.Error("transfer endpoint", "err", err)
		}
	}()
	w.xl.start(w)
	w.log.Info("worker started", "transfer", w.addr, "tls", w.cfg.TLS != nil, "journal", w.cfg.JournalDir, "sets", w.SetsDir())
	return nil
}

// Addr is the transfer endpoint's host:port (after Start).
func (w *Worker) Addr() string { return w.addr }

// Close stops the transfer endpoint. Holds stay journaled; the watchdog keeps running.
func (w *Worker) Close() error {
	w.xl.stop()
	w.bgStop()
	if w.srv == nil {
		return nil
	}
	return w.srv.Close()
}

func (w *Worker) ensureWatchdog() error {
	argv := w.cfg.WatchdogArgv
	if len(argv) == 0 {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("worker: find own executable for the watchdog: %w", err)
		}
		argv = []string{self, "worker", "watchdog", "--journal", "{journal}"}
	}
	argv = append([]string(nil), argv...)
	for i := range argv {
		argv[i] = strings.ReplaceAll(argv[i], "{journal}", w.cfg.JournalDir)
	}
	pid, err := watchdog.Ensure(w.cfg.JournalDir, argv)
	if err != nil {
		return fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	if pid > 0 {
		w.log.Info("watchdog started", "pid", pid)
	}
	return nil
}

// deadline clips d to now+MaxHold; a zero d (a hold of the worker's own) is
// now+OwnHold.
func (w *Worker) deadline(d time.Time) time.Time {
	if d.IsZero() {
		return time.Now().Add(w.cfg.OwnHold)
	}
	if max := time.Now().Add(w.cfg.MaxHold); d.After(max) {
		return max
	}
	return d
}

// hold records (merges) a hold in the journal before the primitive runs.
func (w *Worker) hold(c container.Ref, lock, freeze bool, peers []netip.Addr, deadline time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, _, err := w.journal.Get(c.ID)
	if err != nil {
		return err
	}
	h.ContainerID, h.Name, h.Pid = c.ID, c.Name, c.Pid
	h.Owner = w.self
	h.Locked = h.Locked || lock
	h.Frozen = h.Frozen || freeze
	for _, p := range peers {
		h.Peers = append(h.Peers, p.String())
	}
	if deadline.After(h.Deadline) {
		h.Deadline = deadline
	}
	if err := w.journal.Put(h); err != nil {
		return err
	}
	return w.ensureWatchdog()
}

// unhold clears lock or freeze from the journal; the entry goes when nothing is held.
func (w *Worker) unhold(c container.Ref, lock, freeze bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok, err := w.journal.Get(c.ID)
	if err != nil || !ok {
		return err
	}
	if lock {
		h.Locked, h.Peers = false, nil
	}
	if freeze {
		h.Frozen = false
	}
	if !h.Locked && !h.Frozen {
		return w.journal.Remove(c.ID)
	}
	return w.journal.Put(h)
}

func (w *Worker) resolve(ctx context.Context, name string) (container.Ref, error) {
	c, err := w.p.Inspector.Resolve(ctx, name)
	if err != nil {
		return c, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	return c, nil
}

// resolveDumpable is resolve for the steps of a dump (lock, freeze, dump): a container
// CRIU cannot dump here is refused before anything of it is locked or frozen.
func (w *Worker) resolveDumpable(ctx context.Context, name string) (container.Ref, error) {
	c, err := w.resolve(ctx, name)
	if err != nil || w.p.Dumpable == nil {
		return c, err
	}
	if err := w.p.Dumpable(c); err != nil {
		return c, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	return c, nil
}

// Lock implements Holder.
func (w *Worker) Lock(ctx context.Context, name string, peers []netip.Addr, deadline time.Time) error {
	c, err := w.resolveDumpable(ctx, name)
	if err != nil {
		return err
	}
	w.harden(ctx, c)
	if err := w.hold(c, true, false, peers, w.deadline(deadline)); err != nil {
		return fmt.Errorf("lock %s: %w", c, err)
	}
	if err := w.p.Locker.Lock(ctx, c, peers); err != nil {
		return errors.Join(err, w.p.Locker.Unlock(context.WithoutCancel(ctx), c, nil), w.unhold(c, true, false))
	}
	return nil
}

// releaseTimeout bounds a release (unlock, thaw) once it began: it runs to its end
// even when its caller goes away (the agent's request cancelled or cut off), because a
// release cut off half-way (its nft killed with the request's context) leaves the
// container held with nobody to know.
const releaseTimeout = 30 * time.Second

// detached is the context a release runs in: ctx's values, not its cancellation,
// bounded by releaseTimeout.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
}

// Unlock implements Holder. Once the container is found, the unlock runs to its end
// even if ctx ends (detached).
func (w *Worker) Unlock(ctx context.Context, name string, peers []netip.Addr) error {
	c, err := w.resolve(ctx, name)
	if errors.Is(err, container.ErrNotRunning) {
		return w.goneRelease(c, true, false, err)
	}
	if err != nil {
		return goneMarked(err)
	}
	ctx, cancel := detached(ctx)
	defer cancel()
	pending := w.restoredPending(c)
	if err := w.p.Locker.Unlock(ctx, c, peers); err != nil {
		if errors.Is(err, netlock.ErrNamespace) {
			return w.goneRelease(c, true, false, err)
		}
		return err
	}
	if st, err := w.p.Locker.State(ctx, c); err == nil && !st.Locked() {
		w.unlocked(ctx, c, pending)
		return w.unhold(c, true, false)
	}
	return nil
}

// Freeze implements Holder.
func (w *Worker) Freeze(ctx context.Context, name string, deadline time.Time) error {
	c, err := w.resolveDumpable(ctx, name)
	if err != nil {
		return err
	}
	return w.freezeHeld(ctx, c, w.deadline(deadline))
}

// freezeHeld journals a freeze of c until deadline, then freezes it; if the freeze
// fails, c is thawed and the hold removed again.
func (w *Worker) freezeHeld(ctx context.Context, c container.Ref, deadline time.Time) error {
	if err := w.hold(c, false, true, nil, deadline); err != nil {
		return fmt.Errorf("freeze %s: %w", c, err)
	}
	if err := w.p.Freezer.Freeze(ctx, c); err != nil {
		return errors.Join(err, w.p.Freezer.Thaw(context.WithoutCancel(ctx), c), w.unhold(c, false, true))
	}
	return nil
}

// goneMarked marks a release's "no such container" (container.ErrNotFound) as
// node.ErrNotFound on the wire: the caller then knows nothing of it is held (its lock
// and freeze went with it), as a restarted agent releasing the records of its
// predecessor's containers must (worker/agent).
func goneMarked(err error) error {
	if errors.Is(err, container.ErrNotFound) {
		return node.Mark(err, node.ErrNotFound)
	}
	return err
}

// Thaw implements Holder. Once the container is found, the thaw runs to its end even
// if ctx ends (detached).
func (w *Worker) Thaw(ctx context.Context, name string) error {
	c, err := w.resolve(ctx, name)
	if errors.Is(err, container.ErrNotRunning) {
		return w.goneRelease(c, false, true, err)
	}
	if err != nil {
		return goneMarked(err)
	}
	ctx, cancel := detached(ctx)
	defer cancel()
	if err := w.p.Freezer.Thaw(ctx, c); err != nil {
		if errors.Is(err, freezer.ErrNoCgroup) {
			return w.goneRelease(c, false, true, err)
		}
		return err
	}
	return w.unhold(c, false, true)
}

// goneRelease is the outcome of a release of c that is not running, or whose network
// namespace or freezer cgroup is gone (err): its process ended (a container stopped by
// its dump, or exited), and with it what was locked or frozen. Its hold leaves the
// journal and the release answers node.ErrNotFound: the agent counts it released
// (nothing to repeat), as for a container that no longer exists.
func (w *Worker) goneRelease(c container.Ref, lock, freeze bool, err error) error {
	if c.ID != "" {
		if uerr := w.unhold(c, lock, freeze); uerr != nil {
			return errors.Join(err, uerr)
		}
	}
	return node.Mark(err, node.ErrNotFound)
}

// Dump implements Dumper.
func (w *Worker) Dump(ctx context.Context, name, setID string, leaveRunning bool) (*imageset.Manifest, error) {
	return w.dump(ctx, name, setID, dump.Options{LeaveRunning: leaveRunning})
}

// dump is Dump with the dumper's options (DumpTo adds a sink).
func (w *Worker) dump(ctx context.Context, name, setID string, opts dump.Options) (*imageset.Manifest, error) {
	leaveRunning := opts.LeaveRunning
	opts.Node = w.cfg.Node
	t0 := time.Now()
	set, err := w.setPath(setID)
	if err != nil {
		return nil, err
	}
	c, err := w.resolveDumpable(ctx, name)
	if err != nil {
		return nil, err
	}
	spec, err := w.p.Inspector.Spec(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	tInspected := time.Now()
	w.harden(ctx, c)
	release := w.freezeForDump(ctx, c)
	tFrozen := time.Now()
	m, err := w.p.Dumper.Dump(ctx, c, spec, set, opts)
	tDumped := time.Now()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("worker %s: %w", w.cfg.Node, err), release(true))
	}
	if leaveRunning {
		if err := release(true); err != nil {
			// A checkpoint whose container stays frozen is not what the caller asked
			// for, and a set nobody was told of would stay on disk: it goes.
			_ = w.DropSet(context.WithoutCancel(ctx), setID)
			return nil, fmt.Errorf("worker %s: dumped %s, but: %w; the set was dropped, dump again once it runs", w.cfg.Node, c, err)
		}
	} else {
		// The processes are gone: so are their lock and freeze.
		_ = release(false)
		_ = w.unhold(c, true, true)
	}
	// The set is reported durable (a snapshot commits on it): on disk, not only in the
	// page cache. The container already runs again (or is gone): this costs it nothing.
	tReleased := time.Now()
	if err := w.p.Sync(set); err != nil {
		_ = w.DropSet(context.WithoutCancel(ctx), setID)
		return nil, fmt.Errorf("worker %s: dumped %s, but the set could not be written to disk: %w; the set was dropped (is the disk full or failing?)", w.cfg.Node, c, err)
	}
	tSynced := time.Now()
	// Digests were computed from the content as CRIU wrote it: remember the files'
	// stamps so a restore of this set on this node rechecks by stat (imageset.Recheck).
	if v, err := imageset.Sealed(set, m); err == nil {
		w.remember(setID, v)
	}
	w.log.Info("container dumped", "container", c.Name, "set", setID, "leave_running", leaveRunning, "bytes", m.TotalBytes(),
		"seconds", time.Since(t0).Seconds(), "inspect_s", tInspected.Sub(t0).Seconds(), "freeze_s", tFrozen.Sub(tInspected).Seconds(),
		"dump_s", tDumped.Sub(tFrozen).Seconds(), "criu_s", m.DumpSeconds, "sync_s", tSynced.Sub(tReleased).Seconds())
	if r := m.Rootfs; r != nil && r.Carried {
		w.log.Info("writable layer carried", "container", c.Name, "set", setID, "entries", r.Entries, "whiteouts", r.Whiteouts,
			"bytes", r.Bytes, "seconds", r.Seconds, "skipped", r.Skipped)
	} else if r != nil {
		w.log.Warn("writable layer NOT carried: a restore on another node recreates the container's filesystem from its image", "container", c.Name, "set", setID, "reason", r.Reason)
	}
	return m, nil
}

// freezeForDump freezes c before its dump unless it is frozen already (the
// coordinator's protocols freeze before they dump). CRIU would freeze it itself, but
// it polls the freezer every 100 ms: a container that is not frozen at CRIU's first
// look costs the dump (and the container, frozen all along) up to 100 ms more, a third
// of a 64 MiB dump here. The freeze is journaled like Freeze's and renewed while the
// dump runs, so the watchdog thaws c if this worker dies. release ends it: thaw (leave
// running, or a failed dump: CRIU leaves a cgroup it found frozen frozen) or not (c's
// processes are gone), and the hold goes. If c cannot be frozen within
// preFreezeTimeout, it is thawed, nothing stays journaled, and CRIU's own freeze is
// left to try (and to say why it cannot).
func (w *Worker) freezeForDump(ctx context.Context, c container.Ref) (release func(thaw bool) error) {
	noop := func(bool) error { return nil }
	if frozen, err := w.p.Freezer.Frozen(ctx, c); err != nil || frozen {
		return noop
	}
	deadline := w.deadline(time.Time{})
	fctx, cancel := context.WithTimeout(ctx, preFreezeTimeout)
	err := w.freezeHeld(fctx, c, deadline)
	cancel()
	if err != nil {
		w.log.Warn("could not freeze the container before its dump; CRIU freezes it itself", "container", c.Name, "err", err)
		return noop
	}
	stopRenew := w.renewHolds(c, false, deadline, w.cfg.OwnHold/4)
	return func(thaw bool) error {
		stopRenew()
		if thaw {
			if err := w.p.Freezer.Thaw(context.WithoutCancel(ctx), c); err != nil {
				return fmt.Errorf("thaw %s after its dump: %w (the watchdog thaws it at its deadline)", c, err)
			}
		}
		return w.unhold(c, false, true)
	}
}

// preFreezeTimeout bounds freezeForDump's freeze (CRIU's own gives up after 10 s).
const preFreezeTimeout = 2 * time.Second

// harden makes c's TCP sockets dumpable before anything of ours drops its packets
// (netlock.Locker.Harden). A failure is logged, not returned: the dump may still work,
// and if it does not, CRIU's error says why.
func (w *Worker) harden(ctx context.Context, c container.Ref) {
	if err := w.p.Locker.Harden(ctx, c); err != nil {
		w.log.Warn("could not turn off TCP retransmit collapsing; a dump may fail with 'recv failed'", "container", c.Name, "err", err)
	}
}

// lazyDumpTarget checks that this node can serve pages (post-copy) and resolves a
// post-copy dump's set directory and container.
func (w *Worker) lazyDumpTarget(ctx context.Context, name, setID string) (string, container.Ref, error) {
	if err := migrate.PostCopySupport(ctx, w.p.Features, w.pipeLimit()); err != nil {
		return "", container.Ref{}, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	set, err := w.setPath(setID)
	if err != nil {
		return "", container.Ref{}, err
	}
	c, err := w.resolveDumpable(ctx, name)
	return set, c, err
}

// DumpLazy implements Dumper.
func (w *Worker) DumpLazy(ctx context.Context, name, setID, pageServer string) (*imageset.Manifest, error) {
	set, c, err := w.lazyDumpTarget(ctx, name, setID)
	if err != nil {
		return nil, err
	}
	spec, err := w.p.Inspector.Spec(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	addr, err := freePort(pageServer)
	if err != nil {
		return nil, fmt.Errorf("worker %s: page server address %q: %w", w.cfg.Node, pageServer, err)
	}
	// CRIU keeps the container frozen while it serves pages: journal it so the
	// watchdog thaws it if nobody fetches the pages before the deadline.
	deadline := w.deadline(time.Time{})
	if err := w.hold(c, false, true, nil, deadline); err != nil {
		return nil, fmt.Errorf("dump %s: %w", c, err)
	}
	w.harden(ctx, c)
	// CRIU's lazy page server sizes a 4 MiB pipe when the target connects: the setting
	// stays raised until the page server ends.
	unpipe, err := w.raisePipes()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("worker %s: dump %s: post-copy: %w", w.cfg.Node, c, err), w.unhold(c, false, true))
	}
	m, err := w.p.Dumper.Dump(ctx, c, spec, set, dump.Options{Node: w.cfg.Node, PageServer: addr})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("worker %s: %w", w.cfg.Node, err), w.unhold(c, false, true), unpipe())
	}
	served := false
	if lz, ok := w.p.Dumper.(interface {
		LazyOf(string) (dump.Lazy, bool)
	}); ok {
		if l, ok := lz.LazyOf(set); ok {
			served = true
			go func() {
				defer func() {
					if err := unpipe(); err != nil {
						w.log.Warn("post-copy done; could not put fs.pipe-max-size back", "container", c.Name, "err", err)
					}
				}()
				t := time.NewTimer(time.Until(deadline))
				defer t.Stop()
				done := make(chan error, 1)
				go func() { done <- l.Wait() }()
				select {
				case err := <-done:
					if err != nil {
						w.log.Error("post-copy page server failed; CRIU resumed the source", "container", c.Name, "err", err)
					} else {
						w.log.Info("post-copy: every page served, source container exited", "container", c.Name)
					}
				case <-t.C:
					// Keep the hold: the deadline passed, the watchdog thaws the container.
					w.log.Error("post-copy: pages not fetched before the deadline; stopping the page server", "container", c.Name)
					l.Cancel()
					return
				}
				_ = w.unhold(c, true, true)
			}()
		}
	}
	if !served {
		if err := unpipe(); err != nil {
			w.log.Warn("could not put fs.pipe-max-size back", "container", c.Name, "err", err)
		}
	}
	return m, nil
}

// pipeLimit is Parts.Pipes as a migrate.PipeLimit (nil when none).
func (w *Worker) pipeLimit() migrate.PipeLimit {
	if w.p.Pipes == nil {
		return nil
	}
	return w.p.Pipes
}

// raisePipes raises fs.pipe-max-size for a post-copy dump, if the setting is governed.
func (w *Worker) raisePipes() (release func() error, err error) {
	if w.p.Pipes == nil {
		return func() error { return nil }, nil
	}
	return w.p.Pipes.Raise(migrate.MinPipeMaxSize)
}

// Restore implements Restorer. The set is verified (every sha256) before anything else.
func (w *Worker) Restore(ctx context.Context, setID string, opts RestoreOptions) (ref container.Ref, err error) {
	set, err := w.setPath(setID)
	if err != nil {
		return container.Ref{}, err
	}
	if opts.Service == "" {
		// A restore runs to its end even if its caller goes (its agent killed
		// meanwhile): the request the coordinator repeats then finds the container
		// restored (restoredBefore) rather than one half undone.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), restoreBound)
		defer cancel()
	}
	if opts.Service == "" && opts.Name != "" {
		if ref, done, err := w.restoredBefore(ctx, setID, opts); done {
			return ref, err
		}
	}
	if _, err := os.Stat(set); err != nil {
		return container.Ref{}, fmt.Errorf("worker %s: set %s: %w", w.cfg.Node, setID, ErrNoSet)
	}
	// A direct transfer's pages are hashed once this restore ran (latehash_linux.go);
	// a restore that is not the first after the transfer waits for that hash.
	defer w.hashAfterRestore(setID)
	if !w.holdsReceived(setID) {
		if err := w.awaitHash(ctx, setID); err != nil {
			return container.Ref{}, fmt.Errorf("worker %s: refusing to restore set %s: %w", w.cfg.Node, setID, err)
		}
	}
	// Sets received by this worker were hashed while they streamed in: Recheck accepts
	// them if no file changed since (stat only); anything else is re-hashed in full.
	w.recvMu.Lock()
	cached, ok := w.verified[setID]
	delete(w.verified, setID)
	w.recvMu.Unlock()
	var v imageset.Verified
	if ok && cached.Dir() == set {
		v, err = imageset.Recheck(cached)
	} else {
		v, err = imageset.Check(set)
	}
	if err != nil {
		return container.Ref{}, fmt.Errorf("worker %s: refusing to restore set %s: %w", w.cfg.Node, setID, err)
	}
	if opts.Service != "" {
		if w.p.Placer == nil {
			return container.Ref{}, fmt.Errorf("worker %s: %w: no placer for swarm tasks", w.cfg.Node, ErrConfig)
		}
		_, err := w.p.Placer.PlaceForTask(v, opts.Service, opts.Slot)
		return container.Ref{}, err
	}
	undoVolumes, err := w.fillVolumes(ctx, v) // carryvolumes_linux.go: before the container exists
	if err != nil {
		return container.Ref{}, err
	}
	defer func() {
		if err != nil {
			undoVolumes()
		}
	}()
	ro := restore.Options{Name: opts.Name, Runtime: opts.Runtime, Aliases: opts.Aliases, Keep: opts.Keep}
	var created []container.Ref // one per attempt (a failed network attachment retries)
	if !opts.LockUntil.IsZero() {
		deadline := w.deadline(opts.LockUntil)
		ro.NetworkLock = true
		// Journaled before the runtime runs (pid unknown yet): the hold gets the pid once
		// the container runs, and goes if the restore fails (the container, and with it
		// its network namespace and lock, is removed then).
		ro.Created = func(c container.Ref) error {
			created = append(created, c)
			return w.hold(c, true, false, nil, deadline)
		}
		defer func() {
			for _, c := range created {
				if err != nil || c.ID != ref.ID {
					_ = w.unhold(c, true, false)
				}
			}
			if err != nil {
				return
			}
			if herr := w.hold(ref, true, false, nil, deadline); herr != nil {
				w.log.Error("journal the restored container's lock (the coordinator's unlock still releases it)", "container", ref.ID, "err", herr)
			}
		}()
	}
	var pending []pendingconn.Ports
	if !ro.NetworkLock && w.p.EndPendingConnects {
		pending = pendingConnects(v.Dir()) // before the restore, which may consume the set
	}
	ref, err = w.p.Restorer.Restore(ctx, v, ro)
	if err != nil {
		return ref, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	if ro.NetworkLock {
		w.markRestored(ref.ID) // its unlock ends the connects pending then
	} else {
		w.failPendingNow(ctx, ref, pending) // CRIU's own restore lock is gone already
	}
	return ref, nil
}

// restoreBound bounds a standalone restore once its caller is gone (the agent's own
// bound on an action).
const restoreBound = 5 * time.Minute

// restoredBefore makes a repeated restore idempotent: a request whose answer was lost
// (its agent or this worker killed while it ran) is repeated by the coordinator, and
// the container it asked for may already exist, restored from setID
// (restore.LabelSet). Running, it is the answer (done), network-locked again when
// opts asks for a lock (the watchdog of a killed worker lifted it); created or exited
// (half restored), it is removed and the restore runs anew (not done). A container of
// another set holding the name is left to the restore, which refuses it.
func (w *Worker) restoredBefore(ctx context.Context, setID string, opts RestoreOptions) (container.Ref, bool, error) {
	spec, err := w.p.Inspector.Spec(ctx, opts.Name)
	if err != nil || spec.Labels[restore.LabelSet] != setID {
		return container.Ref{}, false, nil
	}
	ref, err := w.resolve(ctx, opts.Name)
	if err != nil {
		w.log.Warn("a container half restored from this set holds the name: removing it, then restoring again", "container", opts.Name, "set", setID, "err", err)
		if rerr := w.RemoveContainer(ctx, opts.Name); rerr != nil {
			return container.Ref{}, true, fmt.Errorf("worker %s: restore of set %s: remove the half-restored container %s first: %w", w.cfg.Node, setID, opts.Name, rerr)
		}
		return container.Ref{}, false, nil
	}
	if !opts.LockUntil.IsZero() {
		if err := w.hold(ref, true, false, nil, w.deadline(opts.LockUntil)); err != nil {
			return ref, true, fmt.Errorf("worker %s: lock %s again: %w", w.cfg.Node, ref, err)
		}
		if err := w.p.Locker.Lock(ctx, ref, nil); err != nil {
			return ref, true, fmt.Errorf("worker %s: lock %s again: %w", w.cfg.Node, ref, err)
		}
		w.markRestored(ref.ID)
	}
	w.log.Info("container already restored from this set (a repeated request): answering with it", "container", opts.Name, "id", ref.ID, "set", setID, "locked", !opts.LockUntil.IsZero())
	return ref, true, nil
}

// Info implements Inspector.
func (w *Worker) Info(ctx context.Context) (NodeInfo, error) {
	ni := NodeInfo{Node: w.cfg.Node, CRIUVersion: w.p.CRIUVersion, Kernel: w.p.Kernel, Addr: w.addr, DataRoot: w.cfg.DataRoot, Features: Features()}
	pre := migrate.PreCopySupport(ctx, w.p.Features)
	if _, ok := w.p.Dumper.(dump.PreDumper); pre == nil && !ok {
		pre = fmt.Errorf("%w: this worker's dumper cannot pre-dump", migrate.ErrPreCopyUnsupported)
	}
	post := migrate.PostCopySupport(ctx, w.p.Features, w.pipeLimit())
	ni.PreCopy = Capability{OK: pre == nil, Reason: errString(pre)}
	ni.PostCopy = Capability{OK: post == nil, Reason: errString(post)}
	return ni, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// DropSet implements Sets.
func (w *Worker) DropSet(ctx context.Context, setID string) error {
	dir, err := w.setPath(setID)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w.recvMu.Lock()
	delete(w.verified, setID)
	if a := w.incoming[setID]; a != nil {
		// Arriving still (a late dump streaming into an aborted snapshot): it is
		// refused when it ends instead of being kept where nobody drops it again.
		a.dropped = true
	}
	w.recvMu.Unlock()
	// A page server opened for the set (DumpInto) closes: a dump that has not
	// connected yet fails, and its container keeps running where it was.
	w.dropPages(setID)
	w.stopHash(setID) // a pending hash of its received pages ends first
	if err := w.dropPreDumps(setID); err != nil {
		return fmt.Errorf("worker %s: drop the pre-dumps of image set %s: %w (remove %s by hand)", w.cfg.Node, setID, err, preCopyDir(w.SetsDir(), setID))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("worker %s: drop image set %s: %w (remove %s by hand)", w.cfg.Node, setID, err, dir)
	}
	_ = os.Remove(restore.FailedLogPath(dir)) // a failed restore's CRIU log, if any
	w.log.Info("image set dropped", "set", setID)
	return nil
}

// Sockets implements Sets.
func (w *Worker) Sockets(ctx context.Context, setID, label string) (SetSockets, error) {
	set, err := w.setPath(setID)
	if err != nil {
		return SetSockets{}, err
	}
	if err := ctx.Err(); err != nil {
		return SetSockets{}, err
	}
	if _, err := os.Stat(set); errors.Is(err, os.ErrNotExist) {
		return SetSockets{}, fmt.Errorf("worker %s: set %s: %w", w.cfg.Node, setID, ErrNoSet)
	}
	if err := w.awaitHash(ctx, setID); err != nil {
		return SetSockets{}, err
	}
	m, err := imageset.Verify(set)
	if err != nil {
		return SetSockets{}, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	return w.setSockets(setID, set, label, m)
}

var _ SetRechecker = (*Worker)(nil)

// RecheckSockets implements SetRechecker.
func (w *Worker) RecheckSockets(ctx context.Context, setID, label string) (SetSockets, error) {
	set, err := w.setPath(setID)
	if err != nil {
		return SetSockets{}, err
	}
	if err := ctx.Err(); err != nil {
		return SetSockets{}, err
	}
	w.recvMu.Lock()
	cached, ok := w.verified[setID]
	w.recvMu.Unlock()
	if !ok || cached.Dir() != set {
		return w.Sockets(ctx, setID, label) // not hashed here as written: re-hashed
	}
	if _, err := os.Stat(set); errors.Is(err, os.ErrNotExist) {
		return SetSockets{}, fmt.Errorf("worker %s: set %s: %w", w.cfg.Node, setID, ErrNoSet)
	}
	v, err := imageset.Recheck(cached) // a file changed since: re-hashed
	if err != nil {
		return SetSockets{}, fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	return w.setSockets(setID, set, label, v.Manifest())
}

// setSockets reads the TCP sockets of set (setID's directory), verified as m.
func (w *Worker) setSockets(setID, set, label string, m *imageset.Manifest) (SetSockets, error) {
	socks, err := criuimg.ReadSockets(label, imageset.ImagesPath(set))
	if err != nil {
		return SetSockets{}, fmt.Errorf("worker %s: image set %s: %w", w.cfg.Node, setID, err)
	}
	return SetSockets{Manifest: m, Sockets: socks}, nil
}

// RemoveContainer implements Restorer.
func (w *Worker) RemoveContainer(ctx context.Context, name string) error {
	if name == "" {
		return fmt.Errorf("worker %s: remove container: %w: empty name", w.cfg.Node, container.ErrNotFound)
	}
	ref, rerr := w.resolve(ctx, name)
	if err := w.p.Restorer.Remove(ctx, name); err != nil {
		return fmt.Errorf("worker %s: %w", w.cfg.Node, err)
	}
	if rerr != nil {
		ref = container.Ref{ID: name}
	}
	// Its network namespace, and with it any lock, is gone: drop the journaled holds.
	_ = w.unhold(ref, true, true)
	w.log.Info("container removed", "container", name)
	return nil
}

// holdsReceived tells whether this worker holds set setID as it hashed (or received)
// it (remember), not yet consumed by a restore.
func (w *Worker) holdsReceived(setID string) bool {
	w.recvMu.Lock()
	defer w.recvMu.Unlock()
	_, ok := w.verified[setID]
	return ok
}

// remember caches a set hashed as it was written on this node (dumped or received).
func (w *Worker) remember(setID string, v imageset.Verified) {
	w.recvMu.Lock()
	defer w.recvMu.Unlock()
	if w.verified == nil {
		w.verified = map[string]imageset.Verified{}
	}
	w.verified[setID] = v
}
