// Package imageset is the on-disk form of one container's checkpoint: a directory
//
//	<set>/manifest.json   what was dumped, how to recreate the container, sha256 per file
//	<set>/images/         the CRIU image files written by runc/CRIU, and
//	                      rootfs-diff.tar, the container's writable layer (rootfsdiff)
//
// Directories are 0700 and files 0600 (checkpoint images hold the container's memory).
// Verify re-hashes every file against the manifest; restore paths call it (or receive
// the set through a verifying transfer) and never skip it.
//
// Two transfer formats, both hashed by the receiver as it writes (bounded memory):
// Send/Receive, a tar of a sealed set (manifest first); LiveWriter/ReceiveLive, a framed
// stream of a set still being written (the manifest, with the digests of the bytes sent,
// comes last).
package imageset
