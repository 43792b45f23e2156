// Package dump checkpoints a running container into an image set (see imageset) by
// driving runc directly — `runc checkpoint --image-path --work-path [--leave-running]
// --tcp-established` — never through `docker checkpoint`, whose path through containerd's
// content store is ~25x slower. CRIU options common to every call (tcp-established,
// skip-in-flight, file-locks, network-lock nftables) come from /etc/criu/runc.conf.
//
// A dump either produces a sealed set (files 0600, dirs 0700, sha256 per file in the
// manifest) or fails with the tail of CRIU's log and leaves no images behind; CRIU itself
// resumes the container when a dump fails.
//
// While CRIU runs, a follower reads the memory page images as they grow, hashes them
// (so sealing does not re-read them) and, with Options.Sink, hands the same bytes to a
// transfer, so a migration's images travel while they are written.
package dump
