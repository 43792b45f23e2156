package ociwrap

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// ResolveBindSources rewrites the bundle's config.json so that no bind mount's source is
// a symbolic link: each such source is replaced by the file it resolves to. It returns
// the sources it changed. Every other field is kept.
//
// Why: runc hands CRIU each bind mount's source as the external mount's host path, and
// CRIU's restore (mount-v2) bind-mounts that path without following a final symlink, so
// a symlink source fails the restore with "mnt-v2: Can't remount ... with MS_PRIVATE: No
// such file or directory". Docker's init is such a source: with init: true (docker run
// --init) it bind-mounts its docker-init at /sbin/docker-init, and Debian's docker.io
// ships /usr/bin/docker-init as a symlink to tini-static. Resolved, the restore brings
// back docker-init as PID 1 with the program as its child.
func ResolveBindSources(bundle string) ([]string, error) {
	p := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBundle, err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadBundle, p, err)
	}
	raw, ok := cfg["mounts"]
	if !ok {
		return nil, nil
	}
	var mounts []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &mounts); err != nil {
		return nil, fmt.Errorf("%w: %s mounts: %w", ErrBadBundle, p, err)
	}
	var changed []string
	for _, m := range mounts {
		var typ, src string
		var opts []string
		_ = json.Unmarshal(m["type"], &typ)
		_ = json.Unmarshal(m["source"], &src)
		_ = json.Unmarshal(m["options"], &opts)
		if src == "" || !filepath.IsAbs(src) || (typ != "bind" && !slices.Contains(opts, "bind") && !slices.Contains(opts, "rbind")) {
			continue
		}
		fi, err := os.Lstat(src)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			continue
		}
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			return nil, fmt.Errorf("bind mount source %s is a symlink that does not resolve: %w", src, err)
		}
		m["source"], _ = json.Marshal(real)
		changed = append(changed, src+" -> "+real)
	}
	if len(changed) == 0 {
		return nil, nil
	}
	cfg["mounts"], _ = json.Marshal(mounts)
	out, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	tmp := p + ".swarmckpt"
	if err := os.WriteFile(tmp, out, fi.Mode().Perm()); err != nil {
		return nil, err
	}
	return changed, os.Rename(tmp, p)
}
