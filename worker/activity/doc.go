// Package activity reads what a container did: the bytes and packets its network
// namespace's interfaces received and sent (/proc/PID/net/dev, loopback left out) and
// the CPU time its cgroup used (cpuacct.usage on cgroup v1, cpu.stat on v2). The
// minimal algorithm's worker reports them so that a container whose counters did not
// move since its last image reuses that image (docs/algorithms.md "minimal on a real
// stack").
package activity
