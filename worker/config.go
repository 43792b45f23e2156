package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/swarmckpt/swarmckpt/metrics"
	"github.com/swarmckpt/swarmckpt/worker/migrate"
)

// Config configures a Worker.
type Config struct {
	// Node is this node's name (lab: lab-1). Required.
	Node string
	// DockerHost is the node's Docker socket, e.g. unix:///run/swarmckpt/lab/lab-1/docker.sock.
	// Empty means the environment's DOCKER_HOST or the default socket.
	DockerHost string
	// ExecRoot is the node's Docker exec-root; runc's root is ExecRoot/runtime-runc/moby.
	// Default /run/docker.
	ExecRoot string
	// DataRoot is the node's Docker data-root; empty means ask Docker (docker info).
	DataRoot string
	// JournalDir holds the deadline journal. Default /run/swarmckpt/worker/<Node>/holds.
	JournalDir string
	// Listen is the transfer endpoint's address. Default 127.0.0.1:0 (a free port).
	Listen string
	// MaxHold caps every Lock/Freeze deadline: a deadline further away is cut to now+MaxHold.
	// The coordinator's deadlines scale with the work (coordinator/holdtime, at most 10 min
	// plus its grace by default), so the cap is above them. Default 11 minutes.
	MaxHold time.Duration
	// OwnHold is the deadline of a hold the worker takes for itself (a dump's own
	// freeze, DumpInto's lock and freeze, a lazy page server), renewed every quarter of
	// it while the work runs: if the worker hangs, the watchdog releases the container
	// within OwnHold of the last renewal. Default 2 minutes, at most MaxHold.
	OwnHold time.Duration
	// XlatePoll is how often the worker checks whether a container still has a TCP
	// socket to the old address of each translation it keeps (xlate.go), and removes
	// the translation once none has. Default 1 s.
	XlatePoll time.Duration
	// PageDigests is when this worker, receiving a direct transfer's memory pages from
	// the dumping CRIU (DumpInto's target: CRIU's page-server protocol has no checksum),
	// computes their sha256 for the set's manifest: PageDigestsAfterRestore (default)
	// hashes them in the background once the restore that follows the transfer ran,
	// PageDigestsOnArrival while its page server writes them (on the migration's
	// critical path). A sender may ask for one per transfer (a held migration's dump
	// asks for on-arrival: its snapshot record needs the digests at once).
	PageDigests string
	// WatchdogArgv starts the watchdog process; "{journal}" is replaced with JournalDir.
	// Default: this executable with `worker watchdog --journal {journal}`.
	WatchdogArgv []string
	// Token, when set, is required of every request to the endpoint and sent with this
	// worker's own requests to other workers (auth.go). All workers of a cluster share
	// it. Empty: no authentication (tests, trusted single-user hosts).
	Token string
	// TLS, when set, makes the endpoint serve HTTPS and this worker reach the others
	// over HTTPS (tls.go). All workers of a cluster run with it or all without.
	TLS *TLS
	// Metrics records the API operations' durations and failures, frozen times and
	// dumped bytes (metrics.NewWorker on the caller's registry); nil: none.
	Metrics *metrics.Worker
	// PreCopy is the iteration policy of pre-copy (PreCopy: how many pre-dumps, when
	// to stop). Default migrate.DefaultPreCopyPolicy() (at most 5 rounds, stop under
	// 16 MiB dirty or when the dirty set shrinks by less than 10%).
	PreCopy migrate.PreCopyPolicy
	// Log receives the worker's logs. Default slog.Default().
	Log *slog.Logger
}

// Config.PageDigests values.
const (
	PageDigestsAfterRestore = "after-restore"
	PageDigestsOnArrival    = "on-arrival"
)

// ErrConfig: a required setting is missing or invalid.
var ErrConfig = errors.New("worker: bad config")

// DefaultConfig returns the defaults for node.
func DefaultConfig(node string) Config {
	return Config{Node: node, ExecRoot: "/run/docker", Listen: "127.0.0.1:0", MaxHold: 11 * time.Minute, OwnHold: 2 * time.Minute,
		XlatePoll: time.Second, JournalDir: filepath.Join("/run/swarmckpt/worker", node, "holds")}
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	d := DefaultConfig(c.Node)
	if c.Node == "" || filepath.Base(c.Node) != c.Node {
		return fmt.Errorf("%w: node name %q (use --node NAME)", ErrConfig, c.Node)
	}
	if c.ExecRoot == "" {
		c.ExecRoot = d.ExecRoot
	}
	if c.JournalDir == "" {
		c.JournalDir = d.JournalDir
	}
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if c.MaxHold <= 0 {
		c.MaxHold = d.MaxHold
	}
	if c.OwnHold <= 0 {
		c.OwnHold = d.OwnHold
	}
	c.OwnHold = min(c.OwnHold, c.MaxHold)
	switch c.PageDigests {
	case "":
		c.PageDigests = PageDigestsAfterRestore
	case PageDigestsAfterRestore, PageDigestsOnArrival:
	default:
		return fmt.Errorf("%w: page digests %q (use %s or %s)", ErrConfig, c.PageDigests, PageDigestsAfterRestore, PageDigestsOnArrival)
	}
	if c.XlatePoll <= 0 {
		c.XlatePoll = d.XlatePoll
	}
	if c.PreCopy == (migrate.PreCopyPolicy{}) {
		c.PreCopy = migrate.DefaultPreCopyPolicy()
	}
	if err := c.PreCopy.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return nil
}

// RuncRoot is runc's state root for the node's containers.
func (c *Config) RuncRoot() string { return filepath.Join(c.ExecRoot, "runtime-runc", "moby") }
