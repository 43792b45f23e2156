package imageset_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// receivedUnhashed makes a set as a direct transfer's receiver leaves it with page
// digests after the restore: pages-1.img and pages-2.img listed by size only (a
// page server wrote them; dump.FollowSizes), inventory.img hashed. It returns the set
// as its receiver holds it (stamps of the files as they arrived).
func receivedUnhashed(t *testing.T) imageset.Verified {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "set")
	must(t, os.MkdirAll(imageset.ImagesPath(dir), 0o700))
	pages := map[string][]byte{"pages-1.img": bytes.Repeat([]byte("p"), 3<<20+7), "pages-2.img": bytes.Repeat([]byte("q"), 4096)}
	known := map[string]imageset.File{}
	for name, b := range pages {
		must(t, os.WriteFile(filepath.Join(imageset.ImagesPath(dir), name), b, 0o600))
		known[name] = imageset.File{Name: name, Size: int64(len(b))}
	}
	must(t, os.WriteFile(filepath.Join(imageset.ImagesPath(dir), "inventory.img"), []byte("inv"), 0o600))
	m := &imageset.Manifest{ContainerID: "cid", Spec: container.Spec{Image: "img"}, PagesReceivedBy: "b"}
	must(t, imageset.SealKnown(dir, m, known))
	if !m.PagesUnhashed {
		t.Fatalf("sealed with pages without digests, but not marked PagesUnhashed: %+v", m)
	}
	v, err := imageset.Sealed(dir, m)
	must(t, err)
	return v
}

func TestLateHashUnverifiedUntilHashed(t *testing.T) {
	v := receivedUnhashed(t)
	if !v.Unhashed() {
		t.Fatal("received set does not say it is unhashed")
	}
	if _, err := imageset.Verify(v.Dir()); !errors.Is(err, imageset.ErrUnhashed) {
		t.Fatalf("Verify before the hash: %v, want ErrUnhashed", err)
	}
	if _, err := imageset.Check(v.Dir()); !errors.Is(err, imageset.ErrUnhashed) {
		t.Fatalf("Check before the hash: %v, want ErrUnhashed", err)
	}
	// Its receiver's own first restore trusts it as received (a stat per file).
	if got, err := imageset.Recheck(v); err != nil || !got.Unhashed() {
		t.Fatalf("Recheck by the receiver before the hash: %v (unhashed %v)", err, got.Unhashed())
	}

	hv, err := imageset.HashLate(context.Background(), v)
	if err != nil {
		t.Fatal(err)
	}
	if hv.Unhashed() {
		t.Fatal("still unhashed after HashLate")
	}
	m, err := imageset.Verify(v.Dir())
	if err != nil {
		t.Fatalf("Verify after the hash: %v", err)
	}
	if m.PagesUnhashed || m.PagesReceivedBy != "b" || len(m.Files) != 3 {
		t.Fatalf("manifest after the hash: %+v", m)
	}
	for _, f := range m.Files {
		size, sum, err := imageset.HashFile(filepath.Join(imageset.ImagesPath(v.Dir()), f.Name))
		must(t, err)
		if f.Size != size || f.SHA256 != sum {
			t.Errorf("%s recorded %d %s, is %d %s", f.Name, f.Size, f.SHA256, size, sum)
		}
	}
	fi, err := os.Stat(filepath.Join(v.Dir(), imageset.ManifestName))
	must(t, err)
	if fi.Mode().Perm() != imageset.FileMode {
		t.Errorf("manifest mode %v, want %v", fi.Mode().Perm(), imageset.FileMode)
	}
	if _, err := imageset.Recheck(hv); err != nil {
		t.Fatalf("Recheck of the hashed set: %v", err)
	}
}

