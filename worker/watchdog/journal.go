package watchdog

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Hold is what the journal records for one container.
type Hold struct {
	ContainerID string    `json:"containerID"`
	Name        string    `json:"name,omitempty"`
	Pid         int       `json:"pid"`
	Locked      bool      `json:"locked"`
	Frozen      bool      `json:"frozen"`
	Peers       []string  `json:"peers,omitempty"`
	Deadline    time.Time `json:"deadline"`
	// Owner is the worker process that holds the container (nil: unknown, a journal
	// of an older worker): once it has ended, nobody will release the hold but the
	// watchdog, which then does so at once instead of at the deadline.
	Owner *Owner `json:"owner,omitempty"`
}

// Expired tells whether the hold's deadline has passed at now.
func (h Hold) Expired(now time.Time) bool { return !now.Before(h.Deadline) }

// Orphaned tells whether the hold's owner has ended.
func (h Hold) Orphaned() bool { return h.Owner != nil && !h.Owner.Alive() }

// sameOwner tells whether a and b were written by the same process.
func sameOwner(a, b *Owner) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// PeerAddrs parses Peers.
func (h Hold) PeerAddrs() []netip.Addr {
	var out []netip.Addr
	for _, p := range h.Peers {
		if a, err := netip.ParseAddr(p); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// Journal is the on-disk set of holds.
type Journal struct{ Dir string }

func (j Journal) path(id string) string { return filepath.Join(j.Dir, id+".json") }

// Put writes (or replaces) the hold of a container atomically.
func (j Journal) Put(h Hold) error {
	if h.ContainerID == "" || strings.ContainsAny(h.ContainerID, "/.") {
		return fmt.Errorf("watchdog: bad container ID %q", h.ContainerID)
	}
	if err := os.MkdirAll(j.Dir, 0o700); err != nil {
		return fmt.Errorf("watchdog: journal %s: %w", j.Dir, err)
	}
	b, _ := json.Marshal(h)
	tmp := j.path(h.ContainerID) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("watchdog: journal %s: %w", j.Dir, err)
	}
	_, err = f.Write(b)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, j.path(h.ContainerID))
	}
	if err != nil {
		return fmt.Errorf("watchdog: journal %s: %w", j.Dir, err)
	}
	return nil
}

// Get returns the hold of a container, ok false when there is none.
func (j Journal) Get(id string) (Hold, bool, error) {
	b, err := os.ReadFile(j.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return Hold{}, false, nil
	}
	if err != nil {
		return Hold{}, false, fmt.Errorf("watchdog: journal: %w", err)
	}
	var h Hold
	if err := json.Unmarshal(b, &h); err != nil {
		return Hold{}, false, fmt.Errorf("watchdog: journal %s: %w", j.path(id), err)
	}
	return h, true, nil
}

// Remove deletes the hold of a container (no error when absent).
func (j Journal) Remove(id string) error {
	if err := os.Remove(j.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("watchdog: journal: %w", err)
	}
	return nil
}

// List returns every hold; unreadable entries are returned as errors joined.
func (j Journal) List() ([]Hold, error) {
	entries, err := os.ReadDir(j.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("watchdog: journal %s: %w", j.Dir, err)
	}
	var out []Hold
	var errs []error
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		h, found, err := j.Get(id)
		if err != nil {
			errs = append(errs, err)
		} else if found {
			out = append(out, h)
		}
	}
	return out, errors.Join(errs...)
}
