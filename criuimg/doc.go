// Package criuimg reads and writes CRIU image directories with go-criu's crit package,
// for the two packages that look inside them: the cut checker's front end and the
// address rewriter (worker/rewrite).
//
//   - Decode, Encode: one image file, with its payloads (a decoded image re-encodes to
//     the same format).
//   - SocketImages, Inet: the images that hold inet socket entries (files.img, and
//     inetsk.img of older CRIU versions) and the inet entry of each of their entries.
//   - Addr, Words: CRIU's address words (the kernel's network-order bytes stored as
//     host-endian uint32; this package assumes a little-endian host) to and from
//     netip.Addr.
//   - ReadSockets, FromImages, VerifyImages: every TCP socket of a container's images
//     with its saved stream (tcp-stream-<inode>.img) as a cut.Socket, and the cut of a
//     set of image directories, checked by cut.Check.
//
// It is the only package of this module that imports go-criu's decoder: cut itself is
// pure, so the simulator, which checks its cuts with cut.Check, does not link go-criu.
package criuimg