func TestLateHashInterruptedLeavesItUnverified(t *testing.T) {
	for _, c := range []struct {
		name    string
		breakIt func(t *testing.T, v imageset.Verified) context.Context
		want    error
	}{
		{"Cancelled", func(t *testing.T, v imageset.Verified) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, context.Canceled},
		{"SecondFileGone", func(t *testing.T, v imageset.Verified) context.Context {
			// pages-1.img is hashed, then reading pages-2.img fails: nothing is recorded.
			must(t, os.Remove(filepath.Join(imageset.ImagesPath(v.Dir()), "pages-2.img")))
			return context.Background()
		}, os.ErrNotExist},
		{"ChangedSinceReceived", func(t *testing.T, v imageset.Verified) context.Context {
			p := filepath.Join(imageset.ImagesPath(v.Dir()), "pages-2.img")
			must(t, os.WriteFile(p, bytes.Repeat([]byte("Q"), 4096), 0o600))
			return context.Background()
		}, imageset.ErrChecksum},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := receivedUnhashed(t)
			before, err := os.ReadFile(filepath.Join(v.Dir(), imageset.ManifestName))
			must(t, err)
			if _, err := imageset.HashLate(c.breakIt(t, v), v); !errors.Is(err, c.want) {
				t.Fatalf("HashLate: %v, want %v", err, c.want)
			}
			after, err := os.ReadFile(filepath.Join(v.Dir(), imageset.ManifestName))
			must(t, err)
			if !bytes.Equal(before, after) {
				t.Fatalf("an interrupted hash changed the manifest:\n%s\n->\n%s", before, after)
			}
			// What a worker that starts afresh (the old one died mid-hash) finds.
			if _, err := imageset.Check(v.Dir()); !errors.Is(err, imageset.ErrUnhashed) {
				t.Fatalf("Check after an interrupted hash: %v, want ErrUnhashed", err)
			}
		})
	}
}

func TestLateHashThenCorruptedByteIsCaught(t *testing.T) {
	v := receivedUnhashed(t)
	hv, err := imageset.HashLate(context.Background(), v)
	must(t, err)
	p := filepath.Join(imageset.ImagesPath(v.Dir()), "pages-1.img")
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt([]byte("X"), 1<<20)
	must(t, err)
	must(t, f.Close())
	if _, err := imageset.Check(v.Dir()); !errors.Is(err, imageset.ErrChecksum) {
		t.Fatalf("Check of a set corrupted after its hash: %v, want ErrChecksum", err)
	}
	if _, err := imageset.Recheck(hv); !errors.Is(err, imageset.ErrChecksum) {
		t.Fatalf("Recheck of a set corrupted after its hash: %v, want ErrChecksum", err)
	}
}

func TestManifestWithoutDigestNeedsTheMark(t *testing.T) {
	v := receivedUnhashed(t)
	m := *v.Manifest()
	m.PagesUnhashed = false
	must(t, imageset.WriteManifest(v.Dir(), &m))
	if _, err := imageset.ReadManifest(v.Dir()); !errors.Is(err, imageset.ErrManifest) {
		t.Fatalf("a manifest with an empty digest and no PagesUnhashed: %v, want ErrManifest", err)
	}
}

// TestResumeLateNeedsArrivalStamps: a set whose unhashed pages carry no stamp of their
// arrival (received by a worker older than Manifest.PagesReceived; here sealed by
// SealKnown) cannot have its hash resumed by another process: ErrUnhashed, and the
// set stays refused. A hashed set is not resumed either.
func TestResumeLateNeedsArrivalStamps(t *testing.T) {
	v := receivedUnhashed(t)
	if _, err := imageset.ResumeLate(v.Dir()); !errors.Is(err, imageset.ErrUnhashed) {
		t.Fatalf("ResumeLate of a set without arrival stamps: %v, want ErrUnhashed", err)
	}
	if _, err := imageset.Verify(v.Dir()); !errors.Is(err, imageset.ErrUnhashed) {
		t.Fatalf("Verify after a refused resume: %v, want ErrUnhashed", err)
	}
	if _, err := imageset.HashLate(context.Background(), v); err != nil {
		t.Fatal(err)
	}
	if _, err := imageset.ResumeLate(v.Dir()); err == nil {
		t.Fatal("ResumeLate of a hashed set: nil, want an error")
	}
}
