// Package pipemax raises the host's fs.pipe-max-size while CRIU's lazy page servers need
// it, and puts the value it found back once the last of them is done.
//
// CRIU sizes every page pipe up to fs.pipe-max-size and splices each pipe into the image
// file in one go. On hosts like the one this project is measured on (a VM whose memory
// the host backs lazily), large splices allocate large page-cache folios that are slow to
// fill: a raw `runc checkpoint` of a 1 GiB container took 0.8-1.2 s with a 512 KiB limit
// and 3.0-6.3 s with 4 MiB (docs/dataplane.md, "Pipe size"). So `make setup` sets the
// limit to 512 KiB. But CRIU's lazy page server (post-copy) sets its tee pipe to 4 MiB and,
// without CAP_SYS_RESOURCE, fails every page request when the limit is lower.
//
// A Governor therefore raises the limit for as long as a post-copy dump serves pages, in
// any process of the host (the lab runs one worker per node on one kernel), and puts the
// value back when the last holder releases:
//
//	holders   flock LOCK_SH on DIR/holders, held by each Raise until its release
//	mutex     flock LOCK_EX on DIR/lock around every read-modify-write of the setting
//	saved     DIR/saved: the value found before the first raise; present = raised by us
//
// A release (or Reconcile, at worker start) lowers the limit only if it can take holders
// with LOCK_EX|LOCK_NB, that is when no holder is left. Locks die with their process,
// so a holder killed with -9 blocks nobody; the limit it left raised is put back by the
// next release or Reconcile on the host (until then dumps are only slower).
package pipemax
