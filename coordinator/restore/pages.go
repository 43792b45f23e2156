package restore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Page digests filled in after the restore (migrate --copy direct).
//
// A direct migration's target receives the memory pages from CRIU's page server and,
// by default, hashes them only after the restore that follows (worker --page-digests
// after-restore), off the migration's critical path. The snapshot therefore commits
// with those sets' page files recorded by size only (store ImageSet.PagesPending,
// counted in the header's PagesPending); the target's worker keeps the digests with
// the set (its manifest.json) once it computed them. FillPages asks the node holding
// each such set for them (node.VerifyRequest.Digests, which waits for the hash) and
// writes them into the record. It runs after each direct migration and on every pass
// of the coordinator's pages loop (coordinator/pages.go: at start, so a coordinator
// killed meanwhile loses nothing, and periodically), and before a restore or
// `inspect --verify` of such a snapshot. A set whose pages can never be hashed (its
// worker ended before the hash and could not resume it, or a file changed since it
// arrived) is recorded as unverified (ImageSet.PagesUnverified): a restore from it is
// refused, inspect shows why.

// pagesWait bounds the wait of a restore for a node's page digests (FillPages).
const pagesWait = 2 * time.Minute

// ErrPagesPending: a snapshot's page digests are not in its record yet (their node has
// not hashed them, or cannot be reached).
var ErrPagesPending = errors.New("restore: the snapshot's page digests are still pending")

// FillPages fills into snapshot id's record the page digests of every set recorded
// with PagesPending, asking the node that holds it (bounded by timeout per node; the
// nodes in parallel), and returns the record as stored then. Digests that arrive are
// written (a changed record is read again and the change applied again); a set
// whose node says its pages will never be hashed, or whose files do not match the
// record, is marked PagesUnverified. The error (ErrPagesPending) names the sets
// still pending and why; nil when none is.
func FillPages(ctx context.Context, st store.Snapshots, n Checks, id string, timeout time.Duration) (*store.Manifest, error) {
	m, err := st.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	type result struct {
		key   string
		files []store.File
		bad   string // unverified: why
		err   error  // still pending: why
	}
	var results []result
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range m.Containers {
		if c.Images == nil || !c.Images.PagesPending || c.Images.PagesUnverified != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := result{key: c.Key()}
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			rep, err := n.Verify(cctx, c.Images.Node, node.VerifyRequest{Set: filepath.Base(c.Images.Dir), Digests: true})
			switch {
			case errors.Is(err, node.ErrPagesUnhashed) || errors.Is(err, node.ErrNoSuchSet):
				r.bad = fmt.Sprintf("node %s: %v", c.Images.Node, err)
			case err != nil:
				r.err = fmt.Errorf("node %s: %w", c.Images.Node, err)
			default:
				if ferr := pageFilesMatch(c.Images.Files, rep.Files); ferr != nil {
					r.bad = fmt.Sprintf("node %s: %v", c.Images.Node, ferr)
				} else {
					r.files = rep.Files
				}
			}
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(results) == 0 {
		return m, pendingErr(m, nil)
	}
	byKey := map[string]result{}
	var pending []string
	for _, r := range results {
		byKey[r.key] = r
		if r.err != nil {
			pending = append(pending, fmt.Sprintf("%s (%v)", r.key, r.err))
		}
	}
	for attempt := 0; ; attempt++ {
		changed := false
		for i := range m.Containers {
			c := &m.Containers[i]
			r, ok := byKey[c.Key()]
			if !ok || c.Images == nil || !c.Images.PagesPending || c.Images.PagesUnverified != "" {
				continue
			}
			img := *c.Images
			switch {
			case r.files != nil:
				img.Files, img.PagesPending = r.files, false
			case r.bad != "":
				img.PagesUnverified = r.bad
			default:
				continue
			}
			c.Images, changed = &img, true
		}
		if !changed {
			break
		}
		err := st.Update(ctx, m)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrConflict) || attempt >= 5 {
			return m, fmt.Errorf("record the page digests of snapshot %s: %w", id, err)
		}
		if m, err = st.Get(ctx, id); err != nil {
			return nil, err
		}
	}
	return m, pendingErr(m, pending)
}

// pendingErr is FillPages' error for m: nil when no set of m is pending any more.
func pendingErr(m *store.Manifest, why []string) error {
	var keys []string
	for _, c := range m.Containers {
		if c.Images != nil && c.Images.PagesPending && c.Images.PagesUnverified == "" {
			keys = append(keys, c.Key())
		}
	}
	if len(keys) == 0 {
		return nil
	}
	if len(why) == 0 {
		why = keys
	}
	return fmt.Errorf("%w: snapshot %s: the memory pages of %s were received by a direct migration and their digests are not in the record yet: %s", ErrPagesPending, m.ID, strings.Join(keys, ", "), strings.Join(why, "; "))
}

// pageFilesMatch checks a set's files as its node reports them once its pages are
// hashed (got) against the record (want): the same names and sizes, the digests the
// record has, and a valid digest for every file.
func pageFilesMatch(want, got []store.File) error {
	byName := make(map[string]store.File, len(got))
	for _, f := range got {
		byName[f.Name] = f
	}
	if len(got) != len(want) {
		return fmt.Errorf("the set lists %d files, the snapshot's record %d: the set was changed", len(got), len(want))
	}
	for _, w := range want {
		g, ok := byName[w.Name]
		switch {
		case !ok:
			return fmt.Errorf("file %s of the snapshot is missing from the set", w.Name)
		case g.Size != w.Size:
			return fmt.Errorf("file %s has %d bytes, the snapshot's record %d", w.Name, g.Size, w.Size)
		case w.SHA256 != "" && !strings.EqualFold(g.SHA256, w.SHA256):
			return fmt.Errorf("file %s differs from the snapshot's record (sha256 %.12s, record %.12s)", w.Name, g.SHA256, w.SHA256)
		case w.SHA256 == "" && !protocol.PendingPageFile(w.Name):
			return fmt.Errorf("file %s has no digest in the record and is not a page file", w.Name)
		}
		if b, err := hex.DecodeString(g.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("file %s: the node reports no valid sha256 (%q)", w.Name, g.SHA256)
		}
	}
	return nil
}

// PagesNotVerified says why a restore from m cannot verify every set's pages: a set
// whose pages can never be hashed (PagesUnverified), or one still pending. Empty:
// every set's record has every digest.
func PagesNotVerified(m *store.Manifest) string {
	var out []string
	for _, c := range m.Containers {
		switch {
		case c.Images == nil:
		case c.Images.PagesUnverified != "":
			out = append(out, fmt.Sprintf("%s: its memory pages were never hashed and cannot be verified (%s)", c.Key(), c.Images.PagesUnverified))
		case c.Images.PagesPending:
			out = append(out, fmt.Sprintf("%s: its page digests are still pending on node %s", c.Key(), c.Images.Node))
		}
	}
	return strings.Join(out, "; ")
}

// containerOf returns the container of m named key (SERVICE.SLOT), nil if none.
func containerOf(m *store.Manifest, key string) *store.Container {
	for i := range m.Containers {
		if m.Containers[i].Key() == key {
			return &m.Containers[i]
		}
	}
	return nil
}
