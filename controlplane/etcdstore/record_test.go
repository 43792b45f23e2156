package etcdstore_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/swarmckpt/swarmckpt/controlplane/etcdstore"
	"github.com/swarmckpt/swarmckpt/controlplane/store/storetest"
)

// A manifest that one etcd value cannot hold (etcd refuses the single-value put) is
// stored as a small header and parts, each far below the limit; changes leave no
// unnamed part behind, and rm leaves no key of the snapshot.
func TestEtcdRecordLayout(t *testing.T) {
	cfg := startEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := etcdstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := storetest.BigManifest("big", "bank", 1000, 20, 1<<20)
	whole, _ := json.Marshal(m)
	if _, err := s.Client().Put(ctx, "/whole/big", string(whole)); err == nil || !strings.Contains(err.Error(), "large") {
		t.Fatalf("etcd accepted the %d-byte manifest in one value (%v): this test needs its default request limit", len(whole), err)
	}
	if err := s.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		m.Containers[i*200].FreezeMS = int64(i + 1)
		if err := s.Update(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	keys := func() (hdr int, parts []int) {
		t.Helper()
		r, err := s.Client().Get(ctx, etcdstore.DefaultPrefix+"/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range r.Kvs {
			switch k := string(kv.Key); {
			case k == etcdstore.DefaultPrefix+"/snapshots/big":
				hdr = len(kv.Value)
			case strings.HasPrefix(k, etcdstore.DefaultPrefix+"/parts/big/"):
				parts = append(parts, len(kv.Value))
			}
		}
		return hdr, parts
	}
	hdr, parts := keys()
	var h struct {
		Parts struct{ Containers, Record []json.RawMessage }
	}
	r, _ := s.Client().Get(ctx, etcdstore.DefaultPrefix+"/snapshots/big")
	if err := json.Unmarshal(r.Kvs[0].Value, &h); err != nil {
		t.Fatal(err)
	}
	if named := len(h.Parts.Containers) + len(h.Parts.Record); named != len(parts) || named < 10 {
		t.Fatalf("%d part keys stored, header names %d: want every stored part named, none left over", len(parts), named)
	}
	if hdr > 16<<10 {
		t.Fatalf("header of 1000 containers is %d bytes: want it small", hdr)
	}
	for _, n := range parts {
		if n > 512<<10 {
			t.Fatalf("a part of %d bytes: want each well below the request limit", n)
		}
	}
	got, err := s.Get(ctx, "big")
	if err != nil || got.Containers[800].FreezeMS != 5 || len(got.Containers) != 1000 {
		t.Fatalf("get: %v", err)
	}
	if err := s.Delete(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	if hdr, parts := keys(); hdr != 0 || len(parts) != 0 {
		t.Fatalf("after rm: header %d bytes, %d parts left", hdr, len(parts))
	}
}
