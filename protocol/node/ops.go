package node

import (
	"encoding/json"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol"
)

// File is one image file with its checksum (protocol.ImageFile; store.File is this type).
type File = protocol.ImageFile

// Reply is what every reply offers: its outcome as an error (nil on success).
type Reply interface{ Err() error }

// OpStatus is what the replies of the data operations carry besides their result: how
// long the operation took on the node and its outcome.
type OpStatus struct {
	MS int64 `json:"ms"`
	Status
}

// SendRequest asks a node to stream a set to another node's transfer endpoint (OpSend).
type SendRequest struct {
	Set string `json:"set"`
	To  string `json:"to"`
}

// SendReply answers a SendRequest. ErrSetExists: the target holds a set of that ID.
type SendReply struct {
	// AlreadyThere: the target held the same set (a migration streamed it there while
	// dumping): nothing was sent.
	AlreadyThere bool `json:"already_there,omitempty"`
	OpStatus
}

// RestoreOptions tune a restore.
type RestoreOptions struct {
	Name    string `json:"name,omitempty"`
	Service string `json:"service,omitempty"`
	Slot    int    `json:"slot,omitempty"`
	// Locked restores the container with its network locked (every packet but
	// loopback dropped) from before its sockets are restored until an UnlockRequest (or
	// the deadline): a restored container must not talk to a peer whose sockets are not
	// restored yet, whose kernel would reset the connection.
	Locked bool `json:"locked,omitempty"`
	// Aliases are extra DNS aliases per network name (swarm's task aliases).
	Aliases map[string][]string `json:"aliases,omitempty"`
	// LockFor bounds the lock (the worker's watchdog releases it then). Default 2m.
	LockFor time.Duration `json:"lock_for,omitempty"`
	// Keep leaves the set on this node after the restore (the worker restores from a
	// hard-linked copy): the coordinator asks for it when the set is the snapshot's own
	// copy here, so that a restore in place does not use it up.
	Keep bool `json:"keep,omitempty"`
}

// RestoreRequest asks a node to restore a set (OpRestore).
type RestoreRequest struct {
	Set     string         `json:"set"`
	Options RestoreOptions `json:"options"`
}

// RestoreReply answers a RestoreRequest with the restored container's id.
type RestoreReply struct {
	Container string `json:"container,omitempty"`
	OpStatus
}

// DropRequest names the image set to delete (OpDrop); dropping a missing set succeeds.
type DropRequest struct {
	Set string `json:"set"`
}

// DropReply answers a DropRequest.
type DropReply struct{ OpStatus }

// VerifyRequest names the set to re-verify on its node, the label of its sockets and
// the files the snapshot's manifest lists for it (OpVerify).
type VerifyRequest struct {
	Set   string `json:"set"`
	Label string `json:"label"`
	Files []File `json:"files"`
	// Recheck lets the node accept, without re-reading it, a set it hashed itself as
	// it wrote it (dumped or received) whose every file still has the size, mtime and
	// inode it had then (the check its restores make): for the commit of a snapshot
	// just taken. Other sets are re-hashed; so are all by agents older than it.
	Recheck bool `json:"recheck,omitempty"`
	// Digests asks, instead of a verify, for the set's files as the node's worker
	// recorded them once the memory pages it received from a direct transfer are
	// hashed (it hashes them after the restore; the request waits for that, starting
	// it at once): VerifyReply.Files, with every digest, to fill a snapshot record
	// whose pages were pending (store ImageSet.PagesPending). Files and Label are not
	// used. ErrPagesUnhashed: they never will be. An agent older than Digests
	// verifies instead and fails (Files empty): the record stays pending.
	Digests bool `json:"digests,omitempty"`
}

// VerifyReply answers a VerifyRequest with the set's TCP sockets ([]cut.Socket as
// JSON), or, for Digests, its files.
type VerifyReply struct {
	Sockets json.RawMessage `json:"sockets,omitempty"`
	Files   []File          `json:"files,omitempty"`
	OpStatus
}

// RemoveRequest lists restored containers (ids) to force-remove, to undo a restore that
// failed elsewhere (OpRemove).
type RemoveRequest struct {
	Containers []string `json:"containers"`
}

// RemoveReply answers a RemoveRequest.
type RemoveReply struct{ OpStatus }

// UnlockRequest lists restored containers (ids) whose network locks to release
// (OpUnlock).
type UnlockRequest struct {
	Containers []string `json:"containers"`
}

// UnlockReply answers an UnlockRequest.
type UnlockReply struct{ OpStatus }

