// Package store defines what swarmckpt keeps durably and the Store interface over it:
// snapshot manifests, the per-stack snapshot lock, and worker registrations. The
// etcd implementation is in controlplane/etcdstore; Memory here is the in-memory
// fake; store/storetest is the conformance suite both pass. Elector (election.go)
// elects one leader among the coordinators sharing a store (etcdstore.Elector,
// MemoryElection; storetest.RunElection).
//
// A snapshot's life (State):
//
//	            +-----------+   all dumps acked, images durable   +-----------+
//	create ---> | preparing | --> dumping ---------------------->  | committed |
//	            +-----------+        |                            +-----------+
//	                  |              |  deadline, worker death,
//	                  +--------------+--> aborted   Ctrl-C, error
//
// Commit is one transaction that succeeds only when every container's image set is
// durable with a sha256 per file (Manifest.Complete), the manifest was not changed by
// anyone else since it was read (revision check), and the caller still holds the
// stack's lock. committed and aborted are final: Update refuses to change them.
//
// Headers lists manifests without their containers and record (what `ls` shows, in
// one small read however many containers the snapshots hold); Get reads one whole.
// A header cannot be written back (ErrHeaderOnly).
package store
