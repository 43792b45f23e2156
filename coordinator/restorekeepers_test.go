package coordinator_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/worker"
)

// TestRestoreStopsOnlyOnceItsKeepersRun: a restore has its targets prepare their
// network keepers and waits (Ready, bounded) until they run before it stops anything.
// A keeper has no fixed address: one that got its address after the stop could be
// given a stopped container's exact address and hold it against that container's
// restore or put-back (fault seed 1234: a target's keeper, started 1.9 s after the
// Prepare, held a put-back container's address for minutes).
func TestRestoreStopsOnlyOnceItsKeepersRun(t *testing.T) {
	var (
		mu       sync.Mutex
		asked    int
		stopped  int
		early    []string // containers stopped while a node's keepers were not ready
		release  = make(chan struct{})
		released bool
	)
	e, _ := newMigrateEnv(t, func(f *worker.Fake) {
		f.PrepareReady = func(ctx context.Context, req worker.PreflightRequest) error {
			mu.Lock()
			asked++
			mu.Unlock()
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		f.OnStop = func(c string) {
			mu.Lock()
			defer mu.Unlock()
			stopped++
			if !released {
				early = append(early, f.Node+"/"+c)
			}
		}
	})
	if _, err := e.snapshot("old"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := e.svc.Restore(ctx, api.RestoreRequest{ID: "old"})
		done <- err
	}()
	waitForLong(t, 10*time.Second, "the targets asked to be ready", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return asked > 0
	})
	time.Sleep(200 * time.Millisecond) // a stop that does not wait would come now
	mu.Lock()
	released = true
	mu.Unlock()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(early) > 0 {
		t.Errorf("stopped before the targets' keepers ran: %v", early)
	}
	if stopped == 0 {
		t.Error("the restore stopped nothing: the test proves nothing")
	}
}
