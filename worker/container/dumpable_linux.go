package container

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Dumpable checks on this host, before anything is locked or frozen, that CRIU run by
// this process can dump container c (CheckDumpable over the processes of c's pid
// namespace). A process that exits while it is read is skipped; c's init gone is not
// an error here (the dump reports it).
func Dumpable(c Ref) error {
	self, err := readCreds("/proc/self")
	if err != nil {
		return fmt.Errorf("container %s: read this worker's credentials: %w", c, err)
	}
	w := Privileges{UID: self.UID[0], GID: self.GID[0], CapEff: self.capEff}
	if w.CapEff&(1<<CapSysResource) != 0 {
		return nil
	}
	procs, err := containerProcs(c.Pid)
	if err != nil {
		return fmt.Errorf("container %s: list its processes: %w", c, err)
	}
	return CheckDumpable(c, w, procs)
}

type procCreds struct {
	Creds
	capEff uint64
}

// containerProcs returns the credentials of every process in the pid namespace of pid
// (only pid itself when that is this process's namespace: a container sharing the
// host's).
func containerProcs(pid int) ([]Creds, error) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		return nil, nil // gone: the dump says so
	}
	if own, _ := os.Readlink("/proc/self/ns/pid"); own == ns {
		p, err := readCreds(fmt.Sprintf("/proc/%d", pid))
		if err != nil {
			return nil, nil
		}
		return []Creds{p.Creds}, nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Creds
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if l, err := os.Readlink(filepath.Join(dir, "ns", "pid")); err != nil || l != ns {
			continue
		}
		if p, err := readCreds(dir); err == nil {
			out = append(out, p.Creds)
		}
	}
	return out, nil
}

// readCreds parses Name, Pid, Uid, Gid and CapEff of dir/status.
func readCreds(dir string) (procCreds, error) {
	f, err := os.Open(filepath.Join(dir, "status"))
	if err != nil {
		return procCreds{}, err
	}
	defer f.Close()
	var p procCreds
	var seen int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		switch k {
		case "Name":
			p.Comm = strings.TrimSpace(v)
		case "Pid":
			p.Pid, _ = strconv.Atoi(strings.TrimSpace(v))
		case "Uid", "Gid":
			if len(fs) < 3 {
				return p, fmt.Errorf("%s/status: bad %s line %q", dir, k, v)
			}
			ids := &p.UID
			if k == "Gid" {
				ids = &p.GID
			}
			for i := range 3 {
				if ids[i], err = strconv.Atoi(fs[i]); err != nil {
					return p, fmt.Errorf("%s/status: bad %s line %q", dir, k, v)
				}
			}
			seen++
		case "CapEff":
			if p.capEff, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
				return p, fmt.Errorf("%s/status: bad CapEff %q", dir, v)
			}
			seen++
		}
	}
	if err := sc.Err(); err != nil {
		return p, err
	}
	if seen < 3 {
		return p, fmt.Errorf("%s/status: no Uid, Gid or CapEff line", dir)
	}
	return p, nil
}
