package coordinator_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

func TestLocalVerifierCatchesChecksumMismatch(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o700); err != nil {
		t.Fatal(err)
	}
	content := []byte("pages")
	if err := os.WriteFile(filepath.Join(dir, "images", "pages-1.img"), content, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	m := &store.Manifest{ID: "s", Containers: []store.Container{{Service: "a", Slot: 1, Images: &store.ImageSet{Dir: dir, Durable: true,
		Files: []store.File{{Name: "images/pages-1.img", Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}}}}}}
	// The file is intact: the checksum passes and the checker reads the (socket-less) images.
	if v := coordinator.LocalVerifier(context.Background(), m); strings.Contains(v.Error, "checksum") {
		t.Fatalf("intact file reported: %+v", v)
	}
	// Corrupt it.
	if err := os.WriteFile(filepath.Join(dir, "images", "pages-1.img"), []byte("PAGES"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := coordinator.LocalVerifier(context.Background(), m)
	if !strings.Contains(v.Error, "checksum mismatch") || !strings.Contains(v.Error, "a.1") || v.Consistent {
		t.Fatalf("corruption not caught: %+v", v)
	}
}

func TestInspectOfCorruptManifest(t *testing.T) {
	e := newEnv(t, "lab-1")
	e.store.PutRaw("broken", []byte("{not json"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := api.Call[api.InspectResult](ctx, e.client, api.OpInspect, api.InspectRequest{ID: "broken"})
	if !errors.Is(err, api.ErrCorrupt) || !strings.Contains(err.Error(), "swarmckpt rm broken") {
		t.Fatalf("inspect corrupt: %v, want corrupt with the fix", err)
	}
	ls, err := api.Call[api.ListResult](ctx, e.client, api.OpList, api.ListRequest{})
	if err != nil || len(ls.Snapshots) != 1 || ls.Snapshots[0].State != store.StateCorrupt {
		t.Fatalf("ls: %+v %v", ls, err)
	}
	if _, err := api.Call[api.RemoveResult](ctx, e.client, api.OpRemove, api.RemoveRequest{ID: "broken"}); err != nil {
		t.Fatalf("rm corrupt: %v", err)
	}
	_, err = api.Call[api.RestoreResult](ctx, e.client, api.OpRestore, api.RestoreRequest{ID: "broken"})
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("restore of a removed snapshot: %v, want not found", err)
	}
}
