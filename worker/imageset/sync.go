package imageset

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Sync makes a sealed set durable: it fsyncs every file under its images directory,
// the manifest, each directory of the set, and the directory holding the set (its
// entry). A snapshot is committed only when every set is durable
// (docs/architecture.md); a set only in the page cache would be lost with its node's
// power. The write-out started while the files were written (Writeback) leaves Sync
// little to wait for.
func Sync(set string) error {
	var errs []error
	err := filepath.WalkDir(ImagesPath(set), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Type().IsRegular() {
			errs = append(errs, syncPath(p))
		}
		return nil
	})
	errs = append(errs, err, syncPath(filepath.Join(set, ManifestName)), syncPath(set), syncPath(filepath.Dir(set)))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("imageset: make %s durable: %w", set, err)
	}
	return nil
}

// syncPath fsyncs a file or directory through a read-only descriptor.
func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}
