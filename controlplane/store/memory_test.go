package store_test

import (
	"context"
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