// PlaceRequest places image set Set for the next task of Service slot Slot (OpPlace).
type PlaceRequest struct {
	Set     string `json:"set"`
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	// LockFor, when > 0, restores the task network-locked until an UnlockRequest or
	// this long from now (the worker's watchdog releases it then).
	LockFor time.Duration `json:"lock_for,omitempty"`
	// AddressMapFor, when > 0, has the wrapper wait this long for the address map.
	AddressMapFor time.Duration `json:"address_map_for,omitempty"`
}

// PlaceReply answers a PlaceRequest: the set's connections on non-loopback addresses,
// and those that will be closed (no address map announced).
type PlaceReply struct {
	Connections []string `json:"connections,omitempty"`
	Closed      []string `json:"closed,omitempty"`
	OpStatus
}

// AddressMapRequest gives Service slot Slot's placed set its address map
// (OpAddressMap).
type AddressMapRequest struct {
	Service   string            `json:"service"`
	Slot      int               `json:"slot"`
	Addresses map[string]string `json:"addresses"`
}

// AddressMapReply answers an AddressMapRequest.
type AddressMapReply struct{ OpStatus }

// UnplaceRequest takes back the set placed for Service slot Slot (back to image set
// Set when possible) (OpUnplace).
type UnplaceRequest struct {
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	Set     string `json:"set,omitempty"`
}

// UnplaceReply answers an UnplaceRequest: Removed, a placed unclaimed set was taken
// back; Container, the container that claimed it, if any.
type UnplaceReply struct {
	Removed   bool   `json:"removed,omitempty"`
	Container string `json:"container,omitempty"`
	OpStatus
}

// StopRequest names a snapshot and the containers (ids, as in its Plan) parked since
// their dump on this node, to end (OpStop). ErrNotParked: one was not parked (it is
// never ended then: released since its dump, it ran on, and ending it would lose
// what it did since). The node answers even without the snapshot's plan (an agent
// that restarted), and a request can be repeated: a container not parked is only
// looked at, never touched.
type StopRequest struct {
	Snapshot   string   `json:"snapshot"`
	Containers []string `json:"containers"`
	// Resume releases them instead (thaw, unlock): they run on. Resuming a container
	// that is not parked does nothing (its outcome says what it is).
	Resume bool `json:"resume,omitempty"`
}

// StopReply answers a StopRequest: Containers says, per container of the request,
// what the node found and did (absent from a node of an older version: then only
// the status is known).
type StopReply struct {
	Containers []StopOutcome `json:"containers,omitempty"`
	OpStatus
}

// StopOutcome is what a StopRequest found and did for one container.
type StopOutcome struct {
	Container string `json:"container"`
	// Outcome is one of the Stop* values: ONLY APPEND.
	Outcome string `json:"outcome"`
	// Detail says why (a container not parked: released when the agent restarted,
	// or at its hold's deadline).
	Detail string `json:"detail,omitempty"`
}

// The outcomes of a StopRequest's container. ONLY APPEND.
const (
	// StopEnded: it was parked since its dump and is now ended (its state is the
	// snapshot's).
	StopEnded = "ended"
	// StopReleased: it was parked since its dump and is now released (Resume): it runs
	// on from the state the snapshot holds.
	StopReleased = "released"
	// StopRunning: it was not parked (released since its dump: by a restarted agent,
	// or by the worker at its hold's deadline) and still exists: it ran on, its state
	// is NEWER than the snapshot's. It was not touched.
	StopRunning = "running"
	// StopGone: it was not parked and no longer runs (ended before, or removed).
	StopGone = "gone"
	// StopUnknown: the node could not tell (its worker did not answer).
	StopUnknown = "unknown"
)

// DisconnectRequest names containers of this node, frozen since their post-copy dump
// (Target.PostCopy), to take off every network they are on (OpDisconnect): a
// post-copy migration frees their addresses for their restore elsewhere while they
// still serve their pages. ErrNotFrozen: one was not frozen (it keeps its networks).
type DisconnectRequest struct {
	Containers []string `json:"containers"`
}

// DisconnectReply answers a DisconnectRequest.
type DisconnectReply struct{ OpStatus }

// WaitLazyRequest asks this node to wait until the page server of the post-copy dump
// that produced Set served every page (OpWaitLazy): OK then; the page server's error
// otherwise (the restored container lacks pages: data loss); ErrNotFound when no
// post-copy dump of Set is known here (none was made, or the worker restarted).
type WaitLazyRequest struct {
	Set string `json:"set"`
}

// WaitLazyReply answers a WaitLazyRequest.
type WaitLazyReply struct{ OpStatus }

