package space

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Free reads the free space of the file system that holds dir (statfs; dir need not
// exist yet: its nearest existing ancestor is asked) and that file system's mount
// point (the highest ancestor on the same device).
func Free(dir string) (Disk, error) {
	d := Disk{Dir: dir}
	at, err := existing(filepath.Clean(dir))
	if err != nil {
		return d, fmt.Errorf("space: free space of %s: %w", dir, err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(at, &st); err != nil {
		return d, fmt.Errorf("space: statfs %s: %w", at, err)
	}
	d.Free = int64(st.Bavail) * st.Bsize
	d.Mount = mountOf(at)
	return d, nil
}

// existing is p or its nearest ancestor that exists.
func existing(p string) (string, error) {
	for {
		_, err := os.Stat(p)
		if err == nil {
			return p, nil
		}
		up := filepath.Dir(p)
		if !errors.Is(err, fs.ErrNotExist) || up == p {
			return "", err
		}
		p = up
	}
}

// mountOf is the highest ancestor of p on p's device ("" when p cannot be read).
func mountOf(p string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return ""
	}
	for {
		up := filepath.Dir(p)
		var ust syscall.Stat_t
		if up == p || syscall.Stat(up, &ust) != nil || ust.Dev != st.Dev {
			return p
		}
		p = up
	}
}
