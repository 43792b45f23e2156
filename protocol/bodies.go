package protocol

import "strings"

// Container is one participant of a snapshot: a container, the worker node it runs on,
// and the containers of the same snapshot it has TCP connections with (its peers; the
// relation is symmetric: if b is a peer of a, a is a peer of b). A connection between a
// and b is two channels, a->b and b->a.
type Container struct {
	ID    string   `json:"id"`
	Node  string   `json:"node"`
	Peers []string `json:"peers,omitempty"`
}

// SnapshotRequest asks the coordinator for a snapshot of a set of containers.
type SnapshotRequest struct {
	// Algorithm is the algorithm name (blocking, chandy-lamport, uncoordinated, minimal).
	Algorithm string `json:"algorithm"`
	// Containers is the participant set.
	Containers []Container `json:"containers"`
}

// SnapshotResult reports how a snapshot ended.
type SnapshotResult struct {
	Committed bool   `json:"committed"`
	Reason    string `json:"reason,omitempty"`
}

// Lock asks a container to lock its network and optionally freeze it.
type Lock struct {
	// All locks every connection of the container; otherwise only those to Peers.
	All bool `json:"all,omitempty"`
	// Peers are the peer containers whose connections to lock when All is false.
	Peers []string `json:"peers,omitempty"`
	// Freeze also freezes the container after locking it.
	Freeze bool `json:"freeze,omitempty"`
}

// Dump asks a container to record itself.
type Dump struct {
	// LeaveRunning keeps the container running after the dump (CRIU --leave-running).
	LeaveRunning bool `json:"leave_running,omitempty"`
	// ReuseFrom, if set, names an earlier snapshot whose images of this container are
	// reused instead of dumping again (minimal algorithm).
	ReuseFrom string `json:"reuse_from,omitempty"`
	// ReleaseAfter thaws and unlocks the container as soon as its dump is done.
	ReleaseAfter bool `json:"release_after,omitempty"`
	// Locked says the container must still hold the lock of an earlier Lock of this
	// snapshot; a container that does not (its worker restarted) answers Failed.
	Locked bool `json:"locked,omitempty"`
}

// ConnCounter is the application traffic of one connection seen from one end: bytes
// this end has written to the peer (Sent) and bytes it has received from the peer
// (Received), counted since the connection opened.
//
// Peer is the peer container's id (the algorithms' simulated containers), or, from a
// real worker, which counts each TCP socket of the container's network namespace
// (netlink sock_diag), the remote address and port ("10.0.1.6:9000"), with Local the
// socket's own ("10.0.1.5:41234"): a worker does not know which container an address
// belongs to. Such a socket's Sent counts every byte the application wrote (acked or
// still queued), Received every byte that arrived (read or not).
//
// A worker that cannot tell connections apart reports aggregate counters instead: one
// with Peer AllPeers, the bytes of every connection of the container together (its
// network interfaces' counters: equal ones mean no connection carried a byte in
// between). A real worker adds one with Peer CPUTime whose Sent is the CPU time (ns)
// the container used so far, to either kind.
type ConnCounter struct {
	Peer     string `json:"peer"`
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
	// Local is this end's address and port of a socket counted by a real worker ("" in
	// counters per peer container and in the aggregate ones).
	Local string `json:"local,omitempty"`
}

// Peers of the aggregate ConnCounters (see ConnCounter).
const (
	AllPeers = "*"
	CPUTime  = "*cpu"
)

// DumpStats describes a container's recorded images.
type DumpStats struct {
	// ImageBytes is the size of the image files written (0 when reused).
	ImageBytes uint64 `json:"image_bytes,omitempty"`
	// Conns are the per-connection counters inside the images (the recorded state).
	Conns []ConnCounter `json:"conns,omitempty"`
	// ReusedFrom names the snapshot whose images were reused, "" if freshly dumped.
	ReusedFrom string `json:"reused_from,omitempty"`
	// Images is the durable image set the dump wrote (or reused), as the node agent
	// reports it; the coordinator records it in the snapshot's manifest and commits only
	// when it holds every container's set. nil from a driver without image files.
	Images *ImageSet `json:"images,omitempty"`
	// FreezeMS is how long the container had been frozen when its dump ended (0: not
	// frozen); DumpMS how long the dump took. Filled in by the node agent.
	FreezeMS int64 `json:"freeze_ms,omitempty"`
	DumpMS   int64 `json:"dump_ms,omitempty"`
}