// ReconnectRequest puts held post-copy sources of this node back on their networks
// (OpReconnect): the rollback of a post-copy migration whose restore failed. For each,
// the page server of Set (if it still runs) is stopped first, then the container is
// connected to every network of Networks with its address and aliases there (one it
// is on already is left as it is). It stays held (frozen, network-locked): the
// caller releases it (StopRequest with Resume).
type ReconnectRequest struct {
	Containers []HeldNetworks `json:"containers"`
}

// HeldNetworks is one held post-copy source (id or name) with its set (node.SetID)
// and the networks it was on.
type HeldNetworks struct {
	Container string          `json:"container"`
	Set       string          `json:"set,omitempty"`
	Networks  []NetworkAttach `json:"networks"`
}

// NetworkAttach is a container's endpoint on one network: its IPv4 address (empty:
// Docker picks one) and DNS aliases.
type NetworkAttach struct {
	Network string   `json:"network"`
	IPv4    string   `json:"ipv4,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
}

// ReconnectReply answers a ReconnectRequest.
type ReconnectReply struct{ OpStatus }

// HoldsRequest asks what a node's worker holds locked or frozen (OpHolds): after a
// failure, the coordinator can tell the user which containers are still held, where
// and until when, instead of presuming every one was released.
type HoldsRequest struct{}

// HoldsReply answers a HoldsRequest.
type HoldsReply struct {
	Node  string `json:"node"`
	Holds []Held `json:"holds,omitempty"`
	Status
}

// Held is one container held on the node.
type Held struct {
	ContainerID string    `json:"containerID"`
	Name        string    `json:"name,omitempty"`
	Locked      bool      `json:"locked"`
	Frozen      bool      `json:"frozen"`
	Deadline    time.Time `json:"deadline"`
	// OwnerPid is the worker process that holds it (0: unknown); OwnerAlive false
	// means that process ended and its watchdog releases the container at once.
	OwnerPid   int  `json:"ownerPid,omitempty"`
	OwnerAlive bool `json:"ownerAlive"`
}

// PreflightRequest lists what a restore needs of one node (OpPreflight), asked of
// every node before the stack is stopped.
type PreflightRequest struct {
	// Stack is the stack whose swarm tasks are stopped before the restore: addresses
	// held by its task containers do not count as taken ("" : every holder counts).
	Stack string `json:"stack,omitempty"`
	// Sets the restore reads on this node: each must be complete (every file present,
	// with its size; checksums are verified before the restore itself).
	Sets []PreflightSet `json:"sets,omitempty"`
	// Containers restored on this node: their image must be here, their name free.
	Containers []PreflightContainer `json:"containers,omitempty"`
	// Addresses the restored containers take: no other container may hold one here.
	Addresses []PreflightAddress `json:"addresses,omitempty"`
	// Prepare says the checks passed on every node and the restore goes ahead: the
	// node starts what shortens it (a keeper on each swarm network the Containers
	// restored here join with their Addresses, so the node keeps the network while the
	// stack stops) and answers at once; nothing is checked. Its keepers first give up
	// every one of the Addresses they hold (those of all the operation's containers,
	// wherever restored) and keep off them for a while: a Prepare without Containers
	// (sent to every live node, and before each put-back) does only that.
	Prepare bool `json:"prepare,omitempty"`
	// Ready, with Prepare, has the node answer only once what it started is ready
	// (its keepers run, or could not be started) or the request's time ran out (an
	// error then): a migration asks it before it freezes anything, so that the
	// keepers' start is off its downtime. Older nodes answer at once.
	Ready bool `json:"ready,omitempty"`
	// Release ends, at once, what an earlier Prepare started for the Containers (by
	// name; their keepers stop unless a restore holds them): a partial migration sends
	// it to its nodes once it committed or rolled back. Nothing is checked. Without
	// it a Prepare's hold ends with the container's restore on the node, or after a
	// few minutes (a node older than Release checks the request instead, harmlessly,
	// and its holds end so).
	Release bool `json:"release,omitempty"`
}

// PreflightSet is an image set and the files the snapshot recorded for it.
type PreflightSet struct {
	Set   string `json:"set"`
	Files []File `json:"files"`
	// Target is the node the set is to be restored on (sent to the set's own node
	// only): a set whose container mounts a local named volume is refused for any
	// other node than the one it ran on. Key names the container (SERVICE.SLOT).
	Target string `json:"target,omitempty"`
	Key    string `json:"key,omitempty"`
}

// PreflightContainer is a container to restore: SERVICE.SLOT, its container name and
// image.
type PreflightContainer struct {
	Key   string `json:"key"`
	Name  string `json:"name"`
	Image string `json:"image"`
	// Volumes are the local named volumes the set carries and the restore recreates
	// on this node (snapshot --carry-volumes): each must be missing here, or empty.
	Volumes []string `json:"volumes,omitempty"`
}

// PreflightAddress is an address a restored container takes on one of Networks (all
// networks when empty).
type PreflightAddress struct {
	Key      string   `json:"key"`
	IP       string   `json:"ip"`
	Networks []string `json:"networks,omitempty"`
}

// PreflightReply answers a PreflightRequest.
type PreflightReply struct {
	// Missing are the sets of the request that are not on this node at all.
	Missing []string `json:"missing,omitempty"`
	// Problems say what would make the restore fail here, each with its fix.
	Problems []string `json:"problems,omitempty"`
	// Unsupported: this node's agent or worker cannot answer (older version).
	Unsupported bool `json:"unsupported,omitempty"`
	Status
}

// StandaloneRequest names the stack whose exact-mode restored containers a node lists
// (OpStandalone): the swarm manager knows only tasks, so the coordinator asks every
// node for these to resolve a restored stack.
type StandaloneRequest struct {
	Stack string `json:"stack"`
}

// StandaloneReply answers a StandaloneRequest.
type StandaloneReply struct {
	Node       string       `json:"node"`
	Containers []Standalone `json:"containers,omitempty"`
	Status
}

// Standalone is a container restored (exact mode) for a swarm service of the stack.
type Standalone struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Image string `json:"image,omitempty"`
	// Service is its io.swarmckpt.service label; Stack its stack label (empty if the
	// container has none).
	Service string `json:"service"`
	Stack   string `json:"stack,omitempty"`
	// Labels are its io.swarmckpt.* labels.
	Labels   map[string]string `json:"labels,omitempty"`
	Running  bool              `json:"running"`
	State    string            `json:"state,omitempty"`
	Networks []StandaloneNet   `json:"networks,omitempty"`
}

// StandaloneNet is a Standalone container's endpoint on one network.
type StandaloneNet struct {
	Name    string   `json:"name"`
	IPv4    string   `json:"ipv4,omitempty"`
	IPv6    string   `json:"ipv6,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
}

