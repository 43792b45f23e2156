package ociwrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/swarmckpt/swarmckpt/worker/tcpharden"
)

// LockFile in a restore directory asks for a locked restore: it holds the nft script
// (written by the worker, netlock.Script of a full lock) that the wrapper installs in
// the container's network namespace before CRIU restores the sockets. The lock stays
// after the restore; the worker's Unlock (or its watchdog, at the deadline) removes it.
const LockFile = "network-lock"

// HookCommand is the first argument of the wrapper run as an OCI prestart hook: it
// applies the nft script named by the second argument in the network namespace of the
// pid in the container state on stdin.
const HookCommand = "swarmckpt-netlock-hook"

// ErrLock: the network lock of a locked restore could not be installed.
var ErrLock = errors.New("ociwrap: cannot lock the container's network before its restore")

// netNamespace returns the network namespace entry of the bundle's config.json: found
// false when the container shares the host's (no entry), path "" when runc creates a
// new one (Docker before v26: libnetwork's prestart hook then moves the interfaces in).
func netNamespace(bundle string) (path string, found bool, err error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return "", false, fmt.Errorf("%w: %w", ErrBadBundle, err)
	}
	var cfg struct {
		Linux struct {
			Namespaces []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", false, fmt.Errorf("%w: %s/config.json: %w", ErrBadBundle, bundle, err)
	}
	for _, ns := range cfg.Linux.Namespaces {
		if ns.Type == "network" {
			return ns.Path, true, nil
		}
	}
	return "", false, nil
}

// AddPrestartHook rewrites the bundle's config.json so that hook runs first among the
// prestart hooks (before libnetwork's, which moves the interfaces in). runc restore
// runs prestart hooks when CRIU has created the namespaces and before it restores any
// socket. Every other field is kept as is.
func AddPrestartHook(bundle string, path string, args []string) error {
	return addPrestartHook(bundle, path, args, true)
}

// lockBeforeRestore arranges for the script in dir/LockFile to be applied in the
// container's network namespace before CRIU restores its sockets: at once when the
// namespace exists already (a path in config.json), else through a prestart hook.
func (w *Wrapper) lockBeforeRestore(inv Invocation, dir string) error {
	script := filepath.Join(dir, LockFile)
	if _, err := os.Stat(script); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("%w: %w", ErrLock, err)
	}
	path, found, err := netNamespace(inv.Bundle)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrLock, err)
	case !found:
		// Host network: locking it would cut the node off. Nothing of the container's
		// own to lock; say so.
		w.log(inv, "warning", "locked restore asked for "+inv.ID+", which uses the host's network: not locked")
		return nil
	case path != "":
		if err := applyScript(path, script); err != nil {
			return fmt.Errorf("%w: %w", ErrLock, err)
		}
		w.log(inv, "info", "network of "+inv.ID+" locked in "+path+" before its restore")
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("%w: find own executable for the prestart hook: %w", ErrLock, err)
	}
	if err := AddPrestartHook(inv.Bundle, self, []string{self, HookCommand, script}); err != nil {
		return fmt.Errorf("%w: %w", ErrLock, err)
	}
	w.log(inv, "info", "network of "+inv.ID+" is locked by a prestart hook before its sockets are restored")
	return nil
}

// Hook runs the wrapper as the prestart hook: state is the OCI state JSON on stdin.
func Hook(script string, state io.Reader) error {
	var st struct {
		Pid int `json:"pid"`
	}
	if err := json.NewDecoder(io.LimitReader(state, 1<<20)).Decode(&st); err != nil {
		return fmt.Errorf("%w: prestart hook: decode container state: %w", ErrLock, err)
	}
	if st.Pid <= 0 {
		return fmt.Errorf("%w: prestart hook: no pid in the container state", ErrLock)
	}
	if err := applyScript(fmt.Sprintf("/proc/%d/ns/net", st.Pid), script); err != nil {
		return fmt.Errorf("%w: %w", ErrLock, err)
	}
	return nil
}

// applyScript runs `nsenter --net=ns nft -f script` and hardens the namespace's TCP
// stack (tcpharden.Harden: the restored sockets will see retransmissions while locked,
// and must stay dumpable for the next checkpoint).
func applyScript(ns, script string) error {
	nsenter, nft := tool("nsenter"), tool("nft")
	out, err := exec.Command(nsenter, "--net="+ns, "--", nft, "-f", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nsenter --net=%s nft -f %s: %w: %s", ns, script, err, strings.TrimSpace(string(out)))
	}
	return tcpharden.Harden(ns)
}

// tool finds a binary on PATH, else in the usual sbin/bin directories (runtimes and
// hooks may run with a minimal PATH).
func tool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"} {
		if fi, err := os.Stat(filepath.Join(d, name)); err == nil && !fi.IsDir() {
			return filepath.Join(d, name)
		}
	}
	return name
}
