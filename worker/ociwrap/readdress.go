package ociwrap

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Files of a restore directory that concern the addresses of a swarm-native restore
// (docs/restore.md, "Addresses and TCP connections"):
const (
	// AddressMapFile is the address map (JSON, worker/rewrite File format: old IP ->
	// new IP for every container of the restored set). When present, the wrapper has
	// the set's images rewritten with it (`swarmckpt readdress DIR MAP`) before runc
	// restore: connections inside the set keep working on the new addresses.
	AddressMapFile = "address-map"
	// AddressWaitFile holds a deadline (RFC 3339): the coordinator will place the map
	// once it knows the new tasks' addresses; the wrapper waits for AddressMapFile
	// until then. Past the deadline it restores as without a map (TCPCloseFile).
	AddressWaitFile = "address-map.wait"
	// TCPCloseFile, written by the worker when it placed the set, lists the connected
	// TCP sockets on non-loopback addresses (JSON). Restored without a map, they
	// cannot come back (CRIU binds their old local address, which the new task does
	// not have): the wrapper restores with CRIU's tcp-close and logs the list.
	TCPCloseFile = "tcp-close"
	// CRIUConfigFile, in the work directory, is the CRIU configuration the wrapper
	// writes for a tcp-close restore (runc.conf's options plus tcp-close) and names in
	// the bundle's org.criu.config annotation, which runc hands to CRIU.
	CRIUConfigFile = "criu.conf"
)

// ErrReaddress: the images could not be rewritten for the new addresses.
var ErrReaddress = errors.New("ociwrap: cannot rewrite the images for the new addresses")

// RuncCRIUConfig is the CRIU configuration runc uses when no annotation names another.
const RuncCRIUConfig = "/etc/criu/runc.conf"

// waitStep is how often the wrapper looks for the address map while it waits.
const waitStep = 20 * time.Millisecond

// readdress prepares a claimed restore directory's addresses before runc restore:
// wait for the map if one is announced, apply it, or else arrange a tcp-close restore
// when the worker listed connections that cannot survive.
func (w *Wrapper) readdress(inv Invocation, dir string) error {
	mapPath := filepath.Join(dir, AddressMapFile)
	if b, err := os.ReadFile(filepath.Join(dir, AddressWaitFile)); err == nil {
		deadline, perr := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
		if perr != nil {
			return fmt.Errorf("%w: %s: %w", ErrReaddress, AddressWaitFile, perr)
		}
		start := w.Now()
		for !exists(mapPath) && w.Now().Before(deadline) {
			time.Sleep(waitStep)
		}
		if exists(mapPath) {
			w.log(inv, "info", fmt.Sprintf("address map for %s arrived after %.3fs", inv.ID, w.Now().Sub(start).Seconds()))
		} else {
			w.log(inv, "warning", fmt.Sprintf("no address map for %s by %s: restoring without one", inv.ID, deadline.Format(time.RFC3339)))
		}
	}
	if exists(mapPath) {
		return w.applyMap(inv, dir, mapPath)
	}
	if exists(mapPath + ".applied") {
		return nil
	}
	if exists(filepath.Join(dir, TCPCloseFile)) {
		return w.tcpClose(inv, dir)
	}
	return nil
}

// applyMap runs the rewrite helper on dir. It lives in the swarmckpt binary (it needs
// CRIU's protobuf images, which this wrapper does not link: every runtime call would
// pay for their initialisation).
func (w *Wrapper) applyMap(inv Invocation, dir, mapPath string) error {
	helper, err := findHelper()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrReaddress, err)
	}
	start := w.Now()
	out, err := exec.Command(helper, "readdress", dir, mapPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s readdress %s: %w: %s", ErrReaddress, helper, dir, err, lastLines(string(out), 6))
	}
	// Applied once: a retried create (after a failed runc restore) must not apply it
	// again (a swap a->b, b->a would undo itself).
	if err := os.Rename(mapPath, mapPath+".applied"); err != nil {
		return fmt.Errorf("%w: %w", ErrReaddress, err)
	}
	w.log(inv, "info", fmt.Sprintf("images of %s rewritten for the new addresses in %.3fs: %s", inv.ID, w.Now().Sub(start).Seconds(), lastLines(string(out), 1)))
	return nil
}

// tcpClose makes runc restore dir with CRIU's tcp-close: a CRIU configuration file in
// dir/work with runc.conf's options and tcp-close, named by the org.criu.config
// annotation of the bundle.
func (w *Wrapper) tcpClose(inv Invocation, dir string) error {
	conns, _ := os.ReadFile(filepath.Join(dir, TCPCloseFile))
	conf := ""
	if b, err := os.ReadFile(RuncCRIUConfig); err == nil {
		conf = string(b)
		if conf != "" && !strings.HasSuffix(conf, "\n") {
			conf += "\n"
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: read %s: %w", ErrReaddress, RuncCRIUConfig, err)
	}
	conf += "tcp-close\n"
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrReaddress, err)
	}
	path := filepath.Join(work, CRIUConfigFile)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrReaddress, err)
	}
	if err := AddAnnotation(inv.Bundle, "org.criu.config", path); err != nil {
		return fmt.Errorf("%w: %w", ErrReaddress, err)
	}
	w.log(inv, "warning", fmt.Sprintf("restoring %s without an address map: its TCP connections on the old addresses are closed (CRIU tcp-close): %s",
		inv.ID, strings.Join(strings.Fields(string(conns)), " ")))
	return nil
}

// findHelper locates the swarmckpt binary: $SWARMCKPT_BIN, else next to this
// executable, else on PATH.
func findHelper() (string, error) {
	if p := os.Getenv("SWARMCKPT_BIN"); p != "" {
		return p, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "swarmckpt")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("swarmckpt")
	if err != nil {
		return "", fmt.Errorf("swarmckpt binary (the address rewrite helper) not found next to the runtime or on PATH: %w", err)
	}
	return p, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// AddAnnotation sets annotation key to value in the bundle's config.json (runc turns
// annotations into the container's labels; org.criu.config names the CRIU
// configuration file of its checkpoint and restore). Every other field is kept.
func AddAnnotation(bundle, key, value string) error {
	return editConfig(bundle, func(p string, cfg map[string]json.RawMessage) error {
		ann := map[string]string{}
		if raw, ok := cfg["annotations"]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &ann); err != nil {
				return fmt.Errorf("%w: %s annotations: %w", ErrBadBundle, p, err)
			}
		}
		ann[key] = value
		var err error
		cfg["annotations"], err = json.Marshal(ann)
		return err
	})
}
