package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// Fake is an in-memory Restorer: it tracks names and IPs of the containers it restored,
// knows a set of images, and consumes sets by moving them under Consumed.
type Fake struct {
	// Images present on the fake node.
	Images map[string]bool
	// Consumed is where restored sets are moved.
	Consumed string
	// FailStart, when set, fails every restore after its container was created (as a
	// runtime failure would), leaving the set in place.
	FailStart error

	mu    sync.Mutex
	names map[string]bool
	ids   map[string]string // id -> name
	ips   map[string]string // "net/ip" -> name
	next  int
	// chains are the pre-dump chain lengths of the pre-copy sets restored, in order.
	chains []int
}

var _ Restorer = (*Fake)(nil)

// NewFake returns a Fake knowing images, consuming sets into dir.
func NewFake(dir string, images ...string) *Fake {
	f := &Fake{Images: map[string]bool{}, Consumed: dir, names: map[string]bool{}, ids: map[string]string{}, ips: map[string]string{}}
	for _, i := range images {
		f.Images[i] = true
	}
	return f
}

// Exists tells whether a container of that name was restored.
func (f *Fake) Exists(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.names[name]
}

// PreDumpChains returns the pre-dump chain lengths of the pre-copy sets restored
// (imageset.Manifest.PreDumps), each linked and read through before its restore.
func (f *Fake) PreDumpChains() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.chains...)
}

// Restore implements Restorer.
func (f *Fake) Restore(_ context.Context, v imageset.Verified, opts Options) (container.Ref, error) {
	if !v.Valid() {
		return container.Ref{}, ErrUnverified
	}
	spec := v.Manifest().Spec
	name := opts.Name
	if name == "" {
		name = spec.Name
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.Images[spec.Image] {
		return container.Ref{}, fmt.Errorf("restore of %s: %w: %s", name, ErrNoImage, spec.Image)
	}
	if f.names[name] {
		return container.Ref{}, fmt.Errorf("restore of %s: %w", name, ErrNameTaken)
	}
	for _, n := range spec.Networks {
		if holder, ok := f.ips[n.Name+"/"+n.IPv4]; ok && n.IPv4 != "" {
			return container.Ref{}, fmt.Errorf("restore of %s: %w: %s held by %s", name, ErrIPTaken, n.IPv4, holder)
		}
	}
	if err := os.MkdirAll(f.Consumed, imageset.DirMode); err != nil {
		return container.Ref{}, err
	}
	f.next++
	ref := container.Ref{ID: fmt.Sprintf("fake%060d", f.next), Name: name, Pid: 1000 + f.next}
	if opts.Created != nil {
		if err := opts.Created(container.Ref{ID: ref.ID, Name: name}); err != nil {
			return container.Ref{}, fmt.Errorf("restore of %s: %w", name, err)
		}
	}
	if f.FailStart != nil {
		return container.Ref{}, fmt.Errorf("restore of %s: %w: %w", name, ErrRestore, f.FailStart)
	}
	dir := v.Dir()
	if !opts.Keep {
		dir = filepath.Join(f.Consumed, fmt.Sprint(name, ".", f.next))
		if err := os.Rename(v.Dir(), dir); err != nil {
			return container.Ref{}, err
		}
	}
	if n := v.Manifest().PreDumps; n > 0 {
		// As the real restore: the pre-dump chain linked where the set is restored,
		// the final dump's parent images readable through it.
		images := imageset.ImagesPath(dir)
		err := imageset.LinkParents(images, n)
		if err == nil {
			_, err = os.Stat(filepath.Join(images, imageset.ParentLink, "pages-1.img"))
		}
		if opts.Keep {
			err = errors.Join(err, imageset.UnlinkParents(images, n))
		}
		if err != nil {
			return container.Ref{}, fmt.Errorf("restore of %s: %w: pre-dump chain: %w", name, ErrRestore, err)
		}
		f.chains = append(f.chains, n)
	}
	f.names[name] = true
	f.ids[ref.ID] = name
	for _, n := range spec.Networks {
		if n.IPv4 != "" {
			f.ips[n.Name+"/"+n.IPv4] = name
		}
	}
	return ref, nil
}

// Remove implements Restorer: the container's name and addresses are free again.
func (f *Fake) Remove(_ context.Context, c string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := c
	if n, ok := f.ids[c]; ok {
		name = n
	}
	delete(f.names, name)
	for id, n := range f.ids {
		if n == name {
			delete(f.ids, id)
		}
	}
	for k, n := range f.ips {
		if n == name {
			delete(f.ips, k)
		}
	}
	return nil
}
