// Package storetest is the conformance suite every store.Store implementation must
// pass: the in-memory one and etcd (against a real embedded etcd) run the same tests.
package storetest
