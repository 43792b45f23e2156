package worker_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
	"github.com/swarmckpt/swarmckpt/worker/rootfsdiff"
)

var wroteRE = regexp.MustCompile(`wrote (\d+)`)

// copyOut reads one file of a container (running or stopped) through docker cp:
// its content and mode, or ok false when the container has no such file.
func copyOut(t *testing.T, n dockertest.Node, name, path string) (content []byte, mode int64, ok bool) {
	t.Helper()
	cmd := exec.Command("docker", "-H", n.Host, "cp", name+":"+path, "-")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if strings.Contains(errb.String(), "Could not find the file") || strings.Contains(errb.String(), "No such") {
			return nil, 0, false
		}
		t.Fatalf("docker cp %s:%s: %v: %s", name, path, err, errb.String())
	}
	tr := tar.NewReader(&out)
	h, err := tr.Next()
	if err != nil {
		t.Fatalf("docker cp %s:%s: %v", name, path, err)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	return b, h.Mode & 0o7777, true
}

// lastWrote is the last "wrote N" of logs (-1 if none).
func lastWrote(logs string) int {
	m := wroteRE.FindAllStringSubmatch(logs, -1)
	if len(m) == 0 {
		return -1
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// TestWritableLayerMigrates: a process that keeps a file of the container's own
// filesystem open and appends to it (and deleted a file of the image) is dumped on one
// node and restored on another, over each way a set travels: dumped then sent, streamed
// while CRIU writes (DumpTo), and with the pages sent straight to the target (DumpInto).
// The set carries the writable layer (images/rootfs-diff.tar, checksummed with the
// images); the restore succeeds (without the layer CRIU fails: "Can't open file ... No
// such file or directory"), the file's content is exactly the dumped one and the process
// goes on appending to it, and the deleted file stays deleted.
func TestWritableLayerMigrates(t *testing.T) {
	nodes := dockertest.Nodes(t, 2)
	src, dst := nodes[0], nodes[1]
	a, _, _ := daemon(t, src, "src")
	b, _, _ := daemon(t, dst, "dst")
	ctx := dockertest.Context(t, 3*time.Minute)
	bi, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		how  string
		move func(name, set string) (*imageset.Manifest, error)
	}{
		{"dump then send", func(name, set string) (*imageset.Manifest, error) {
			m, err := a.Dump(ctx, name, set, false)
			if err != nil {
				return nil, err
			}
			_, err = a.Send(ctx, set, bi.Addr)
			return m, err
		}},
		{"streamed", func(name, set string) (*imageset.Manifest, error) { return a.DumpTo(ctx, name, set, bi.Addr, false) }},
		// The set's other files, the layer among them, stream to the target as well.
		{"pages into the target", func(name, set string) (*imageset.Manifest, error) { return a.DumpInto(ctx, name, set, bi.Addr) }},
	} {
		t.Run(tc.how, func(t *testing.T) { layerMigrates(t, src, dst, b, tc.move) })
	}
}

func layerMigrates(t *testing.T, src, dst dockertest.Node, b *worker.Client, move func(name, set string) (*imageset.Manifest, error)) {
	ctx := dockertest.Context(t, 2*time.Minute)
	name := fmt.Sprintf("dplayer-%d", time.Now().UnixNano()%100000)
	const dir = "/var/lib/app"
	src.Run(t, name, dockertest.Image, "filewriter", dir)
	src.WaitLog(t, name, 10*time.Second, "writes", func(l string) bool { return lastWrote(l) >= 5 })
	if _, _, ok := copyOut(t, src, name, "/etc/image-file"); ok {
		t.Fatal("the workload did not delete /etc/image-file: the test image lacks it or the workload is old")
	}
	set := name + ".set"
	m, err := move(name, set)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := m.Lookup(rootfsdiff.FileName)
	if !ok || m.Rootfs == nil || !m.Rootfs.Carried || len(f.SHA256) != 64 {
		t.Fatalf("set lists %v (%+v), rootfs %+v: the writable layer is not in the set", ok, f, m.Rootfs)
	}
	if m.Rootfs.Whiteouts < 1 {
		t.Fatalf("rootfs %+v: the deletion of /etc/image-file is not carried", m.Rootfs)
	}
	want, _, ok := copyOut(t, src, name, dir+"/db") // the source exited with the dump
	if !ok || len(want) == 0 {
		t.Fatalf("source's %s/db after the dump: %q, %v", dir, want, ok)
	}
	lines := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
	dumpedLast, _ := strconv.Atoi(strings.TrimPrefix(lines[len(lines)-1], "line "))

	t.Cleanup(func() { _, _ = dst.Docker("rm", "-f", name) })
	if _, err := b.Restore(ctx, set, worker.RestoreOptions{Runtime: "swarmckpt"}); err != nil {
		t.Fatal(err)
	}
	logs := dst.WaitLog(t, name, 20*time.Second, "writes after the restore", func(l string) bool { return lastWrote(l) > dumpedLast+2 })
	if first := wroteRE.FindStringSubmatch(logs); first == nil || first[1] != strconv.Itoa(dumpedLast+1) {
		t.Fatalf("restored process went on with %q, want wrote %d (the dump ended at line %d)", first, dumpedLast+1, dumpedLast)
	}
	got, mode, ok := copyOut(t, dst, name, dir+"/db")
	if !ok || !bytes.HasPrefix(got, want) {
		t.Fatalf("restored %s/db (%d bytes) does not start with the %d bytes dumped", dir, len(got), len(want))
	}
	for i, l := range strings.Split(strings.TrimSuffix(string(got), "\n"), "\n") {
		if l != fmt.Sprintf("line %d", i) {
			t.Fatalf("restored %s/db line %d is %q: lines lost or written twice", dir, i, l)
		}
	}
	if mode != 0o600 {
		t.Errorf("restored %s/db mode %o, want 600", dir, mode)
	}
	if c, mode, ok := copyOut(t, dst, name, dir+"/config"); !ok || string(c) != "written once\n" || mode != 0o640 {
		t.Errorf("restored %s/config = %q mode %o (found %v), want \"written once\" 640", dir, c, mode, ok)
	}
	if _, _, ok := copyOut(t, dst, name, "/etc/image-file"); ok {
		t.Error("/etc/image-file, deleted before the dump, is back after the restore")
	}
	t.Logf("restored with %d bytes of %s/db (+%d since); layer: %d entries, %d bytes of content, tar %d bytes, packed in %.3fs",
		len(want), dir, len(got)-len(want), m.Rootfs.Entries, m.Rootfs.Bytes, f.Size, m.Rootfs.Seconds)
}
