// Package rootfsdiff carries a container's writable layer: the files its processes
// created, changed or deleted in the container's own filesystem (not in volumes, bind
// mounts or tmpfs). A checkpoint holds the processes and their open files by path; a
// restore on another node recreates the container from its image, so without the
// layer a file the process had open is missing (CRIU: "Can't open file ...") or older.
//
// Pack reads a Docker overlay2 upper directory (docker inspect
// GraphDriver.Data.UpperDir) and writes it as a tar in the OCI image layer format:
// overlay whiteouts (0:0 character devices) become empty ".wh.NAME" entries and an
// opaque directory (xattr trusted.overlay.opaque=y) gets a ".wh..wh..opq" entry right
// after its own; owners, permission bits (setuid, setgid, sticky), modification times,
// extended attributes (other than trusted.overlay.*), symlinks, hard links, device
// nodes and fifos are kept. Sockets are skipped (a restored process binds them again).
//
// Apply unpacks such a tar into one of two targets:
//
//	Upper   the overlay upper directory of a created, not yet started container
//	        (nothing mounted on it): whiteouts become overlay whiteouts again
//	Rootfs  a mounted root filesystem (the OCI bundle's rootfs of a container the
//	        runtime is about to restore): a whiteout deletes the path, an opaque
//	        directory loses every entry the tar does not bring
//
// Apply refuses names that leave the target (absolute, "..", or through a symlink),
// and applies directory times after their children. The package imports only the
// standard library: the runtime wrapper (worker/ociwrap) links it.
package rootfsdiff
