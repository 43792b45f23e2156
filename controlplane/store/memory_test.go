package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/controlplane/store/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func(string, []byte)) {
		m := store.NewMemory()
		return m, m.PutRaw
	})
}

func TestMemoryExpireLock(t *testing.T) {
	s := store.NewMemory()
	ctx := context.Background()
	l, err := s.LockStack(ctx, "bank", "a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.ExpireLock("bank")
	select {
	case <-l.Lost():
	default:
		t.Fatal("expired lock not reported lost")
	}
	if _, err := s.LockStack(ctx, "bank", "b", time.Second); err != nil {
		t.Fatalf("lock after expiry: %v", err)
	}
}

// A restore record written before Mode and Addresses existed still decodes.
func TestRestoreRecordWithoutAddressesDecodes(t *testing.T) {
	var m store.Manifest
	old := `{"id":"bank-1","stack":"bank","state":"committed","containers":[],"restores":[{"at":"2026-11-20T10:00:00Z","targets":{"bank_holder.1":"lab-2"},"ok":true}]}`
	if err := json.Unmarshal([]byte(old), &m); err != nil {
		t.Fatalf("decode an old manifest: %v", err)
	}
	if len(m.Restores) != 1 || !m.Restores[0].OK || m.Restores[0].Targets["bank_holder.1"] != "lab-2" || m.Restores[0].Mode != "" || m.Restores[0].Addresses != nil {
		t.Fatalf("old restore record decoded as %+v", m.Restores)
	}
}
