// Package activity reads what a container did: every TCP connection of its network
// namespace with the bytes written to and received on it (netlink sock_diag, tcp_info;
// Sockets), the bytes and packets its interfaces received and sent (/proc/PID/net/dev,
// loopback left out) and the CPU time its cgroup used (cpuacct.usage on cgroup v1,
// cpu.stat on v2). The minimal algorithm's worker reports the connections and the CPU
// time so that a container whose connections are the same, none of which moved a byte,
// and which ran no instruction since its last image reuses that image
// (docs/algorithms.md "minimal on a real stack").
package activity
