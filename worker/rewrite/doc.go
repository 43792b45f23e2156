// Package rewrite changes the IP addresses recorded in a CRIU image set, so that a set
// of containers restored on new addresses keeps the TCP connections between its
// members.
//
// CRIU restores a TCP socket (TCP_REPAIR) on exactly the local and remote addresses in
// its images. Swarm gives a replacement task a new IP, so a swarm task restored from a
// checkpoint cannot bind its old connections. When every container of the set is
// restored together, both ends of each connection inside the set are in our hands:
// rewriting the old address of every member to its new one, in the images of every
// member, before any of them resumes, gives two sockets that agree on their 4-tuple.
// Sequence numbers, queues, windows, timestamps (CRIU restores the timestamp offset
// explicitly) are untouched. Rewriting one end only is useless: the peer would reset
// the connection.
//
// What is rewritten: the src_addr and dst_addr of every inet socket entry (files.img,
// and inetsk.img of older CRIU versions) whose address is a key of the Map, including
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, what a dual-stack Go listener records
// for IPv4 peers), which stay mapped. Nothing else in a CRIU image set holds a socket
// address: tcp-stream-<ino>.img holds only sequence numbers, queues and options. A
// network namespace dumped by CRIU (ifaddr-*.img, route-*.img: raw netlink dumps) is
// not rewritten: runc restores Docker containers into an empty namespace (libnetwork
// configures the new one), so those images are not used; Images reports them.
//
// Addresses not in the map (loopback, 0.0.0.0 listeners, peers outside the set) are
// never touched.
//
// Set does the same on a swarmckpt image set (manifest.json + images/): each file it
// rewrites is first checked against its manifest sha256 (a corrupt file is refused,
// never re-sealed), then replaced atomically (0600), and the manifest gets the new size
// and sha256 of exactly those files; a record of the rewrite (Record) is written next
// to the manifest. The checksum chain is kept, never skipped.
package rewrite
