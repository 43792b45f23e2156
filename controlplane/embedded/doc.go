// Package embedded runs a NATS server and a single-member etcd server inside the
// calling process, so that `swarmckpt coordinator` with no flags needs no other
// software. Both persist under one data directory (mode 0700):
//
//	<data-dir>/etcd/        etcd's member directory
//	<data-dir>/nats.token   the generated NATS client token (mode 0600)
//
// By default both bind to loopback only. NATS requires the token: every client
// (workers, CLI) must present it. The token is generated on first start and reused
// afterwards, so workers configured with --nats-token-file keep working across
// coordinator restarts.
package embedded
