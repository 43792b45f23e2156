// Package controlplane groups the control-plane building blocks of swarmckpt. It holds
// no code of its own; each subpackage has one job:
//
//	embedded   NATS and etcd servers run inside the coordinator's process
//	bus        the Transport interface (publish, subscribe, request/reply with
//	           deadlines), an in-memory implementation, and bus/bustest, the
//	           conformance suite every implementation passes
//	natsbus    the NATS implementation of bus.Transport, with token, user/password
//	           and TLS credentials
//	natsauth   the embedded NATS's per-role users and their permissions, derived
//	           from the subject table
//	store      the Store interface (snapshot manifests, stack locks, worker
//	           registrations), the manifest types, an in-memory implementation,
//	           and store/storetest, the conformance suite
//	etcdstore  the etcd implementation of store.Store
//	members    memberlist membership with node metadata (node id, worker address,
//	           CRIU version, kernel features), encrypted with a shared key
//
// See docs/architecture.md for how these fit together.
package controlplane
