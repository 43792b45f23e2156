// Package ociwrap is the logic of swarmckpt-runtime, the OCI runtime wrapper installed as
// each node's default Docker runtime. It sits on the start path of every container of
// the node, so it is tiny, imports only the standard library, and hands every call it
// does not recognise to runc unchanged with exec(2) (no Docker API calls, no parsing
// beyond the argument list).
//
// Only three calls are ever intercepted:
//
//	create --bundle B --pid-file P ID
//	    If a restore directory for this container exists on the node (see Marker), run
//	    `runc <global flags> restore --detach --image-path DIR/images --work-path DIR/work
//	    --bundle B --pid-file P [--console-socket S] ID` instead, then record in runc's
//	    state dir that ID was restored and consume the directory (rename it to
//	    <data-root>/swarmckpt/restored/...), so later restarts of the container start
//	    fresh. A failed restore exits non-zero with CRIU's log tail and leaves the
//	    directory in place with a last-error file: never a silent fresh start.
//	start ID
//	    If ID was restored by the previous create, answer success (the processes already
//	    run); otherwise exec runc start.
//	kill ID SIGNAL
//	    If the worker armed ID (<data-root>/swarmckpt/drain/arm-<ID>, one stat when it
//	    did not) and SIGNAL is not KILL, hold the kill until the worker's verdict or the
//	    armed budget (at most MaxHold), then exec runc kill unchanged: the drain hold of
//	    docs/drain.md, in drainhold.go. The data-root comes from the bundle, the
//	    working directory containerd's shim runs the runtime in.
//
// The marker (docs/restore.md): the bundle's config.json bind-mounts
// <data-root>/containers/<ID>/hostname at /etc/hostname, which gives the node's Docker
// data-root without any configuration. Restore directories live in the root-only
// directory <data-root>/swarmckpt/restore/, filled by the worker:
//
//	id-<container ID>          a standalone container the worker created (docker create)
//	svc-<service>.<slot>       the next task of that swarm service slot started here
//
// Before runc restore, a claimed directory's addresses are prepared (readdress.go):
// with address-map, the set's images are rewritten for the new task addresses by
// `swarmckpt readdress` (worker/rewrite; a separate binary so that the wrapper links
// only the standard library); address-map.wait makes the wrapper wait for that map
// until a deadline; without a map, a tcp-close file (connections the worker found)
// makes runc restore with CRIU's tcp-close through a CRIU config file named by the
// bundle's org.criu.config annotation, and the closed connections are logged.
//
// Before runc restore the wrapper also applies the set's writable layer
// (images/rootfs-diff.tar, package rootfsdiff) into the bundle's mounted rootfs, unless
// the worker already unpacked it into the container's upper directory (an exact
// restore leaves RootfsAppliedFile): rootfs.go. It also resolves bind-mount sources that are symlinks
// (mounts.go: CRIU cannot bind one; Docker's init is one) and arranges for the bundle's
// net.* sysctls to be written in the restored network namespace (sysctl.go: runc's init,
// which writes them on a fresh start, does not run on restore).
//
// Service and slot come from the labels in <data-root>/containers/<ID>/config.v2.json,
// which Docker writes before it calls the runtime; that file is read only when an svc-
// directory exists. A directory is ready when it holds manifest.json; the worker
// verified every file's sha256 before it renamed the directory into place.
package ociwrap
