package restore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
	"github.com/swarmckpt/swarmckpt/worker/rewrite"
)

// TaskOptions tune the placement of a set for a swarm task (PlaceTask).
type TaskOptions struct {
	// NetworkLock: the wrapper locks the task's network before CRIU restores its
	// sockets (as Options.NetworkLock); the caller unlocks once every peer is back.
	NetworkLock bool
	// AddressMapUntil, when set, announces an address map (SetAddressMap): the wrapper
	// waits for it until this time before it restores. Without a map by then, or
	// without AddressMapUntil, the set's connections on non-loopback addresses are
	// closed at restore (CRIU tcp-close), and Placement.Closed lists them.
	AddressMapUntil time.Time
	// Keep leaves the set in place and places a hard-linked copy of it (same file
	// system: no data copied). Safe because nothing rewrites an image in place: the
	// address rewrite and the manifest update write new files and rename them over.
	// The set then stays restorable (a second restore, a migration's rollback).
	Keep bool
	// Expires, when set, is when the placement goes stale: a task created later starts
	// normally and the wrapper retires the placement (ociwrap.ExpiresFile).
	Expires time.Time
}

// Placement is the result of PlaceTask.
type Placement struct {
	// Set is the placed set.
	Set imageset.Verified
	// Closed lists the connections that will be closed at restore (no address map
	// announced); empty when none, or when a map is announced.
	Closed []rewrite.Conn
	// Connections lists the set's connections on non-loopback addresses (those an
	// address map must cover to keep them).
	Connections []rewrite.Conn
}

// ErrNoPlacedTask: no set is placed (or being restored) for that service slot.
var ErrNoPlacedTask = errors.New("restore: no set placed for that task")

// PlaceTask is PlaceForTask with options: it reads the set's connections from its
// images and writes the wrapper's instructions (network lock, address map wait, or
// tcp-close with the list of connections it closes) into the placed directory.
func (d *Docker) PlaceTask(v imageset.Verified, service string, slot int, opts TaskOptions) (Placement, error) {
	if !v.Valid() {
		return Placement{}, ErrUnverified
	}
	conns, err := rewrite.Connections(imageset.ImagesPath(v.Dir()))
	if err != nil {
		return Placement{}, fmt.Errorf("restore: place %s for %s slot %d: %w", v, service, slot, err)
	}
	// Instructions go in before the set is renamed into place: the wrapper may claim
	// it the moment it appears.
	dir := v.Dir()
	if opts.Keep {
		if err := os.MkdirAll(d.Area(), imageset.DirMode); err != nil {
			return Placement{}, fmt.Errorf("restore: place %s: %w", v, err)
		}
		dir = filepath.Join(d.Area(), fmt.Sprintf(".placing-%s.%d-%d", service, slot, time.Now().UnixNano()))
		if err := linkTree(v.Dir(), dir); err != nil {
			_ = os.RemoveAll(dir)
			return Placement{}, fmt.Errorf("restore: place a copy of %s for %s slot %d: %w", v, service, slot, err)
		}
	}
	var written []string
	write := func(name string, b []byte) error {
		written = append(written, name)
		return os.WriteFile(filepath.Join(dir, name), b, imageset.FileMode)
	}
	undo := func() {
		if opts.Keep {
			_ = os.RemoveAll(dir)
			return
		}
		for _, n := range written {
			_ = os.Remove(filepath.Join(dir, n))
		}
	}
	p := Placement{Connections: conns}
	if opts.NetworkLock {
		if err := write(ociwrap.LockFile, []byte(netlock.Script(netlock.State{All: true}))); err != nil {
			undo()
			return Placement{}, err
		}
	}
	if !opts.Expires.IsZero() {
		if err := write(ociwrap.ExpiresFile, []byte(opts.Expires.UTC().Format(time.RFC3339Nano))); err != nil {
			undo()
			return Placement{}, err
		}
	}
	if !opts.AddressMapUntil.IsZero() {
		if err := write(ociwrap.AddressWaitFile, []byte(opts.AddressMapUntil.UTC().Format(time.RFC3339Nano))); err != nil {
			undo()
			return Placement{}, err
		}
	}
	if len(conns) > 0 {
		// Used by the wrapper only when no map is applied (none announced, or none by
		// the deadline).
		b, _ := json.Marshal(conns)
		if err := write(ociwrap.TCPCloseFile, b); err != nil {
			undo()
			return Placement{}, err
		}
		if opts.AddressMapUntil.IsZero() {
			p.Closed = conns
			if d.Log != nil {
				d.Log.Warn("swarm-native restore without an address map: these TCP connections will be closed (CRIU tcp-close)",
					"service", service, "slot", slot, "connections", len(conns), "first", conns[0].String())
			}
		}
	}
	placed, err := d.PlaceForTask(v.Moved(dir), service, slot)
	if err != nil {
		undo()
		return Placement{}, err
	}
	p.Set = placed
	return p, nil
}

