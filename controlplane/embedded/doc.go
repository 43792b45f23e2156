// Package embedded runs a NATS server and a single-member etcd server inside the
// calling process, so that `swarmckpt coordinator` with no flags needs no other
// software. Both persist under one data directory (mode 0700):
//
//	<data-dir>/etcd/               etcd's member directory
//	<data-dir>/etcd-tls/           the CA; etcd's server and client, NATS's server certificates (0700, files 0600)
//	<data-dir>/etcd-members.json   the etcd member this coordinator created (0600)
//	<data-dir>/nats-users/         the NATS roles' credentials (natsauth; 0700, files 0600)
//
// By default both bind to loopback only (etcd's peer port always does). NATS serves
// TLS only (NATSCAPath verifies it) and admits only the roles' users, each with the
// permissions natsauth derives from the subject table: the coordinator, the CLI, and
// one user per node agent. The credentials are made on first start and kept.
//
// etcd serves TLS only, on its client and peer ports, and requires a client
// certificate signed by the coordinator's own CA (EtcdCredentials): no other local
// process can read manifests, forge or delete snapshots, plant a stack lock, or
// change the membership. Start refuses an etcd whose member list holds a member it
// did not create (ErrForeignMember), which would take the single member's quorum
// away; Config.ForceNewCluster is the recovery. NoAuth turns NATS's TLS and users and
// etcd's TLS off (tests, trusted single-user hosts).
package embedded
