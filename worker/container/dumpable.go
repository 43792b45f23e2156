package container

import (
	"errors"
	"fmt"
)

// ErrOtherUser: a process of the container runs as another user than the worker, and
// the worker lacks CAP_SYS_RESOURCE, so CRIU cannot read its resource limits and every
// dump of the container would fail ("Can't get rlimit ...: Operation not permitted").
var ErrOtherUser = errors.New("container: CRIU cannot dump a process of another user here (the worker lacks CAP_SYS_RESOURCE)")

// CapSysResource is the bit of CAP_SYS_RESOURCE in a capability set (/proc/PID/status).
const CapSysResource = 24

// Creds are a process's ids as /proc/PID/status shows them.
type Creds struct {
	Pid  int
	Comm string
	// UID and GID are real, effective and saved ids.
	UID, GID [3]int
}

// Privileges are those of who runs CRIU (the worker): real uid and gid, effective
// capabilities.
type Privileges struct {
	UID, GID int
	CapEff   uint64
}

// CheckDumpable tells whether CRIU, run by w, can dump every process of c. CRIU reads
// each dumped process's resource limits with prlimit(2); the kernel allows that for a
// process whose real, effective and saved uid and gid all equal the caller's real uid
// and gid, and otherwise only with CAP_SYS_RESOURCE. The error wraps ErrOtherUser and
// names the container, the first such process and its ids, and what to do.
func CheckDumpable(c Ref, w Privileges, procs []Creds) error {
	if w.CapEff&(1<<CapSysResource) != 0 {
		return nil
	}
	for _, p := range procs {
		same := true
		for i := range 3 {
			same = same && p.UID[i] == w.UID && p.GID[i] == w.GID
		}
		if same {
			continue
		}
		return fmt.Errorf("container %s: process %d (%s) runs as uid %d gid %d: %w (CapEff %#x); CRIU reads every dumped process's resource limits, which the kernel refuses for another user's process without that capability, so the dump would fail with \"Can't get rlimit\": run the container's processes as uid %d gid %d (compose user: \"%d:%d\"), or run the worker where it has CAP_SYS_RESOURCE (grep CapEff /proc/self/status: bit 24)",
			c, p.Pid, p.Comm, p.UID[1], p.GID[1], ErrOtherUser, w.CapEff, w.UID, w.GID, w.UID, w.GID)
	}
	return nil
}
