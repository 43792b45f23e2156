package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// BigManifest returns a durable manifest of stack with n containers, each image set
// listing files files, and a record of recordBytes bytes: with n=800 and files=20
// its containers alone are about 2 MiB, more than etcd's default request limit.
func BigManifest(id, stack string, n, files, recordBytes int) *store.Manifest {
	m := &store.Manifest{ID: id, Stack: stack, Algorithm: "blocking", State: store.StateDumping,
		CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	for i := range n {
		c := store.Container{Service: stack + "_svc", Slot: i + 1, Node: fmt.Sprintf("n%d", i%7),
			ContainerID: fmt.Sprintf("%064x", i+1), Image: "swarmckpt/bank:dev",
			IPs: []string{fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}, Networks: []string{stack + "_net"}}
		set := &store.ImageSet{Node: c.Node, Dir: "/var/lib/swarmckpt/images/" + id + "-" + c.Key(), Durable: true}
		for f := range files {
			set.Files = append(set.Files, store.File{Name: fmt.Sprintf("pages-%d.img", f), Size: int64(4096 * (f + 1)), SHA256: sum})
		}
		c.Images = set
		m.Containers = append(m.Containers, c)
	}
	rec := make([]byte, recordBytes)
	for i := range rec {
		rec[i] = byte('a' + i%26)
	}
	if recordBytes > 0 {
		m.Record = rec
	}
	return m
}

// Headers reads no container and no record; a header cannot be written back.
func testHeaders(t *testing.T, f Factory) {
	s, raw := open(t, f)
	m := Manifest("s1", "bank", time.Now())
	MakeDurable(m)
	m.Record = []byte(`{"phase":"active"}`)
	if err := s.Create(ctx(t), m); err != nil {
		t.Fatal(err)
	}
	if m.NContainers != 2 || m.ImageBytes != 8192 {
		t.Fatalf("create left the summary at %d containers, %d bytes; want 2, 8192", m.NContainers, m.ImageBytes)
	}
	if err := s.Create(ctx(t), Manifest("s2", "echo", time.Now().Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	raw("broken", []byte("{not json"))
	hs, err := s.Headers(ctx(t), "bank")
	if err != nil {
		t.Fatal(err)
	}
	if ids := idsOf(hs); ids != "s1,broken" && ids != "broken,s1" {
		t.Fatalf("Headers(bank) = %s, want s1 and the corrupt one", ids)
	}
	var h *store.Manifest
	for _, x := range hs {
		if x.ID == "broken" && x.State != store.StateCorrupt {
			t.Fatalf("corrupt manifest listed as %s", x.State)
		}
		if x.ID == "s1" {
			h = x
		}
	}
	if !h.HeaderOnly() || h.Containers != nil || h.Record != nil {
		t.Fatalf("header has %d containers, record %q, HeaderOnly %v: want none, none, true", len(h.Containers), h.Record, h.HeaderOnly())
	}
	if h.NContainers != 2 || h.ImageBytes != 8192 || h.Stack != "bank" || h.Revision != m.Revision {
		t.Fatalf("header %+v: want 2 containers, 8192 bytes, stack bank, revision %d", h, m.Revision)
	}
	if err := s.Update(ctx(t), h); !errors.Is(err, store.ErrHeaderOnly) {
		t.Fatalf("update of a header: %v, want ErrHeaderOnly", err)
	}
	lock, err := s.LockStack(ctx(t), "bank", "test", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock(ctx(t))
	if err := s.Commit(ctx(t), h, lock); !errors.Is(err, store.ErrHeaderOnly) {
		t.Fatalf("commit of a header: %v, want ErrHeaderOnly", err)
	}
	got, err := s.Get(ctx(t), "s1")
	if err != nil || len(got.Containers) != 2 || string(got.Record) != `{"phase":"active"}` || got.HeaderOnly() {
		t.Fatalf("get after the refused header writes: %+v %v", got, err)
	}
	all, _ := s.Headers(ctx(t), "")
	if len(all) != 3 {
		t.Fatalf("Headers(all) = %s, want 3", idsOf(all))
	}
}

// A manifest larger than one etcd request (default limit 1.5 MiB) with a large
// record is stored, changed, committed, read back whole and removed whole.
func testLargeManifest(t *testing.T, f Factory) {
	s, _ := open(t, f)
	m := BigManifest("big", "bank", 800, 20, 2<<20)
	if b, _ := json.Marshal(m); len(b) < 3<<20 {
		t.Fatalf("test manifest is only %d bytes", len(b))
	}
	if err := s.Create(ctx(t), m); err != nil {
		t.Fatalf("create of a %d-container manifest: %v", len(m.Containers), err)
	}
	same := func(what string, want *store.Manifest) {
		t.Helper()
		got, err := s.Get(ctx(t), want.ID)
		if err != nil {
			t.Fatalf("%s: get: %v", what, err)
		}
		if !reflect.DeepEqual(got.Containers, want.Containers) || string(got.Record) != string(want.Record) || got.Revision != want.Revision || got.State != want.State {
			t.Fatalf("%s: read back %d containers, %d record bytes, revision %d, state %s; want %d, %d, %d, %s",
				what, len(got.Containers), len(got.Record), got.Revision, got.State, len(want.Containers), len(want.Record), want.Revision, want.State)
		}
	}
	same("after create", m)
	m.Containers[417].IPs = []string{"10.99.0.1"}
	m.Containers = append(m.Containers, m.Containers[0])
	m.Containers[len(m.Containers)-1].Slot = 9999
	m.Record = m.Record[:len(m.Record)-100]
	if err := s.Update(ctx(t), m); err != nil {
		t.Fatalf("update: %v", err)
	}
	same("after update", m)
	lock, err := s.LockStack(ctx(t), "bank", "test", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock(ctx(t))
	m.Containers[3].FreezeMS = 42
	if err := s.Commit(ctx(t), m, lock); err != nil {
		t.Fatalf("commit: %v", err)
	}
	same("after commit", m)
	hs, err := s.Headers(ctx(t), "bank")
	if err != nil || len(hs) != 1 || hs[0].NContainers != 801 || hs[0].State != store.StateCommitted || hs[0].ImageBytes != m.Bytes() {
		t.Fatalf("headers: %+v %v; want one committed header of 801 containers, %d bytes", hs, err, m.Bytes())
	}
	ls, err := s.List(ctx(t), "bank")
	if err != nil || len(ls) != 1 || len(ls[0].Containers) != 801 || ls[0].Containers[417].IPs[0] != "10.99.0.1" {
		t.Fatalf("list: %d manifests, %v", len(ls), err)
	}
	if err := s.Delete(ctx(t), "big"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx(t), "big"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
	small := Manifest("big", "bank", time.Now())
	if err := s.Create(ctx(t), small); err != nil {
		t.Fatalf("create again under the removed id: %v", err)
	}
	same("a small manifest under a removed big one's id", small)
}

// A record written whole in one value (before per-container records) is read,
// listed, changed and removed.
func testOldRecord(t *testing.T, f Factory) {
	s, raw := open(t, f)
	m := Manifest("old", "bank", time.Now())
	MakeDurable(m)
	m.State, m.Record = store.StateCommitted, []byte("rec")
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "n_containers") {
		t.Fatal("an old record has no summary")
	}
	raw("old", b)
	got, err := s.Get(ctx(t), "old")
	if err != nil || len(got.Containers) != 2 || string(got.Record) != "rec" {
		t.Fatalf("get of an old record: %+v %v", got, err)
	}
	hs, err := s.Headers(ctx(t), "bank")
	if err != nil || len(hs) != 1 || hs[0].NContainers != 2 || hs[0].ImageBytes != 8192 || hs[0].Containers != nil {
		t.Fatalf("headers of an old record: %+v %v; want 2 containers, 8192 bytes, no container list", hs, err)
	}
	got.Restores = append(got.Restores, store.Restore{OK: true})
	if err := s.Update(ctx(t), got); err != nil {
		t.Fatalf("update of an old record: %v", err)
	}
	again, err := s.Get(ctx(t), "old")
	if err != nil || len(again.Containers) != 2 || string(again.Record) != "rec" || len(again.Restores) != 1 {
		t.Fatalf("old record after an update: %+v %v", again, err)
	}
	if err := s.Delete(ctx(t), "old"); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.List(ctx(t), ""); len(all) != 0 {
		t.Fatalf("after delete: %s", idsOf(all))
	}
}
