package coordinator_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/cut"
	"github.com/swarmckpt/swarmckpt/protocol/node"
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

// sockJSON is one direction pair of a connection between two holders, as a node sends
// it: a (local) -> b (remote) with a's send queue and receive counters.
func sockJSON(t *testing.T, local, remote string, inq, outq uint32) json.RawMessage {
	t.Helper()
	b, err := json.Marshal([]cut.Socket{{Container: "forged-label", Ino: 1, State: 1,
		Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote),
		InqSeq: inq, OutqSeq: outq, HasStreamRecord: true}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAgentVerifier: the cut is checked from what the nodes holding the images report
// (no shared file system): consistent and orphan cases, a failing node, a dead node.
func TestAgentVerifier(t *testing.T) {
	e := newEnv(t, "lab-1", "lab-2", "lab-3")
	res, err := e.snapshot("snap-v")
	if err != nil || res.Snapshot.State != store.StateCommitted {
		t.Fatalf("snapshot: %+v %v", res, err)
	}
	m := res.Snapshot
	verify := coordinator.AgentVerifier(e.net.Connect(), 2*time.Second)
	set := func(key string) string { return node.SetID("snap-v", key) }
	// holder.1 (10.1.0.2, lab-1) <-> holder.2 (10.1.0.3, lab-2); the other holders have
	// no connections.
	e.execs["lab-1"].FakeSockets = map[string]json.RawMessage{
		set("bank_holder.1"): sockJSON(t, "10.1.0.2:40000", "10.1.0.3:9000", 5000, 1000)}
	e.execs["lab-2"].FakeSockets = map[string]json.RawMessage{
		set("bank_holder.2"): sockJSON(t, "10.1.0.3:9000", "10.1.0.2:40000", 1000, 5000)}
	v := verify(context.Background(), m)
	if v.Error != "" || !v.Consistent || !strings.Contains(v.Summary, "2 directions") {
		t.Fatalf("consistent pair: %+v", v)
	}
	// holder.2 received 100 bytes holder.1 never sent: an orphan.
	e.execs["lab-2"].FakeSockets[set("bank_holder.2")] = sockJSON(t, "10.1.0.3:9000", "10.1.0.2:40000", 1100, 5000)
	if v := verify(context.Background(), m); v.Error != "" || v.Consistent {
		t.Fatalf("orphan not reported: %+v", v)
	}
	e.execs["lab-3"].FailVerify = errors.New("image file images/pages-1.img: checksum mismatch")
	if v := verify(context.Background(), m); !strings.Contains(v.Error, "bank_holder.3: node lab-3: image file images/pages-1.img: checksum mismatch") {
		t.Fatalf("failing node: %+v", v)
	}
	e.execs["lab-3"].FailVerify = nil
	e.cancel["lab-3"]() // its agent goes away
	waitFor(t, "lab-3's agent gone", func() bool {
		return strings.Contains(verify(context.Background(), m).Error, "no live worker on node lab-3")
	})
}
