package store

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol"
)

// State is a snapshot's state.
type State string

// Snapshot states. ONLY APPEND new states; stored manifests carry these strings.
const (
	StatePreparing State = "preparing"
	StateDumping   State = "dumping"
	StateCommitted State = "committed"
	StateAborted   State = "aborted"
	// StateCorrupt is never stored: List reports a manifest that fails to decode
	// with this state so that `ls` can show it and `rm` can remove it.
	StateCorrupt State = "corrupt"
)

// Final reports whether s can no longer change.
func (s State) Final() bool { return s == StateCommitted || s == StateAborted }

// Manifest describes one snapshot of one stack.
type Manifest struct {
	ID        string `json:"id"`
	Stack     string `json:"stack"`
	Algorithm string `json:"algorithm"`
	State     State  `json:"state"`
	// Epoch is the per-stack snapshot sequence number (strictly increasing).
	Epoch uint64 `json:"epoch,omitempty"`
	// Record is the coordinator role's last persisted record (algorithms.ActPersist),
	// used to finish or abort the snapshot after a coordinator restart.
	Record []byte `json:"record,omitempty"`
	// Reason says why a snapshot was aborted (or what is wrong with a corrupt one).
	Reason string `json:"reason,omitempty"`
	// LeaveRunning: the containers kept running after the dump.
	LeaveRunning bool      `json:"leave_running"`
	Coordinator  string    `json:"coordinator,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	CommittedAt  time.Time `json:"committed_at,omitzero"`
	// TotalMS is the wall time from start to commit.
	TotalMS    int64       `json:"total_ms,omitempty"`
	Containers []Container `json:"containers"`
	Warnings   []string    `json:"warnings,omitempty"`
	// Purpose says why the coordinator took this snapshot by itself, e.g. "before
	// restore of ID" (empty: asked for by a user).
	Purpose string `json:"purpose,omitempty"`
	// RequestID is the id of the CLI request that asked for this snapshot
	// (api.SnapshotRequest.RequestID): the same request sent again to a new leader is
	// answered with this snapshot's outcome instead of being refused as a duplicate id.
	RequestID string `json:"request_id,omitempty"`
	// Replicas is how many copies of every image set the snapshot asked for (0 or 1:
	// only the original); Containers[i].Copies says where the others are.
	Replicas int `json:"replicas,omitempty"`
	// Excluded are the stack's services left out of the snapshot (swarmckpt.exclude),
	// with how many containers each ran: a restore starts them again fresh, at that
	// many replicas.
	Excluded map[string]int `json:"excluded,omitempty"`
	// CarryVolumes: the dumps packed the containers' local named volumes into their
	// sets (snapshot --carry-volumes), so a restore elsewhere recreates them.
	CarryVolumes bool `json:"carry_volumes,omitempty"`
	// Partial: the snapshot holds only the containers a partial migration moved (the
	// stack's others ran on untouched): it is not a snapshot of the stack, and a
	// restore of it is refused.
	Partial bool `json:"partial,omitempty"`
	// Leftovers lists the image sets that could not be collected from their nodes
	// after an abort ("NODE SET: reason"); delete them by hand or with rm later.
	Leftovers []string `json:"leftovers,omitempty"`
	// Verdict is the cut checker's result on the stored images.
	Verdict *Verdict `json:"verdict,omitempty"`
	// Restores records the restores made from this snapshot.
	Restores []Restore `json:"restores,omitempty"`
	// NContainers and ImageBytes summarize Containers (their number and Bytes()) so
	// that a header read without the containers (Snapshots.Headers, `ls`) can show
	// them. Create, Update and Commit set them (Summarize); records written before
	// they existed have them from Headers too.
	NContainers int   `json:"n_containers,omitempty"`
	ImageBytes  int64 `json:"image_bytes,omitempty"`
	// PagesPending counts the containers whose image set still waits for its page
	// digests (ImageSet.PagesPending, not PagesUnverified: a direct migration's target
	// hashes the pages after the restore), so that a coordinator finds them from the headers alone
	// (Summarize sets it) and fills them in (coordinator/restore FillPages).
	PagesPending int `json:"pages_pending,omitempty"`

	// Revision is the store's version of this manifest, used for compare-and-swap.
	// Not serialized.
	Revision int64 `json:"-"`
	// headerOnly: read by Headers, without Containers and Record; Update and Commit
	// refuse it (ErrHeaderOnly) so that a header cannot overwrite the containers.
	headerOnly bool
}

// Container is one container of the snapshot: where it ran and what was dumped.
type Container struct {
	Service     string   `json:"service"`
	Slot        int      `json:"slot"`
	TaskID      string   `json:"task_id,omitempty"`
	Node        string   `json:"node"`
	NodeID      string   `json:"node_id,omitempty"`
	ContainerID string   `json:"container_id"`
	Name        string   `json:"name,omitempty"`
	Image       string   `json:"image"`
	IPs         []string `json:"ips,omitempty"`
	Networks    []string `json:"networks,omitempty"`
	// Aliases are the task's DNS aliases per network name (from swarm's task spec).
	Aliases map[string][]string `json:"aliases,omitempty"`
	// No container configuration (environment, command, mounts): a restore reads it,
	// with its secrets, from the image set's manifest.json on the node's disk (0600).
	// Images is the durable image set, nil until the dump is acknowledged.
	Images *ImageSet `json:"images,omitempty"`
	// StreamedTo is the node a migration's dump also streamed the image set to (the
	// set of the same name there), so that rm can find a copy no restore used.
	StreamedTo string `json:"streamed_to,omitempty"`
	// Copies are the replicas of the image set (swarmckpt.replicas, snapshot
	// --replicas): the set of the same name on other nodes, each sha256-checked on
	// arrival. The original is Images.Node's.
	Copies []Copy `json:"copies,omitempty"`
	// Direct: the migration dumped the container straight into StreamedTo (migrate
	// --copy direct): the set's only copy is there, and Images.Node names that node.
	// A failed migration keeps it (its rollback restores from it); rm drops it there.
	Direct bool `json:"direct,omitempty"`
	// PostCopy: the migration dumped the container post-copy (migrate --copy
	// post-copy): its set on Images.Node holds no pages, the restored container
	// fetched them from that node's page server, which never wrote them to disk: no
	// page has a checksum. The set is dropped once every page arrived.
	PostCopy bool `json:"post_copy,omitempty"`
	// PreCopy: the migration pre-dumped the container while it ran (migrate --copy
	// pre-copy, PreDumps rounds) and its dump wrote only the pages dirtied since the
	// last; the set holds the pre-dumps too (every file checksummed) and streamed to
	// StreamedTo as a streamed dump's does; the dumping node keeps its copy.
	PreCopy  bool `json:"pre_copy,omitempty"`
	PreDumps int  `json:"pre_dumps,omitempty"`
	// PagesLost is set when a post-copy source failed before every page arrived (data
	// loss for this container): what the wait for its pages reported.
	PagesLost string `json:"pages_lost,omitempty"`
	// PagesArrived is when a post-copy container's source had served its last page
	// (every page reached the restored container), recorded before the source is
	// ended: a coordinator that finishes the migration after the one that ran it
	// died does not wait for those pages again.
	PagesArrived time.Time `json:"pages_arrived,omitzero"`
	// FreezeMS is how long the container's processes were frozen; DumpMS the dump.
	FreezeMS int64 `json:"freeze_ms,omitempty"`
	DumpMS   int64 `json:"dump_ms,omitempty"`
}

// Key names a container inside a stack: SERVICE.SLOT.
func (c Container) Key() string { return fmt.Sprintf("%s.%d", c.Service, c.Slot) }

// Copy is one replica of a container's image set on another node.
type Copy struct {
	Node string `json:"node"`
	// Error is what the last check of this copy (inspect --verify) found wrong; empty
	// when it verified.
	Error string `json:"error,omitempty"`
}

// ImageSet is a container's CRIU image directory on a node: the set its node agent
// reported with the container's dump-done (protocol.DumpStats.Images).
type ImageSet = protocol.ImageSet

// File is one image file with its checksum.
type File = protocol.ImageFile

// Verdict is the cut checker's result.
type Verdict struct {
	Consistent bool      `json:"consistent"`
	Summary    string    `json:"summary"`
	Lines      []string  `json:"lines,omitempty"`
	CheckedAt  time.Time `json:"checked_at"`
	// Error is set when the checker could not run (images unreadable).
	Error string `json:"error,omitempty"`
}

// Restore records one restore of the snapshot. Fields added after the first release
// are optional: records written before them decode with their zero values.
type Restore struct {
	At      time.Time         `json:"at"`
	Targets map[string]string `json:"targets"` // SERVICE.SLOT -> node
	OK      bool              `json:"ok"`
	Error   string            `json:"error,omitempty"`
	// Mode is the restore mode ("exact" or "swarm"; empty in records written before
	// it existed, which were exact unless Error says "mode swarm").
	Mode string `json:"mode,omitempty"`
	// Addresses is the address map a swarm-mode restore applied to the images (old IP
	// -> new IP of every container of the set); empty for exact restores, which keep
	// the snapshot's addresses.
	Addresses map[string]string `json:"addresses,omitempty"`
	// CutCheck says how the restored cut was checked (its summary), or why not.
	CutCheck string `json:"cut_check,omitempty"`
	// From and RolledBack (restore --recovery-line): per SERVICE.SLOT the snapshot
	// whose images it was restored from and how many checkpoints it rolled back.
	From       map[string]string `json:"from,omitempty"`
	RolledBack map[string]int    `json:"rolled_back,omitempty"`
}

// Summarize sets NContainers, ImageBytes and PagesPending from Containers.
func (m *Manifest) Summarize() {
	m.NContainers, m.ImageBytes = len(m.Containers), m.Bytes()
	m.PagesPending = 0
	for _, c := range m.Containers {
		if c.Images != nil && c.Images.PagesPending && c.Images.PagesUnverified == "" {
			m.PagesPending++
		}
	}
}

// HeaderOnly reports whether m was read by Headers (no Containers, no Record).
func (m *Manifest) HeaderOnly() bool { return m.headerOnly }

// HeaderOf returns m's header as Headers returns it: m without Containers and
// Record, with NContainers and ImageBytes set (from Containers when m has them).
func HeaderOf(m *Manifest) *Manifest {
	h := *m
	if len(m.Containers) > 0 {
		h.Summarize()
	}
	h.Containers, h.Record, h.headerOnly = nil, nil, true
	return &h
}

// Bytes is the total image size of the snapshot.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, c := range m.Containers {
		if c.Images != nil {
			n += c.Images.Bytes()
		}
	}
	return n
}

// Complete returns nil when every container's image set is durable and every file
// has a valid sha256 (but the memory page files of a set whose page digests are
// pending: ImageSet.PagesPending): the condition for Commit.
func (m *Manifest) Complete() error {
	if len(m.Containers) == 0 {
		return fmt.Errorf("%w: snapshot %s has no containers", ErrIncomplete, m.ID)
	}
	for _, c := range m.Containers {
		switch {
		case c.Images == nil:
			return fmt.Errorf("%w: container %s (%s) has no image set", ErrIncomplete, c.Key(), c.ContainerID)
		case !c.Images.Durable:
			return fmt.Errorf("%w: image set of %s on %s is not durable yet", ErrIncomplete, c.Key(), c.Images.Node)
		case len(c.Images.Files) == 0:
			return fmt.Errorf("%w: image set of %s lists no files", ErrIncomplete, c.Key())
		}
		for _, f := range c.Images.Files {
			if f.SHA256 == "" && c.Images.PagesPending && protocol.PendingPageFile(f.Name) {
				continue // a direct transfer's pages, hashed after the restore (FillPages)
			}
			if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 {
				return fmt.Errorf("%w: %s file %s has no valid sha256 (%q)", ErrIncomplete, c.Key(), f.Name, f.SHA256)
			}
		}
	}
	return nil
}
