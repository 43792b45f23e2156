package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// records keeps the container roles' persisted records (algorithms.ActPersist with
// Container set) under dir/<algorithm>/<container>.rec, written atomically and synced.
// An empty dir keeps nothing (tests).
type records struct{ dir string }

func (r records) path(algo, container string) string {
	return filepath.Join(r.dir, algo, container+".rec")
}

func (r records) save(algo, container string, rec []byte) error {
	if r.dir == "" {
		return nil
	}
	p := r.path(algo, container)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("agent: record dir: %w", err)
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("agent: record of %s: %w", container, err)
	}
	_, werr := f.Write(rec)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("agent: record of %s: %w", container, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("agent: record of %s: %w", container, err)
	}
	return nil
}

// stored is one record found at start.
type stored struct {
	algo, container string
	rec             []byte
	written         time.Time // the file's modification time
}

// remove deletes the record of container if it still is rec (a role that took part in
// a newer snapshot meanwhile wrote another one, which stays).
func (r records) remove(algo, container string, rec []byte) error {
	if r.dir == "" {
		return nil
	}
	p := r.path(algo, container)
	cur, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) || err == nil && !bytes.Equal(cur, rec) {
		return nil
	}
	if err == nil {
		err = os.Remove(p)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("agent: remove the record of %s: %w", container, err)
	}
	return nil
}

// is reports whether the record of container is still rec.
func (r records) is(algo, container string, rec []byte) bool {
	if r.dir == "" {
		return true
	}
	cur, err := os.ReadFile(r.path(algo, container))
	return err == nil && bytes.Equal(cur, rec)
}

// all returns every stored record.
func (r records) all() ([]stored, error) {
	if r.dir == "" {
		return nil, nil
	}
	algos, err := os.ReadDir(r.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: read state dir %s: %w", r.dir, err)
	}
	var out []stored
	for _, a := range algos {
		if !a.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(r.dir, a.Name()))
		if err != nil {
			return nil, fmt.Errorf("agent: read state dir: %w", err)
		}
		for _, f := range files {
			if !strings.HasSuffix(f.Name(), ".rec") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(r.dir, a.Name(), f.Name()))
			if err != nil {
				return nil, fmt.Errorf("agent: read record: %w", err)
			}
			var written time.Time
			if fi, err := f.Info(); err == nil {
				written = fi.ModTime()
			}
			out = append(out, stored{algo: a.Name(), container: strings.TrimSuffix(f.Name(), ".rec"), rec: b, written: written})
		}
	}
	return out, nil
}
