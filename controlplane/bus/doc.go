// Package bus defines Transport, the small interface the coordinator and the workers
// use to exchange control messages: fire-and-forget publishes (markers, progress
// events) and request/reply with a deadline taken from the context (commands to a
// node's worker). Payloads are opaque bytes; protocol/ defines what goes in them.
//
// Subjects are dot-separated tokens as in NATS. Subscriptions may use the wildcards
// "*" (exactly one token) and ">" (one or more trailing tokens).
//
// Implementations: Memory (in this package, for tests and the simulator-free unit
// tests of the coordinator) and natsbus.Transport (real NATS). Both pass the
// conformance suite in bus/bustest.
package bus
