// Package restore brings a verified image set (imageset.Verified) back to life on this
// node. Standalone containers are recreated with `docker create` from the recorded
// container.Spec (Spec.CreateConfig: same image, command, env, mounts, labels and
// runtime settings such as init, ports, limits, capabilities, ulimits and sysctls;
// networks with the same IP by --ip and, as network aliases, the names swarm's DNS gave
// the task: service name, task aliases and tasks.<each>),
// the set is renamed into the node's restore area as
// <data-root>/swarmckpt/restore/id-<new ID> (same filesystem: no copy), the set's
// writable layer (images/rootfs-diff.tar) is unpacked into the new container's overlay
// upper directory (rootfs_linux.go), and `docker start` makes the node's runtime wrapper (swarmckpt-runtime, see worker/ociwrap) run
// `runc restore` in place of `runc create`. Swarm tasks are placed as
// svc-<service>.<slot> for the replacement task swarm starts (PlaceForTask; PlaceTask
// adds the wrapper's instructions: network lock, a deadline to wait for the address
// map, the connections to close without one), and SetAddressMap gives the wrapper the
// old -> new task addresses, with which it rewrites the images (worker/rewrite) before
// it restores: connections inside the set survive the new swarm task IPs.
//
//	Verified ─check image, IP─▶ created ─place set─▶ placed ─docker start─▶ running
//	                 │                │                    │
//	                 └── error ◀──────┴─── rollback: rm container, set moved back
//
// Any failure removes the new container and moves the set back where it was: nothing
// half-restored stays behind, and the error names the container and the cause.
package restore