// SetAddressMap gives the wrapper the address map for the set placed for service slot:
// written atomically (0600) into the placed directory, or into the directory the
// wrapper already claimed and waits in. It fails with ErrNoPlacedTask when there is
// neither.
func (d *Docker) SetAddressMap(service string, slot int, m rewrite.Map) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	base := filepath.Join(d.Area(), ociwrap.ForTask(service, slot))
	for attempt := 0; attempt < 3; attempt++ {
		dirs := []string{base}
		claimed, _ := filepath.Glob(base + ".restoring-*")
		dirs = append(dirs, claimed...)
		for _, dir := range dirs {
			if _, err := os.Stat(filepath.Join(dir, imageset.ManifestName)); err != nil {
				continue
			}
			tmp := filepath.Join(dir, ociwrap.AddressMapFile+".tmp")
			if err := os.WriteFile(tmp, b, imageset.FileMode); err != nil {
				continue // renamed under us: look again
			}
			if err := os.Rename(tmp, filepath.Join(dir, ociwrap.AddressMapFile)); err != nil {
				_ = os.Remove(tmp)
				continue
			}
			if d.Log != nil {
				d.Log.Info("address map placed for the restore of a swarm task", "service", service, "slot", slot, "dir", dir, "addresses", m.Len())
			}
			return nil
		}
	}
	return fmt.Errorf("%w: %s slot %d on this node (%s)", ErrNoPlacedTask, service, slot, base)
}

// ClaimedBy lists the containers whose create claimed the set placed for service slot
// and is restoring it now (the wrapper's `<dir>.restoring-<ID>`).
func (d *Docker) ClaimedBy(service string, slot int) []string {
	base := filepath.Join(d.Area(), ociwrap.ForTask(service, slot))
	claimed, _ := filepath.Glob(base + ".restoring-*")
	var ids []string
	for _, c := range claimed {
		ids = append(ids, strings.TrimPrefix(c, base+".restoring-"))
	}
	return ids
}

// instructionFiles are what PlaceTask and the coordinator add to a placed set; they go
// before a set is put back into the sets directory (whose manifest does not list them).
var instructionFiles = []string{ociwrap.LockFile, ociwrap.AddressWaitFile, ociwrap.TCPCloseFile, ociwrap.ExpiresFile,
	ociwrap.AddressMapFile, ociwrap.AddressMapFile + ".tmp", ociwrap.ErrorFile, "work"}

// UnplaceTask takes back the set placed for service slot if no task claimed it: it is
// moved to backTo (a free path in the sets directory; its instructions removed), or
// deleted when backTo is empty or taken, or when its images were already rewritten (an
// applied address map: no longer the snapshot's images). It reports whether a placed set
// was there. A set a wrapper is restoring right now is left alone.
func (d *Docker) UnplaceTask(service string, slot int, backTo string) (bool, error) {
	base := filepath.Join(d.Area(), ociwrap.ForTask(service, slot))
	// Take it with one rename, so that a wrapper cannot claim it half-removed.
	taken := fmt.Sprintf("%s.unplacing-%d", base, time.Now().UnixNano())
	if err := os.Rename(base, taken); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("restore: take back the set placed for %s slot %d: %w", service, slot, err)
	}
	_, rerr := os.Stat(filepath.Join(taken, ociwrap.AddressMapFile+".applied"))
	rewritten := rerr == nil
	if backTo != "" && !rewritten {
		if _, err := os.Stat(backTo); errors.Is(err, os.ErrNotExist) {
			for _, f := range instructionFiles {
				_ = os.RemoveAll(filepath.Join(taken, f))
			}
			if err := os.Rename(taken, backTo); err == nil {
				if d.Log != nil {
					d.Log.Info("placed set taken back", "service", service, "slot", slot, "set", backTo)
				}
				return true, nil
			}
		}
	}
	if err := os.RemoveAll(taken); err != nil {
		return true, fmt.Errorf("restore: delete the set placed for %s slot %d: %w (remove %s by hand)", service, slot, err, taken)
	}
	if d.Log != nil {
		d.Log.Info("placed set deleted", "service", service, "slot", slot, "rewritten", rewritten)
	}
	return true, nil
}

// linkTree recreates directory src at dst (dirs 0700) with hard links to src's files.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case de.IsDir():
			return os.MkdirAll(target, imageset.DirMode)
		case de.Type().IsRegular():
			return os.Link(path, target)
		default:
			return fmt.Errorf("%s: not a regular file or directory", path)
		}
	})
}