// Took records how long the operation took on the node.
func (s *OpStatus) Took(d time.Duration) { s.MS = d.Milliseconds() }

// InStack tells whether a restored container belongs to stack: by its stack label,
// or, without one, by its service name (stack deploy names services STACK_NAME).
func (s Standalone) InStack(stack string) bool {
	if s.Stack != "" {
		return s.Stack == stack
	}
	return len(s.Service) > len(stack)+1 && s.Service[:len(stack)+1] == stack+"_"
}

// ArmRequest arms containers of the node for the drain hold, or disarms them (OpArm):
// the runtime wrapper then holds swarm's stop of an armed container until the node's
// worker has given its verdict or the budget ran out (docs/drain.md).
type ArmRequest struct {
	Arm []ArmEntry `json:"arm,omitempty"`
	// Disarm lists containers (names or IDs) to disarm; disarming one that is not
	// armed, or gone, succeeds.
	Disarm []string `json:"disarm,omitempty"`
}

// ArmEntry is one container to arm.
type ArmEntry struct {
	Container string `json:"container"`
	// Budget is the longest hold of its stop: min(50 s, stop_grace_period) minus a
	// margin.
	Budget time.Duration `json:"budget"`
	// Grace is the task's stop_grace_period (0: unknown): after a hold that ate into
	// it, the wrapper SIGKILLs the container when it ends, as swarm would.
	Grace time.Duration `json:"grace,omitempty"`
	// Policy is the stack's on-drain policy ("migrate").
	Policy string `json:"policy,omitempty"`
	// Stack, Service and Slot name its swarm task.
	Stack   string `json:"stack,omitempty"`
	Service string `json:"service,omitempty"`
	Slot    int    `json:"slot,omitempty"`
}

// ArmReply answers an ArmRequest: Failed names the containers that could not be
// armed or disarmed, with why (the others were).
type ArmReply struct {
	Failed map[string]string `json:"failed,omitempty"`
	OpStatus
}