// ImageSet is a container's CRIU image directory on a node: where it is and every
// file with its size and sha256. It travels in DumpDone (DumpStats.Images) and is kept
// in the snapshot's manifest (store.ImageSet is this type).
type ImageSet struct {
	Node    string      `json:"node"`
	Dir     string      `json:"dir"`
	Files   []ImageFile `json:"files"`
	Durable bool        `json:"durable"`
	// CRIUVersion that wrote the images.
	CRIUVersion string `json:"criu_version,omitempty"`
	// PagesHashedBy names the node that computed the memory pages' sha256 when that
	// is not the dumping node: a direct migration's target (migrate --copy direct),
	// whose page server hashed the pages as they arrived. CRIU's page-server protocol
	// has no checksum, so those digests record what arrived, not what the source sent;
	// they verify every later use of the set. Empty: the dumping node hashed every
	// file as CRIU wrote it.
	PagesHashedBy string `json:"pages_hashed_by,omitempty"`
	// PagesPending: the memory page files (images/pages-*.img) that PagesHashedBy
	// received from a direct transfer have no sha256 yet (empty SHA256): that node
	// hashes them after the restore, off the migration's critical path, and the
	// coordinator then fills them into the record (and clears this). Until then only
	// their sizes are recorded: a restore or verify of the snapshot waits for them
	// (and is refused if they cannot come). Empty in records of every other set.
	PagesPending bool `json:"pages_pending,omitempty"`
	// PagesUnverified says why the pending page digests will never come (the
	// receiving node lost the set, or its worker could not hash it): the set
	// cannot be verified, and a restore from it is refused.
	PagesUnverified string `json:"pages_unverified,omitempty"`
}

// PendingPageFile reports whether a file of a set recorded with PagesPending may lack
// its sha256: a memory page file of CRIU's images (images/pages-N.img).
func PendingPageFile(name string) bool {
	base := name[strings.LastIndexByte(name, '/')+1:]
	return strings.HasPrefix(base, "pages-") && strings.HasSuffix(base, ".img")
}

// Bytes is the total size of the image files.
func (s *ImageSet) Bytes() int64 {
	var n int64
	for _, f := range s.Files {
		n += f.Size
	}
	return n
}

// ImageFile is one image file with its checksum.
type ImageFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Result is what a container reports back (LockDone, DumpDone, Done, Failed), and the
// outcome of a commit (CommitDone).
type Result struct {
	// Error is empty on success, else what went wrong.
	Error string `json:"error,omitempty"`
	// Conns are the per-connection counters when the action completed (LockDone).
	Conns []ConnCounter `json:"conns,omitempty"`
	// Dump describes the recorded images (DumpDone).
	Dump *DumpStats `json:"dump,omitempty"`
}

// Decision carries a Commit, Abort, Release or AbortRequest.
type Decision struct {
	Reason string `json:"reason,omitempty"`
}

// Marker is a Chandy-Lamport marker.
type Marker struct {
	// Peers is set by the coordinator: the receiving container's peers in this snapshot.
	// A marker from a peer leaves it empty.
	Peers []string `json:"peers,omitempty"`
	// Resend is set on a marker a container sends again because its peer may have lost
	// the first one; a peer that has recorded answers it with its own marker (Resend
	// unset, so two containers never echo each other forever).
	Resend bool `json:"resend,omitempty"`
}

// ActionResult is the outcome of one action a container's state machine asked its
// worker to execute (fed back to that state machine, never sent between processes).
type ActionResult struct {
	// Op is the action: lock, unlock, freeze, thaw or dump.
	Op string `json:"op"`
	// Peers repeats the action's peers (lock, unlock), nil meaning all connections.
	Peers []string `json:"peers,omitempty"`
	// Error is empty on success.
	Error string `json:"error,omitempty"`
	// Conns are the container's per-connection counters when the action completed.
	Conns []ConnCounter `json:"conns,omitempty"`
	// Dump describes the images written or reused (dump).
	Dump *DumpStats `json:"dump,omitempty"`
}

// BodyFor returns a new zero body for t (a pointer), or nil if t carries no body.
// It is what the codec decodes into.
func BodyFor(t Type) any {
	switch t {
	case TypeSnapshotRequest:
		return new(SnapshotRequest)
	case TypeSnapshotResult:
		return new(SnapshotResult)
	case TypeLock:
		return new(Lock)
	case TypeLockDone, TypeDumpDone, TypeDone, TypeFailed, TypeCommitDone:
		return new(Result)
	case TypeDump:
		return new(Dump)
	case TypeCommit, TypeAbort, TypeRelease, TypeAbortRequest:
		return new(Decision)
	case TypeMarker:
		return new(Marker)
	case TypeActionDone:
		return new(ActionResult)
	}
	return nil
}
