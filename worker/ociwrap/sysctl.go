package ociwrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// SysctlHookCommand is the first argument of the wrapper run as the OCI prestart hook
// that applies the bundle's network sysctls in the restored container's namespace.
const SysctlHookCommand = "swarmckpt-sysctl-hook"

// ErrSysctl: the container's network sysctls could not be applied before its restore.
var ErrSysctl = errors.New("ociwrap: cannot apply the container's network sysctls before its restore")

// Why: on a fresh start runc's init writes the bundle's linux.sysctl values; runc
// restore has no init, and CRIU restores a network namespace's interfaces, not its
// sysctls. Without this a restored container ran with the kernel's defaults in place of
// Docker's own (net.ipv4.ip_unprivileged_port_start 0, ping_group_range) and the user's
// (compose sysctls:, e.g. net.core.somaxconn): a non-root server could no longer bind a
// port below 1024 after a restart of its listener. Only net.* keys are applied: the IPC
// namespace's (kernel.shm*, kernel.msg*, fs.mqueue.*) come back with CRIU's IPC
// namespace, and the UTS ones with its hostname.

// netSysctls returns the net.* sysctls of the bundle's config.json.
func netSysctls(bundle string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBundle, err)
	}
	var cfg struct {
		Linux struct {
			Sysctl map[string]string `json:"sysctl"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%w: %s/config.json: %w", ErrBadBundle, bundle, err)
	}
	out := map[string]string{}
	for k, v := range cfg.Linux.Sysctl {
		if strings.HasPrefix(k, "net.") {
			out[k] = v
		}
	}
	return out, nil
}

// sysctlsBeforeRestore arranges for the bundle's network sysctls to be written in the
// container's network namespace before CRIU restores its sockets: at once when the
// namespace exists already, else through a prestart hook added after the others (after
// libnetwork's, which moves the interfaces in: per-interface keys need them).
func (w *Wrapper) sysctlsBeforeRestore(inv Invocation) error {
	kv, err := netSysctls(inv.Bundle)
	if err != nil || len(kv) == 0 {
		return err
	}
	path, found, err := netNamespace(inv.Bundle)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrSysctl, err)
	case !found:
		return nil // the host's network: not the container's to change
	case path != "":
		if err := ApplySysctls(path, kv); err != nil {
			return fmt.Errorf("%w: %w", ErrSysctl, err)
		}
		w.log(inv, "info", fmt.Sprintf("%d network sysctls of %s applied in %s before its restore", len(kv), inv.ID, path))
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("%w: find own executable for the prestart hook: %w", ErrSysctl, err)
	}
	if err := addPrestartHook(inv.Bundle, self, []string{self, SysctlHookCommand}, false); err != nil {
		return fmt.Errorf("%w: %w", ErrSysctl, err)
	}
	return nil
}

// SysctlHook runs the wrapper as the prestart hook: state is the OCI state JSON on stdin
// (pid and bundle); the bundle's net.* sysctls are written in the pid's namespace.
func SysctlHook(state io.Reader) error {
	var st struct {
		Pid    int    `json:"pid"`
		Bundle string `json:"bundle"`
	}
	if err := json.NewDecoder(io.LimitReader(state, 1<<20)).Decode(&st); err != nil {
		return fmt.Errorf("%w: prestart hook: decode container state: %w", ErrSysctl, err)
	}
	if st.Pid <= 0 || st.Bundle == "" {
		return fmt.Errorf("%w: prestart hook: no pid or bundle in the container state", ErrSysctl)
	}
	kv, err := netSysctls(st.Bundle)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSysctl, err)
	}
	if err := ApplySysctls(fmt.Sprintf("/proc/%d/ns/net", st.Pid), kv); err != nil {
		return fmt.Errorf("%w: %w", ErrSysctl, err)
	}
	return nil
}

// ApplySysctls writes kv (net.* keys, dotted) in the network namespace at path, in key
// order, on a locked OS thread that entered it (/proc/sys/net is per namespace, as seen
// by the calling thread; the thread dies with its goroutine).
func ApplySysctls(path string, kv map[string]string) error {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		if !strings.HasPrefix(k, "net.") || strings.Contains(k, "..") || strings.ContainsRune(k, '/') {
			return fmt.Errorf("sysctl %q: only net.* keys are set in a network namespace", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ns, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter %s: %w", path, err)
			return
		}
		for _, k := range keys {
			f := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(f, []byte(kv[k]+"\n"), 0o644); err != nil {
				done <- fmt.Errorf("sysctl %s=%s in %s: %w", k, kv[k], path, err)
				return
			}
		}
		done <- nil
	}()
	return <-done
}
