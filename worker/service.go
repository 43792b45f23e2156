package worker

import (
	"context"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/swarmckpt/swarmckpt/cut"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/restore"
)

// The worker's role interfaces: what the node agent (worker/agent) calls on its node's
// worker, one small interface per role. Container names or IDs refer to containers of
// this node; every call is bounded by ctx. *Worker (in-process) and *Client (its HTTP
// API) implement every role, Fake (in memory, fake.go) too; workertest holds the
// conformance suite run against all three. Roles bundles one worker's roles.

// Holder holds containers still: the network lock and the freeze, each until released
// or until its deadline (the watchdog's), and the stop of a container frozen since its
// dump.
type Holder interface {
	// Lock drops the container's packets to and from peers (all when empty) until
	// Unlock or the deadline, whichever comes first.
	Lock(ctx context.Context, containerName string, peers []netip.Addr, deadline time.Time) error
	// Unlock stops dropping packets for peers (all when empty). A container that no
	// longer exists: nil or node.ErrNotFound (nothing of it is held either way).
	Unlock(ctx context.Context, containerName string, peers []netip.Addr) error
	// Freeze stops the container's processes until Thaw or the deadline.
	Freeze(ctx context.Context, containerName string, deadline time.Time) error
	// Thaw resumes the container. A container that no longer exists: nil or
	// node.ErrNotFound (nothing of it is held either way).
	Thaw(ctx context.Context, containerName string) error
	// Stop ends a container that is frozen since its dump with exit deferred (a
	// migration's or a restore's checkpoint that stops the stack, held until the
	// snapshot committed): SIGKILL while frozen, then thaw, so its processes die
	// without running again; its lock and freeze go with them. Refused (ErrNotFrozen,
	// node.ErrNotFrozen) if the container is not frozen: it ran on after its dump, and
	// ending it would lose what it did since.
	Stop(ctx context.Context, containerName string) error
	// Holds returns every hold of the node's journal: the containers locked or frozen,
	// and until when (docs/dataplane.md "Deadlines").
	Holds(ctx context.Context) ([]Held, error)
}

// Dumper checkpoints containers into image sets.
type Dumper interface {
	// CheckDump checks, without touching the container, that this node can dump it:
	// what the worker would refuse at Lock, Freeze or Dump (container.Dumpable: a
	// process of another user while the worker lacks CAP_SYS_RESOURCE). The node agent
	// asks it for every container of a snapshot plan, so that such a snapshot is
	// refused before any container of the stack is locked.
	CheckDump(ctx context.Context, containerName string) error
	// Dump checkpoints the container into the new image set setID.
	Dump(ctx context.Context, containerName, setID string, leaveRunning bool) (*imageset.Manifest, error)
	// DumpTo is Dump streaming the images to the worker at addr (host:port) while CRIU
	// writes them; it returns when the set is sealed here and the receiver verified its
	// copy (the transfer overlaps the dump: cold migration is DumpTo + Restore there).
	// A failed stream leaves the set sealed here.
	DumpTo(ctx context.Context, containerName, setID, addr string, leaveRunning bool) (*imageset.Manifest, error)
	// DumpWith is Dump, or DumpTo with o.StreamTo, with options: o.CarryVolumes packs
	// the container's local named volumes into the set (snapshot --carry-volumes).
	DumpWith(ctx context.Context, containerName, setID string, o DumpOptions) (*imageset.Manifest, error)
	// DumpInto is cold migration without a copy on this node: CRIU sends the memory
	// pages straight to a page server of the worker at addr, which hashes them as they
	// arrive; the other images follow. The container is locked and frozen meanwhile and
	// killed only once the target holds the verified set; on any failure it keeps
	// running here and neither node keeps a set.
	DumpInto(ctx context.Context, containerName, setID, addr string) (*imageset.Manifest, error)
	// DumpLazy is Dump for post-copy migration: it writes every image but the memory
	// pages, returns, and keeps the container frozen while serving its pages on
	// pageServer (HOST:PORT; port 0 picks a free one, recorded in the manifest's
	// LazyPages) to the restoring node; the container exits when all were fetched, or
	// resumes if the transfer fails. Refused with the reason where post-copy cannot run
	// (see NodeInfo.PostCopy).
	DumpLazy(ctx context.Context, containerName, setID, pageServer string) (*imageset.Manifest, error)
}

