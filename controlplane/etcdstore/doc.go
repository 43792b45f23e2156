// Package etcdstore implements store.Store over etcd (client v3). Layout, under a
// versioned prefix (default /swarmckpt/v1):
//
//	<prefix>/snapshots/<id>        manifest header, JSON: the manifest without its
//	                               containers and record, naming their part keys
//	<prefix>/parts/<id>/<name>     the containers (up to 64 a key) and the record
//	                               (256 KiB a key) of snapshot id (record.go)
//	<prefix>/stacks/<stack>/lock   owner, bound to the holder's lease
//	<prefix>/workers/<node>        worker registration, bound to the worker's lease
//	<prefix>/policies/<stack>      policy reconciler's record (store.PolicyState), JSON
//	<prefix>/election/<lease>      a coordinator's candidacy (store.Candidate, JSON), bound
//	                               to its lease; the oldest leads (Elector, election.go)
//	<prefix>/operations/<owner>    journal of a restore or migration (store.Operation), JSON
//	<prefix>/xlates/<ctr>/<old>    an address translation the coordinator had a staying
//	                               container's worker install (store.Translation), JSON
//
// Compare-and-swap uses the header key's mod revision (store.Manifest.Revision).
// Commit is one transaction that puts the header after comparing the manifest's
// revision and that the lock key is still bound to the caller's lease; the parts it
// names were written before under fresh names (record.go).
package etcdstore