// HeldRequest decides a held stop of Container (an ID) (OpHeld): with Release, let it
// proceed now (Reason says why, for the log); otherwise checkpoint the container with
// exit into image set Set, under its network lock, and keep the stop held until a
// second request with Release (so that the set can be placed for swarm's replacement
// before swarm sees the old task end). ErrNotFound: no such held stop. With Into
// (the worker address of the replacement's node; FeatureDrainDirect), the checkpoint
// is dumped straight into that worker and no copy stays on this node.
type HeldRequest struct {
	Container string `json:"container"`
	Set       string `json:"set,omitempty"`
	Release   bool   `json:"release,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Into      string `json:"into,omitempty"`
}

// HeldReply answers a HeldRequest: the checkpoint's files.
type HeldReply struct {
	Files []File `json:"files,omitempty"`
	OpStatus
}

// XlateRequest makes the node's Containers (names or IDs, running) reach Old at New
// from now on (OpXlate): the swarm task at Old moved to another node and runs at New,
// and these containers of its stack stay, with connections to Old. The translation
// is stateless, in each container's own network namespace, and removed by the node's
// worker once none of the container's TCP sockets uses Old any more, or when the
// container ends (worker/xlate, docs/restore.md "Partial migration").
type XlateRequest struct {
	Containers []string `json:"containers"`
	Old        string   `json:"old"`
	New        string   `json:"new"`
}

// XlateReply answers an XlateRequest: Failed names the containers that could not
// translate, with why (the others do).
type XlateReply struct {
	Failed map[string]string `json:"failed,omitempty"`
	OpStatus
}

// XlatesRequest asks for the translations the node's worker keeps (OpXlates): the
// coordinator forgets its record of one the worker removed.
type XlatesRequest struct{}

// XlateKept is one translation a node's worker keeps: Container (an ID; Name its
// name) reaches Old at New since Since.
type XlateKept struct {
	Container string    `json:"container"`
	Name      string    `json:"name,omitempty"`
	Old       string    `json:"old"`
	New       string    `json:"new"`
	Since     time.Time `json:"since,omitzero"`
}

// XlatesReply answers an XlatesRequest: every translation the worker keeps.
type XlatesReply struct {
	Translations []XlateKept `json:"translations,omitempty"`
	OpStatus
}

// DrainEvent is what an agent publishes on DrainEventSubject about a held stop.
type DrainEvent struct {
	Node        string `json:"node"`
	ContainerID string `json:"container_id"`
	Name        string `json:"name,omitempty"`
	Stack       string `json:"stack,omitempty"`
	Service     string `json:"service,omitempty"`
	Slot        int    `json:"slot,omitempty"`
	Policy      string `json:"policy,omitempty"`
	Signal      string `json:"signal,omitempty"`
	// Deadline is when the wrapper passes the stop on by itself.
	Deadline time.Time `json:"deadline"`
	// What happened: DrainHeld, DrainCheckpointed, DrainReleased, DrainFailed.
	What string `json:"what"`
	Set  string `json:"set,omitempty"`
	// Reason says why (failures, releases).
	Reason string `json:"reason,omitempty"`
	// Into is the worker address Set was dumped straight into (HeldRequest.Into);
	// "": Set is on Node.
	Into string `json:"into,omitempty"`
}

// DrainEvent.What values.
const (
	DrainHeld         = "held"
	DrainCheckpointed = "checkpointed"
	DrainReleased     = "released"
	DrainFailed       = "failed"
)

// PreCopyRequest asks this node to pre-dump a container of a pre-copy migration
// (OpPreCopy, migrate --copy pre-copy) while it runs: round after round, as the
// node's iteration policy says, kept on the node for the container's dump in
// snapshot Set's plan (Target.PreCopy), which then writes only the pages dirtied
// since the last round. ErrNoSoftDirty where the node's kernel tracks no soft-dirty
// pages. The container runs on either way; a failure keeps nothing.
type PreCopyRequest struct {
	// Container is the container's ID (or name) on this node.
	Container string `json:"container"`
	// Set is the image set its dump will write (SetID).
	Set string `json:"set"`
	// To, when set, is the transfer address of the worker the set will stream to:
	// the pre-dumps are sent there once the rounds are done (the container still
	// running), and the set's stream then carries only the rest.
	To string `json:"to,omitempty"`
}

// PreCopyReply answers a PreCopyRequest: the rounds run, the bytes of memory pages
// each wrote (the first: all of them), and the policy's reason to stop.
type PreCopyReply struct {
	OpStatus
	Rounds []int64 `json:"rounds,omitempty"`
	Why    string  `json:"why,omitempty"`
	// SentTo is To once the pre-dumps arrived there; SendError why they did not (they
	// then stream with the set).
	SentTo    string `json:"sent_to,omitempty"`
	SendError string `json:"send_error,omitempty"`
}
