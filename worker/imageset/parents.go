package imageset

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// A pre-copy set (migrate --copy pre-copy) holds its pre-dumps under images/pre/: K
// (0-based) is round K's pre-dump, written while the container ran (pre/0 every page,
// pre/K the pages dirtied since round K-1), and the final dump's images at the top of
// images/ hold only the pages dirtied since the last round. CRIU finds a dump's parent
// through a symlink named "parent" in its image directory (CR_PARENT_LINK, made from
// --parent-path / --prev-images-dir):
//
//	images/parent -> pre/N-1,  images/pre/K/parent -> ../K-1 (K >= 1)
//
// A sealed set holds regular files only (hashed, sent, verified like any other
// file): the dump removes the links before it seals the set and records N
// (Manifest.PreDumps); a restore links the chain again (LinkParents) where the set
// is restored, the target node assembling what the source dumped.

// PreDumpsDir is the directory of a set's pre-dumps, under images/.
const PreDumpsDir = "pre"

// ParentLink is the name CRIU gives the link to a dump's parent images.
const ParentLink = "parent"

// PreDumpPath is the image directory of pre-dump k under images.
func PreDumpPath(images string, k int) string {
	return filepath.Join(images, PreDumpsDir, strconv.Itoa(k))
}

// ParentPath is the --parent-path of pre-dump k (k >= 1: "../K-1", relative to its own
// image directory) or, final, of the final dump after n = k pre-dumps ("pre/K-1",
// relative to images/). "" when there is no parent (pre-dump 0, or no pre-dump).
func ParentPath(k int, final bool) string {
	switch {
	case k <= 0:
		return ""
	case final:
		return PreDumpsDir + "/" + strconv.Itoa(k-1)
	default:
		return "../" + strconv.Itoa(k-1)
	}
}

// LinkParents (re)creates the parent links of a set's n pre-dumps under images (the
// chain a restore of the final dump follows). Links already there with the right
// target are kept; a missing pre-dump directory is an error (the set is incomplete).
func LinkParents(images string, n int) error {
	for k := n; k >= 1; k-- {
		dir, final := PreDumpPath(images, k), k == n
		if final {
			dir = images
		}
		if _, err := os.Stat(PreDumpPath(images, k-1)); err != nil {
			return fmt.Errorf("imageset: link pre-dump chain in %s: pre-dump %d: %w", images, k-1, err)
		}
		link, target := filepath.Join(dir, ParentLink), ParentPath(k, final)
		if got, err := os.Readlink(link); err == nil && got == target {
			continue
		}
		if err := os.Symlink(target, link); err != nil {
			return fmt.Errorf("imageset: link pre-dump chain in %s: %w", images, err)
		}
	}
	return nil
}

// UnlinkParents removes the parent links LinkParents (or CRIU) made for n pre-dumps
// under images; links that are not there are fine.
func UnlinkParents(images string, n int) error {
	var errs []error
	for k := n; k >= 1; k-- {
		dir := PreDumpPath(images, k)
		if k == n {
			dir = images
		}
		if err := os.Remove(filepath.Join(dir, ParentLink)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("imageset: unlink pre-dump chain in %s: %w", images, err)
	}
	return nil
}
