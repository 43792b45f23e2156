package worker_test

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/internal/dockertest"
)

// TestCarriedVolumeMigrates: a process that keeps a file of a local named volume open
// and appends to it is dumped on one node with its volumes carried, the set sent to
// another node and restored there: the volume is recreated on that node with the
// dumped content before the container, the restore succeeds (without the volume's file
// CRIU cannot reopen it), the file holds exactly the dumped lines and the process goes
// on appending. The carried tar is a checksummed file of the set.
func TestCarriedVolumeMigrates(t *testing.T) {
	nodes := dockertest.Nodes(t, 2)
	src, dst := nodes[0], nodes[1]
	a, _, _ := daemon(t, src, "src")
	b, _, _ := daemon(t, dst, "dst")
	ctx := dockertest.Context(t, 3*time.Minute)
	bi, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, streamed := range []bool{false, true} {
		t.Run(map[bool]string{false: "dump then send", true: "streamed"}[streamed], func(t *testing.T) {
			volumeMigrates(t, src, dst, a, b, bi.Addr, streamed)
		})
	}
}

func volumeMigrates(t *testing.T, src, dst dockertest.Node, a, b *worker.Client, addr string, streamed bool) {
	ctx := dockertest.Context(t, 2*time.Minute)
	name := fmt.Sprintf("dpvol-%d", time.Now().UnixNano()%100000)
	vol := name + "_data"
	const dir = "/var/lib/app"
	t.Cleanup(func() {
		_, _ = dst.Docker("rm", "-f", name)
		_, _ = src.Docker("rm", "-f", name)
		_, _ = src.Docker("volume", "rm", "-f", vol)
		_, _ = dst.Docker("volume", "rm", "-f", vol)
	})
	src.Run(t, name, "-v", vol+":"+dir, "-w", dir, dockertest.Image, "filewriter", dir) // its cwd in the volume too (redis: --dir)
	src.WaitLog(t, name, 10*time.Second, "writes", func(l string) bool { return lastWrote(l) >= 5 })

	set := name + ".set"
	o := worker.DumpOptions{CarryVolumes: true}
	if streamed {
		o.StreamTo = addr // the volume's tar streams with the images
	}
	m, err := a.DumpWith(ctx, name, set, o)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := m.Lookup(imageset.VolumeFile(vol))
	if !ok || len(m.Volumes) != 1 || m.Volumes[0].Name != vol || m.Volumes[0].Target != dir || len(f.SHA256) != 64 {
		t.Fatalf("set lists %v (%+v), volumes %+v: the volume is not carried", ok, f, m.Volumes)
	}
	want, _, ok := copyOut(t, src, name, dir+"/db") // the source exited with the dump
	if !ok || len(want) == 0 {
		t.Fatalf("source's %s/db after the dump: %q, %v", dir, want, ok)
	}
	lines := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
	dumpedLast, _ := strconv.Atoi(strings.TrimPrefix(lines[len(lines)-1], "line "))
	if !streamed {
		if _, err := a.Send(ctx, set, addr); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := dst.Docker("volume", "inspect", vol); err == nil {
		t.Fatalf("node %s has volume %s before the restore: %s", dst.Host, vol, out)
	}

	if _, err := b.Restore(ctx, set, worker.RestoreOptions{Runtime: "swarmckpt"}); err != nil {
		t.Fatal(err)
	}
	logs := dst.WaitLog(t, name, 20*time.Second, "writes after the restore", func(l string) bool { return lastWrote(l) > dumpedLast+2 })
	if first := wroteRE.FindStringSubmatch(logs); first == nil || first[1] != strconv.Itoa(dumpedLast+1) {
		t.Fatalf("restored process went on with %q, want wrote %d (the dump ended at line %d)", first, dumpedLast+1, dumpedLast)
	}
	got, _, ok := copyOut(t, dst, name, dir+"/db")
	if !ok || !bytes.HasPrefix(got, want) {
		t.Fatalf("restored %s/db (%d bytes) does not start with the %d bytes dumped", dir, len(got), len(want))
	}
	for i, l := range strings.Split(strings.TrimSuffix(string(got), "\n"), "\n") {
		if l != fmt.Sprintf("line %d", i) {
			t.Fatalf("restored %s/db line %d is %q: lines lost or written twice", dir, i, l)
		}
	}
	if out, err := dst.Docker("volume", "inspect", "--format", "{{.Driver}} {{index .Labels \"swarmckpt.carried-from\"}}", vol); err != nil || !strings.HasPrefix(out, "local ") {
		t.Fatalf("volume %s on %s: %q %v, want a local volume labelled with its set", vol, dst.Host, out, err)
	}
	t.Logf("restored with %d bytes of %s/db in volume %s (+%d since); carried: %d entries, %d bytes, tar %d bytes, packed in %.3fs",
		len(want), dir, vol, len(got)-len(want), m.Volumes[0].Entries, m.Volumes[0].Bytes, f.Size, m.Volumes[0].Seconds)
}
