package rewrite

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/swarmckpt/swarmckpt/criuimg"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// RecordName is the file, next to a set's manifest, that records the rewrites applied
// to the set (a JSON array of Record, one per rewrite).
const RecordName = "address-rewrite.json"

// Record is one rewrite of a set, as kept in RecordName.
type Record struct {
	Time time.Time `json:"time"`
	// Map is the address map applied.
	Map Map `json:"map"`
	// Report is what changed.
	Report Report `json:"report"`
	// Before and After are the manifest entries of the rewritten files.
	Before []imageset.File `json:"before"`
	After  []imageset.File `json:"after"`
}

// Set rewrites the addresses of m in the image set at set (manifest.json + images/)
// and updates the manifest, logging every change on log:
//
//  1. every socket image of the set is hashed and compared with its manifest entry;
//     a mismatch (or an image missing from the manifest) refuses the rewrite with
//     imageset.ErrChecksum: a corrupt file is never re-sealed;
//  2. each changed image is written to a temporary file (0600), hashed, and renamed
//     over the original;
//  3. the manifest gets the new size and sha256 of exactly those files (written
//     atomically), and a Record is appended to RecordName.
//
// A crash between 2 and 3 leaves a set that fails verification (never a set that
// passes with unverified content). A map that changes nothing writes nothing.
func Set(set string, m Map, log *slog.Logger) (Report, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	man, err := imageset.ReadManifest(set)
	if err != nil {
		return Report{}, fmt.Errorf("rewrite: set %s: %w", set, err)
	}
	dir := imageset.ImagesPath(set)
	var before []imageset.File
	for _, name := range criuimg.SocketImageNames() {
		size, sum, err := imageset.HashFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Report{}, fmt.Errorf("rewrite: set %s: %w", set, err)
		}
		want, ok := man.Lookup(name)
		if !ok {
			return Report{}, fmt.Errorf("rewrite: set %s: %w: %s is not in the manifest", set, imageset.ErrChecksum, name)
		}
		if want.Size != size || want.SHA256 != sum {
			return Report{}, fmt.Errorf("rewrite: set %s: %w: %s has %d bytes sha256 %.12s, manifest says %d bytes %.12s; refusing to re-seal it",
				set, imageset.ErrChecksum, name, size, sum, want.Size, want.SHA256)
		}
		before = append(before, want)
	}
	after := map[string]imageset.File{}
	r, err := images(dir, m, func(name, tmp string) error {
		size, sum, err := imageset.HashFile(tmp)
		if err != nil {
			return fmt.Errorf("rewrite: hash %s: %w", tmp, err)
		}
		after[name] = imageset.File{Name: name, Size: size, SHA256: sum}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("rewrite: set %s: %w", set, err)
	}
	if len(r.Files) == 0 {
		log.Info("address rewrite: no socket address of the map in the set", "set", set, "sockets", r.Sockets, "map", m.Len())
		return r, nil
	}
	rec := Record{Time: time.Now().UTC(), Map: m, Report: r}
	for i, f := range man.Files {
		if n, ok := after[f.Name]; ok {
			rec.After = append(rec.After, n)
			man.Files[i] = n
		}
	}
	for _, b := range before {
		if _, ok := after[b.Name]; ok {
			rec.Before = append(rec.Before, b)
		}
	}
	if err := imageset.WriteManifest(set, man); err != nil {
		return r, fmt.Errorf("rewrite: set %s: images rewritten but the manifest could not be updated (the set now fails verification): %w", set, err)
	}
	for _, c := range r.Changes {
		log.Info("address rewritten in image", "set", set, "change", c.String())
	}
	for _, n := range rec.After {
		log.Info("manifest entry updated after address rewrite", "set", set, "file", n.Name, "size", n.Size, "sha256", n.SHA256)
	}
	if len(r.NotRewritten) > 0 {
		log.Warn("network namespace images not rewritten (unused by runc restores of Docker containers)", "set", set, "files", r.NotRewritten)
	}
	if err := appendRecord(filepath.Join(set, RecordName), rec); err != nil {
		return r, fmt.Errorf("rewrite: set %s: record the rewrite: %w", set, err)
	}
	return r, nil
}

func appendRecord(path string, rec Record) error {
	var recs []json.RawMessage
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &recs); err != nil {
			return fmt.Errorf("decode %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	recs = append(recs, b)
	out, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(out, '\n'), imageMode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
