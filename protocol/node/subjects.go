package node

import (
	"fmt"

	"github.com/swarmckpt/swarmckpt/protocol"
)

// Prefix is the root of every NATS subject of this protocol version.
const Prefix = "swarmckpt.v1"

// Every subject, built from Prefix:
//
//	Prefix.node.<node>         protocol Envelopes to the container roles on <node>
//	Prefix.peer.<node>         protocol Envelopes from other nodes' containers (markers)
//	Prefix.coordinator         protocol Envelopes to the active coordinator
//	Prefix.agent.heartbeat     every agent's Heartbeat (publish)
//	Prefix.agent.drain         every agent's DrainEvent (publish): a held stop and its outcome
//	Prefix.agent.<node>.<op>   operation <op> of <node>'s agent (request/reply, Ops)

// Op is one request/reply operation a node agent serves.
type Op string

// The node operations: subject suffix, request -> reply. ONLY APPEND; an operation
// that is retired keeps its name reserved.
const (
	OpPlan       Op = "plan"        // Plan -> PlanReply
	OpSend       Op = "send"        // SendRequest -> SendReply
	OpRestore    Op = "restore"     // RestoreRequest -> RestoreReply
	OpDrop       Op = "drop"        // DropRequest -> DropReply
	OpVerify     Op = "verify"      // VerifyRequest -> VerifyReply
	OpRemove     Op = "remove"      // RemoveRequest -> RemoveReply
	OpUnlock     Op = "unlock"      // UnlockRequest -> UnlockReply
	OpPlace      Op = "place"       // PlaceRequest -> PlaceReply
	OpAddressMap Op = "address-map" // AddressMapRequest -> AddressMapReply
	OpUnplace    Op = "unplace"     // UnplaceRequest -> UnplaceReply
	OpStop       Op = "stop"        // StopRequest -> StopReply
	OpHolds      Op = "holds"       // HoldsRequest -> HoldsReply
	OpPreflight  Op = "preflight"   // PreflightRequest -> PreflightReply
	OpStandalone Op = "standalone"  // StandaloneRequest -> StandaloneReply
	OpArm        Op = "arm"         // ArmRequest -> ArmReply
	OpHeld       Op = "held"        // HeldRequest -> HeldReply
	OpXlate      Op = "xlate"       // XlateRequest -> XlateReply
	OpDisconnect Op = "disconnect"  // DisconnectRequest -> DisconnectReply
	OpWaitLazy   Op = "wait-lazy"   // WaitLazyRequest -> WaitLazyReply
	OpReconnect  Op = "reconnect"   // ReconnectRequest -> ReconnectReply
	OpXlates     Op = "xlates"      // XlatesRequest -> XlatesReply
	OpPreCopy    Op = "pre-copy"    // PreCopyRequest -> PreCopyReply
)

// Ops lists every operation (the table above), for tests and tooling.
var Ops = []Op{OpPlan, OpSend, OpRestore, OpDrop, OpVerify, OpRemove, OpUnlock, OpPlace,
	OpAddressMap, OpUnplace, OpStop, OpHolds, OpPreflight, OpStandalone, OpArm, OpHeld, OpXlate,
	OpDisconnect, OpWaitLazy, OpReconnect, OpXlates, OpPreCopy}

// Subject is where node's agent serves operation o.
func (o Op) Subject(node string) string { return Prefix + ".agent." + node + "." + string(o) }

// HeartbeatSubject carries every agent's periodic Heartbeat.
const HeartbeatSubject = Prefix + ".agent.heartbeat"

// DrainEventSubject carries every agent's DrainEvent.
const DrainEventSubject = Prefix + ".agent.drain"

// NodeSubject is where node's agent receives the protocol messages of its containers.
func NodeSubject(node string) string { return Prefix + ".node." + node }

// PeerSubject is where containers of other nodes send a node's containers their
// messages (Chandy-Lamport markers). Apart from NodeSubject, which carries the
// coordinator's commands, so that NATS permissions can let agents publish markers to
// other nodes but no command.
func PeerSubject(node string) string { return Prefix + ".peer." + node }

// CoordinatorSubject is where the active coordinator receives protocol messages.
func CoordinatorSubject() string { return Prefix + ".coordinator" }

// One function per operation subject, so that call sites read as before.

func PlanSubject(node string) string       { return OpPlan.Subject(node) }
func SendSubject(node string) string       { return OpSend.Subject(node) }
func RestoreSubject(node string) string    { return OpRestore.Subject(node) }
func DropSubject(node string) string       { return OpDrop.Subject(node) }
func VerifySubject(node string) string     { return OpVerify.Subject(node) }
func RemoveSubject(node string) string     { return OpRemove.Subject(node) }
func UnlockSubject(node string) string     { return OpUnlock.Subject(node) }
func PlaceSubject(node string) string      { return OpPlace.Subject(node) }
func AddressMapSubject(node string) string { return OpAddressMap.Subject(node) }
func UnplaceSubject(node string) string    { return OpUnplace.Subject(node) }
func StopSubject(node string) string       { return OpStop.Subject(node) }
func HoldsSubject(node string) string      { return OpHolds.Subject(node) }
func PreflightSubject(node string) string  { return OpPreflight.Subject(node) }
func StandaloneSubject(node string) string { return OpStandalone.Subject(node) }
func ArmSubject(node string) string        { return OpArm.Subject(node) }
func HeldSubject(node string) string       { return OpHeld.Subject(node) }
func XlateSubject(node string) string      { return OpXlate.Subject(node) }
func DisconnectSubject(node string) string { return OpDisconnect.Subject(node) }
func WaitLazySubject(node string) string   { return OpWaitLazy.Subject(node) }
func ReconnectSubject(node string) string  { return OpReconnect.Subject(node) }
func XlatesSubject(node string) string     { return OpXlates.Subject(node) }
func PreCopySubject(node string) string    { return OpPreCopy.Subject(node) }

// SubjectFor returns the subject to publish a protocol message for addr on; containers
// need the container -> node map (nodeOf), coordinator and nodes do not.
func SubjectFor(a protocol.Addr, nodeOf func(container string) (string, bool)) (string, error) {
	switch a.Kind {
	case protocol.KindCoordinator:
		return CoordinatorSubject(), nil
	case protocol.KindNode:
		if err := protocol.ValidToken(a.ID); err != nil {
			return "", err
		}
		return NodeSubject(a.ID), nil
	case protocol.KindContainer:
		n, ok := nodeOf(a.ID)
		if !ok {
			return "", fmt.Errorf("protocol: no node known for %s: %w", a, protocol.ErrMalformed)
		}
		if err := protocol.ValidToken(n); err != nil {
			return "", err
		}
		return NodeSubject(n), nil
	}
	return "", fmt.Errorf("protocol: no subject for address %q: %w", a, protocol.ErrMalformed)
}
