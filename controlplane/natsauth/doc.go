// Package natsauth gives the embedded NATS server per-role credentials and the NATS
// permissions of each role, derived from the subject table (Permissions, the one place
// that maps roles to subjects).
//
// Roles: the coordinator (every subject), the CLI (the coordinator's API and the
// progress of operations, nothing addressed to nodes) and the node agents, one user per
// node ("agent.<node>"), which may publish only their replies, heartbeats, drain events, results to
// the coordinator and container-to-container markers, and subscribe only to their own
// node's subjects. An agent cannot publish a coordinator's command (lock, dump, commit,
// a plan, a restore request) to any node, its own included.
//
// Secrets live in one directory (mode 0700, files 0600):
//
//	coordinator.user  "coordinator:<password>"
//	cli.user          "cli:<password>"
//	agent.key         the key every agent's password is derived from (HMAC-SHA256
//	                  of the node name): AgentCredentials(node) writes one node's file
//
// Check (an Authenticator) verifies a user and password and registers the user with
// its role's permissions. ServerConfig writes the same users and permissions as a
// nats-server authorization block, for an external server.
package natsauth
