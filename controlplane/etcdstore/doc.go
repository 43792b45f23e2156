// Package etcdstore implements store.Store over etcd (client v3). Layout, under a
// versioned prefix (default /swarmckpt/v1):
//
//	<prefix>/snapshots/<id>        manifest, JSON
//	<prefix>/stacks/<stack>/lock   owner, bound to the holder's lease
//	<prefix>/workers/<node>        worker registration, bound to the worker's lease
//	<prefix>/policies/<stack>      policy reconciler's record (store.PolicyState), JSON
//	<prefix>/election/<lease>      a coordinator's candidacy (store.Candidate, JSON), bound
//	                               to its lease; the oldest leads (Elector, election.go)
//	<prefix>/operations/<owner>    journal of a restore or migration (store.Operation), JSON
//
// Compare-and-swap uses the key's mod revision (store.Manifest.Revision). Commit is
// one transaction comparing the manifest's revision and that the lock key is still
// bound to the caller's lease.
package etcdstore
