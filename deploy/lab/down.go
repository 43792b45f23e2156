package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Down removes every trace of lab name: containers, dockerd, containerd and shims, every
// other process naming the lab's directories (workers, coordinator), mounts, network
// namespaces (and with them veths and firewall rules), cgroups and directories. It works
// from naming conventions alone, so it also cleans up after an Up that crashed half-way.
// It returns ErrNotFound when there was nothing to remove.
func Down(ctx context.Context, log *slog.Logger, c Config) error {
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("lab name %q is invalid", c.Name)
	}
	if os.Geteuid() != 0 {
		return errors.New("lab down needs root; run it as root or with sudo")
	}
	log = log.With("component", "lab", "lab", c.Name)
	left := leftovers(c)
	run, data := filepath.Join(c.RunDir, c.Name), filepath.Join(c.DataDir, c.Name)
	if len(left) == 0 && len(procsMentioning(run+"/", data+"/")) == 0 {
		return fmt.Errorf("lab %q %w: nothing of it exists", c.Name, ErrNotFound)
	}
	var errs []error

	// 1. Containers, through runc directly (works with dockerd dead or wedged).
	ids := containerIDs(data)
	roots, _ := filepath.Glob(filepath.Join(run, "*", "exec", "runtime-runc", "moby"))
	for _, root := range roots {
		out, _ := sh(ctx, "runc", "--root", root, "list", "-q")
		for _, id := range strings.Fields(out) {
			ids[id] = true
			_, _ = sh(ctx, "runc", "--root", root, "delete", "-f", id)
		}
	}
	// Processes of containers whose shim is gone: kill them through their cgroups.
	for id := range ids {
		killCgroup(id)
	}

	// 2. dockerd gently, then everything that names the lab's directories.
	pidfiles, _ := filepath.Glob(filepath.Join(run, "*", "dockerd.pid"))
	var dockerds []int
	for _, pf := range pidfiles {
		if b, err := os.ReadFile(pf); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && syscall.Kill(pid, syscall.SIGTERM) == nil {
				dockerds = append(dockerds, pid)
			}
		}
	}
	if len(dockerds) > 0 {
		waitPids(ctx, 10*time.Second, dockerds)
	}
	for _, pid := range procsMentioning(run+"/", data+"/") {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if rest := waitGone(ctx, 5*time.Second, run+"/", data+"/"); len(rest) > 0 {
		errs = append(errs, fmt.Errorf("processes %v survived SIGKILL", rest))
	}
	for id := range ids {
		killCgroup(id)
		removeCgroup(id)
	}

	// 3. Mounts below the lab's directories.
	mps, err := mountsUnder(run, data)
	if err != nil {
		errs = append(errs, err)
	}
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}

	// 4. Network namespaces (their veths, bridges and firewall rules go with them).
	nss, _ := netnsList()
	for _, ns := range nss {
		if ownsNetns(c.Name, ns) {
			if _, err := sh(ctx, "ip", "netns", "del", ns); err != nil {
				errs = append(errs, err)
			}
		}
	}

	// 5. Directories.
	for _, d := range []string{run, data} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab down %s left something behind: %w", c.Name, err)
	}
	log.Info("lab removed", "containers", len(ids))
	return nil
}

// containerIDs lists the container ids the lab's nodes have on disk.
func containerIDs(data string) map[string]bool {
	ids := map[string]bool{}
	dirs, _ := filepath.Glob(filepath.Join(data, "*", "docker", "containers", "*"))
	for _, d := range dirs {
		ids[filepath.Base(d)] = true
	}
	return ids
}

// cgroupDirs returns the cgroup v1 directories (one per mounted hierarchy) or the v2
// directory of a Docker container with the cgroupfs driver.
func cgroupDirs(id string) []string {
	if len(id) != 64 {
		return nil
	}
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", "docker", id))
	if d := filepath.Join("/sys/fs/cgroup", "docker", id); isDir(d) {
		dirs = append(dirs, d)
	}
	return dirs
}

func isDir(p string) bool { st, err := os.Stat(p); return err == nil && st.IsDir() }

// killCgroup thaws a container's cgroup and SIGKILLs every process in it.
func killCgroup(id string) {
	for _, d := range cgroupDirs(id) {
		if strings.Contains(d, "/freezer/") {
			_ = os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0o644)
		}
		if _, err := os.Stat(filepath.Join(d, "cgroup.freeze")); err == nil {
			_ = os.WriteFile(filepath.Join(d, "cgroup.freeze"), []byte("0"), 0o644)
		}
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

func removeCgroup(id string) {
	for _, d := range cgroupDirs(id) {
		_ = os.Remove(d)
	}
}

// waitPids polls until none of pids exists, or timeout.
func waitPids(ctx context.Context, timeout time.Duration, pids []int) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		alive := false
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				alive = true
			}
		}
		if !alive {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitGone polls until no process names any of paths, or timeout; it returns the rest.
func waitGone(ctx context.Context, timeout time.Duration, paths ...string) []int {
	deadline := time.Now().Add(timeout)
	for {
		rest := procsMentioning(paths...)
		if len(rest) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return rest
		}
		time.Sleep(100 * time.Millisecond)
	}
}
