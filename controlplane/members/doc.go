// Package members is swarmckpt's membership over hashicorp/memberlist: workers' agents
// and the coordinator form one gossip cluster whose node metadata carries the node id,
// the worker's transfer address, the CRIU version and kernel features. A member that
// dies (no answer to probes, then suspicion timeout) or leaves produces a Leave event;
// the coordinator aborts the snapshots that member's node is in.
//
// Transport: the real one is memberlist's UDP+TCP net transport on a bind address; tests
// also run on memberlist's in-memory MockNetwork. Both pass the conformance tests in
// members_test.go.
//
// Config.Key encrypts and authenticates every gossip message (memberlist's keyring,
// AES-GCM); a member without the key cannot join. LoadOrCreateKey keeps it in a file
// (base64, 0600).
package members
