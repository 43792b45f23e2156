// Package bustest is the conformance suite every bus.Transport implementation must
// pass: the in-memory one and NATS run the very same tests.
package bustest