// Sets moves, checks and deletes the image sets on this node.
type Sets interface {
	// Send streams image set setID to the worker listening at addr (host:port), which
	// verifies every file's sha256 before accepting it. A target that already holds the
	// set with the same files (a migration streamed it there while dumping) gets
	// nothing: SendResult.AlreadyThere. Not here: node.ErrNoSuchSet; a target holding
	// another set of that ID: node.ErrSetExists.
	Send(ctx context.Context, setID, addr string) (SendResult, error)
	// DropSet deletes image set setID from this node (a snapshot aborted or removed).
	// Refused (ErrBadSetID) for an ID that would escape the sets directory; dropping a
	// set that is not there succeeds (idempotent).
	DropSet(ctx context.Context, setID string) error
	// Sockets re-verifies image set setID (every file's size and sha256 against its
	// manifest, no missing or extra file) and reads the TCP sockets of its CRIU images,
	// labelled label: the cut checker's input, computed where the images are.
	Sockets(ctx context.Context, setID, label string) (SetSockets, error)
}

// SetRechecker is a Sets whose Sockets can skip the re-hash of a set this worker
// hashed as it wrote it (node.VerifyRequest.Recheck).
type SetRechecker interface {
	// RecheckSockets is Sockets, but a set this worker hashed as it wrote it (dumped
	// or received) whose every file still has the size, mtime and inode it had then is
	// not re-read (imageset.Recheck, what its restores check); any other set is
	// re-hashed as by Sockets.
	RecheckSockets(ctx context.Context, setID, label string) (SetSockets, error)
}

// DigestWaiter is a Sets that can say when the memory pages it received from a direct
// transfer are hashed (Config.PageDigests after-restore): what a coordinator needs
// to fill a snapshot record whose page digests were pending at the commit.
type DigestWaiter interface {
	// SetDigests waits until the received pages of set setID are hashed (starting
	// that hash now if it still waits for the set's restore) and returns the set's
	// manifest as this worker recorded it, without re-hashing. A set whose pages
	// were left unhashed by a worker that ended before it hashed them, and cannot be
	// hashed now, fails with an error matching imageset.ErrUnhashed; a set not here,
	// node.ErrNoSuchSet.
	SetDigests(ctx context.Context, setID string) (*imageset.Manifest, error)
}

// Restorer brings containers back from image sets on this node.
type Restorer interface {
	// Preflight checks a restore's needs on this node without changing anything (or,
	// with Prepare, starts what shortens it).
	Preflight(ctx context.Context, req PreflightRequest) (PreflightReport, error)
	// Restore recreates the container of image set setID on this node and restores it.
	Restore(ctx context.Context, setID string, opts RestoreOptions) (container.Ref, error)
	// RemoveContainer force-removes a container this worker restored (by id or name)
	// and releases its holds, to undo a restore; removing one that is gone succeeds.
	RemoveContainer(ctx context.Context, containerName string) error
}

// Inspector describes the node and what restores left on it.
type Inspector interface {
	// Info describes the node.
	Info(ctx context.Context) (NodeInfo, error)
	// Standalone returns this node's restored containers of stack's services (every
	// state; Running tells which run): docs/restore.md "Restoring a restored stack".
	Standalone(ctx context.Context, stack string) ([]restore.Standalone, error)
}

