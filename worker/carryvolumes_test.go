package worker_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/restore"
)

// TestCarriedVolumeIsRecreatedElsewhere: a dump asked to carry volumes packs the
// container's local named volume into its set (a 0600 file of the set, hashed like the
// others; other volumes untouched); a restore of that set on another node recreates the
// volume with that content before the container is restored; a second restore there
// is refused (the volume holds data now, not ours to replace); a restore that fails
// removes the volume it created; a plain dump carries nothing.
func TestCarriedVolumeIsRecreatedElsewhere(t *testing.T) {
	ctx := context.Background()
	a, b := newFakeNode(t, "a"), newFakeNode(t, "b")
	dataRoot := filepath.Join(filepath.Dir(a.journal), "data")
	vol := filepath.Join(dataRoot, "volumes", "db_data", "_data")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(vol, "member", "snap"), 0o755))
	must(os.WriteFile(filepath.Join(vol, "member", "snap", "db"), []byte("every key"), 0o640))
	must(os.WriteFile(filepath.Join(vol, "top"), []byte("x"), 0o600))
	must(os.Chmod(vol, os.ModeSetgid|0o750)) // the root's own mode travels too (CRIU checks a cwd's)
	ref := container.Ref{ID: strings.Repeat("d", 64), Name: "db", Pid: 42}
	a.insp.Add(ref, container.Spec{Name: "db", Image: "img", Mounts: []container.Mount{
		{Type: "volume", Source: "db_data", Target: "/var/lib/db"},
		{Type: "volume", Source: "shared", Target: "/shared", Driver: "nfs"},
		{Type: "tmpfs", Target: "/run"},
	}})

	m, err := a.w.DumpWith(ctx, "db", "s1.db.1", worker.DumpOptions{LeaveRunning: true, CarryVolumes: true})
	must(err)
	if len(m.Volumes) != 1 || m.Volumes[0].Name != "db_data" || m.Volumes[0].Target != "/var/lib/db" || m.Volumes[0].Bytes != int64(len("every key")+1) {
		t.Fatalf("manifest volumes %+v, want db_data at /var/lib/db with its 10 bytes", m.Volumes)
	}
	set := filepath.Join(a.w.SetsDir(), "s1.db.1")
	fi, err := os.Stat(filepath.Join(imageset.ImagesPath(set), imageset.VolumeFile("db_data")))
	must(err)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("volume tar mode %v, want 0600", fi.Mode().Perm())
	}
	listed := false
	for _, f := range m.Files {
		listed = listed || (f.Name == imageset.VolumeFile("db_data") && f.SHA256 != "" && f.Size == fi.Size())
	}
	if !listed {
		t.Fatalf("the volume tar is not in the manifest's files with its checksum: %+v", m.Files)
	}
	if _, err := imageset.Verify(set); err != nil {
		t.Fatalf("set with a carried volume does not verify: %v", err)
	}

	// On another node: the volume comes back with its content, before the container.
	copySet(t, set, filepath.Join(b.w.SetsDir(), "s1.db.1"))
	if _, err := b.w.Restore(ctx, "s1.db.1", worker.RestoreOptions{Name: "db-r1", Keep: true}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(b.restorer.VolumesDir(), "db_data", "member", "snap", "db"))
	if err != nil || string(got) != "every key" {
		t.Fatalf("recreated volume: %q, %v; want the carried content", got, err)
	}
	if fi, err := os.Stat(filepath.Join(b.restorer.VolumesDir(), "db_data", "member", "snap", "db")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("recreated file mode: %v %v, want 0640 as it was", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(b.restorer.VolumesDir(), "db_data")); err != nil || fi.Mode()&(os.ModePerm|os.ModeSetgid) != 0o750|os.ModeSetgid {
		t.Fatalf("recreated volume root: %v %v, want drwxr-s--- as it was", fi, err)
	}
	// Again on that node: the volume holds data now.
	if _, err := b.w.Restore(ctx, "s1.db.1", worker.RestoreOptions{Name: "db-r2", Keep: true}); !errors.Is(err, restore.ErrVolumeInUse) {
		t.Fatalf("second restore over a volume with data: %v, want ErrVolumeInUse", err)
	}
	// A restore that fails takes back the volume it created.
	must(os.RemoveAll(filepath.Join(b.restorer.VolumesDir(), "db_data")))
	b.restorer.FailStart = errors.New("runtime failed")
	if _, err := b.w.Restore(ctx, "s1.db.1", worker.RestoreOptions{Name: "db-r3", Keep: true}); err == nil {
		t.Fatal("restore with a failing runtime succeeded")
	}
	if _, err := os.Stat(filepath.Join(b.restorer.VolumesDir(), "db_data")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed restore left the volume it created: %v", err)
	}

	// Without the option nothing is carried.
	plain, err := a.w.DumpWith(ctx, "db", "s2.db.1", worker.DumpOptions{LeaveRunning: true})
	must(err)
	if len(plain.Volumes) != 0 {
		t.Fatalf("a plain dump carried %+v", plain.Volumes)
	}
	if _, err := os.Stat(filepath.Join(imageset.ImagesPath(filepath.Join(a.w.SetsDir(), "s2.db.1")), imageset.VolumeFile("db_data"))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a plain dump wrote a volume tar: %v", err)
	}
}

// TestCarryVolumesRefusesAVolumeWithoutItsDirectory: a local volume whose directory is
// not the local driver's (created with driver options) is refused by name before
// anything is dumped.
func TestCarryVolumesRefusesAVolumeWithoutItsDirectory(t *testing.T) {
	a := newFakeNode(t, "a")
	a.insp.Add(container.Ref{ID: strings.Repeat("e", 64), Name: "db", Pid: 42}, container.Spec{Name: "db", Image: "img",
		Mounts: []container.Mount{{Type: "volume", Source: "nodir", Target: "/d"}}})
	_, err := a.w.DumpWith(context.Background(), "db", "s1.db.1", worker.DumpOptions{LeaveRunning: true, CarryVolumes: true})
	if err == nil || !strings.Contains(err.Error(), "carry volume nodir of db") {
		t.Fatalf("err %v, want the volume named", err)
	}
	if _, serr := os.Stat(filepath.Join(a.w.SetsDir(), "s1.db.1")); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("a refused dump left a set: %v", serr)
	}
}

func copySet(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
}
