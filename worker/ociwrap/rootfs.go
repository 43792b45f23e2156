package ociwrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/swarmckpt/swarmckpt/worker/rootfsdiff"
)

// RootfsAppliedFile in a restore directory says the worker already unpacked the set's
// writable layer (images/rootfs-diff.tar) into the new container's overlay upper
// directory (an exact restore, before docker start): the wrapper leaves the rootfs as
// it is. Without it, the wrapper applies the layer into the bundle's rootfs itself.
const RootfsAppliedFile = "rootfs-applied"

// ErrRootfs: the set's writable layer could not be put into the container's rootfs.
var ErrRootfs = errors.New("ociwrap: writable layer not applied")

// rootfsBeforeRestore applies dir/images/rootfs-diff.tar into the bundle's mounted
// root filesystem (a whiteout deletes the path) unless there is none or the worker
// applied it already. CRIU then finds the files the processes had open, at the size
// and content of the dump.
func (w *Wrapper) rootfsBeforeRestore(inv Invocation, dir string) error {
	tarball := filepath.Join(dir, "images", rootfsdiff.FileName)
	if _, err := os.Stat(tarball); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, RootfsAppliedFile)); err == nil {
		w.log(inv, "info", "writable layer of "+inv.ID+" was applied by the worker")
		return nil
	}
	root, err := bundleRoot(inv.Bundle)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRootfs, err)
	}
	st, err := rootfsdiff.ApplyFile(tarball, root, rootfsdiff.Rootfs)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRootfs, err)
	}
	w.log(inv, "info", fmt.Sprintf("writable layer of %s applied into %s: %d entries, %d deleted, %d bytes in %.3fs",
		inv.ID, root, st.Entries, st.Whiteouts, st.Bytes, st.Took.Seconds()))
	return nil
}

// bundleRoot is the absolute path of the bundle's root filesystem (config.json
// root.path, relative to the bundle when not absolute).
func bundleRoot(bundle string) (string, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadBundle, err)
	}
	var cfg struct {
		Root *struct {
			Path string `json:"path"`
		} `json:"root"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", fmt.Errorf("%w: %s/config.json: %w", ErrBadBundle, bundle, err)
	}
	if cfg.Root == nil || cfg.Root.Path == "" {
		return "", fmt.Errorf("%w: %s/config.json has no root.path", ErrBadBundle, bundle)
	}
	if filepath.IsAbs(cfg.Root.Path) {
		return cfg.Root.Path, nil
	}
	return filepath.Join(bundle, cfg.Root.Path), nil
}
