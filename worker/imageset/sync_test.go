package imageset_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

func TestSyncMakesASealedSetDurable(t *testing.T) {
	dir := makeSet(t)
	if err := imageset.Sync(dir); err != nil {
		t.Fatalf("sync of a sealed set: %v", err)
	}
	if _, err := imageset.Verify(dir); err != nil {
		t.Fatalf("the synced set no longer verifies: %v", err)
	}
	// A set whose manifest is gone cannot be made durable: the error names the set.
	must(t, os.Remove(filepath.Join(dir, imageset.ManifestName)))
	err := imageset.Sync(dir)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "durable") {
		t.Fatalf("sync without a manifest: %v", err)
	}
	if err := imageset.Sync(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("sync of a missing set succeeded")
	}
}
