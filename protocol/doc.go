// Package protocol is the versioned wire contract between the swarmckpt coordinator, its
// workers and the CLI: the Envelope every message travels in, the append-only list of
// message types, the message bodies, and a deterministic JSON codec.
//
// Compatibility rules:
//   - Message types are numbered; the list in types.go is ONLY APPENDED TO. A number is
//     never reused or renumbered, even when its type is retired.
//   - Version is the envelope version. A receiver accepts MinVersion..MaxVersion and
//     rejects anything else with a *VersionError (errors.Is(err, ErrUnknownVersion)).
//   - Unknown types are rejected with a *TypeError (errors.Is(err, ErrUnknownType)).
//   - Bodies may gain fields (old receivers ignore them); fields are never removed or
//     re-typed within a version.
//
// The NATS subjects, the node agents' operations (one request and one reply type each)
// and the error codes that cross the node boundary are in protocol/node.
//
// The golden encodings in testdata/ pin the wire form; see docs/protocol.md.
package protocol