// Roles are one worker's roles, as the node agent takes them; a nil role is one the
// worker does not offer (the agent answers its operations with node.ErrNoWorker).
type Roles struct {
	Holder    Holder
	Dumper    Dumper
	Sets      Sets
	Restorer  Restorer
	Tasks     Tasks
	Inspector Inspector
	Drainer   Drainer
	// Translations: xlate.go.
	Translations Translations
	// Lazy is the source side of held post-copy dumps (nil: the agent cannot stop a
	// page server when it releases a parked container; it thaws it anyway).
	Lazy LazyWaiter
	// PreCopier runs a pre-copy migration's pre-dumps (precopy.go; nil: the agent
	// refuses them with node.ErrNoWorker).
	PreCopier PreCopier
}

// SetSockets is what Sockets found in a verified image set.
type SetSockets struct {
	// Manifest is the set's manifest, every file of which was re-hashed and matched.
	Manifest *imageset.Manifest `json:"manifest"`
	// Sockets are the TCP sockets of the images (listening ones left out).
	Sockets []cut.Socket `json:"sockets"`
}

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Name of the restored container; empty keeps the original name.
	Name string
	// Runtime forces a Docker runtime (e.g. "swarmckpt"); empty uses the node's default.
	Runtime string
	// Service and Slot, when Service is set, place the set for the next task of that
	// swarm service slot on this node instead of creating a container: swarm's
	// replacement task is then restored by the runtime wrapper.
	Service string
	Slot    int
	// Aliases are extra DNS aliases per network name (e.g. swarm's task aliases, which
	// the container's own endpoint does not show), added to the recorded ones.
	Aliases map[string][]string
	// LockUntil, when set, restores the container with its network locked (every
	// packet but loopback dropped) from before CRIU restores its sockets; the lock stays
	// after the restore until Unlock, or until LockUntil, when the watchdog releases it.
	// Standalone restores only.
	LockUntil time.Time
	// Keep restores from a hard-linked copy and leaves the set on this node, intact and
	// restorable again (restore.Options.Keep): for the set a snapshot keeps here, as
	// opposed to a copy sent for this restore. Standalone restores only.
	Keep bool
}

// NodeInfo describes a node for the coordinator's placement and compatibility checks.
type NodeInfo struct {
	Node        string `json:"node"`
	CRIUVersion string `json:"criuVersion"`
	Kernel      string `json:"kernel"`
	// Addr is the host:port of this worker's transfer endpoint.
	Addr string `json:"addr"`
	// DataRoot is the Docker data-root; sets live under DataRoot/swarmckpt/sets.
	DataRoot string `json:"dataRoot"`
	// PreCopy and PostCopy say whether those migration modes can run here, and why not.
	PreCopy  Capability `json:"preCopy"`
	PostCopy Capability `json:"postCopy"`
	// Features are the protocol features of this worker's version (node.Feature*,
	// e.g. node.FeatureDumpIntoHeld; Features()): an older worker sends none. The
	// node's agent announces them with PreCopy/PostCopy in its heartbeats and
	// membership metadata, and the coordinator asks a node only for what it announces.
	Features []string `json:"features,omitempty"`
}

// Features are the protocol features every worker of this version has
// (NodeInfo.Features).
func Features() []string {
	return []string{node.FeatureDumpIntoHeld, node.FeaturePostCopyMigrate, node.FeatureDrainDirect}
}

// SetDir is where image set id lives on this worker's node (the agent next to the
// worker reads and verifies sets there).
func (i NodeInfo) SetDir(id string) string { return filepath.Join(setsDir(i.DataRoot), id) }

// setsDir is <data-root>/swarmckpt/sets.
func setsDir(dataRoot string) string { return filepath.Join(dataRoot, "swarmckpt", "sets") }

// Capability is a yes/no with the reason for no.
type Capability struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

// SendResult is what Send did.
type SendResult struct {
	// AlreadyThere: the target held the set with the same files (names, sizes, sha256);
	// nothing was sent. The target still verifies every file before a restore.
	AlreadyThere bool `json:"alreadyThere,omitempty"`
}
