package dump

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// recSink records what a follower sends, per file, applying restarts.
type recSink struct {
	files    map[string]*bytes.Buffer
	restarts int
	failAt   int // fail the Nth Append (0: never)
	appends  int
}

func (s *recSink) Append(name string, p []byte) error {
	s.appends++
	if s.failAt > 0 && s.appends >= s.failAt {
		return errors.New("receiver went away")
	}
	if s.files == nil {
		s.files = map[string]*bytes.Buffer{}
	}
	if s.files[name] == nil {
		s.files[name] = &bytes.Buffer{}
	}
	s.files[name].Write(p)
	return nil
}

func (s *recSink) Restart(name string) error {
	s.restarts++
	s.files[name].Reset()
	return nil
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestFollowerHashesAndSendsGrowingPages: a writer appends to a pages image while the
// follower hashes and sends it; other images are not followed (they are read after
// CRIU exits).
func TestFollowerHashesAndSendsGrowingPages(t *testing.T) {
	dir := t.TempDir()
	stop := make(chan struct{})
	sink := &recSink{}
	type res struct {
		known    map[string]imageset.File
		streamed map[string]bool
	}
	done := make(chan res, 1)
	go func() {
		k, s := newFollower(dir, sink).run(stop, time.Millisecond)
		done <- res{k, s}
	}()
	f, err := os.Create(filepath.Join(dir, "pages-1.img"))
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	for i := 0; i < 200; i++ {
		chunk := bytes.Repeat([]byte{byte(i)}, 64<<10)
		f.Write(chunk)
		all.Write(chunk)
		if i%20 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	f.Close()
	os.WriteFile(filepath.Join(dir, "inv.img"), []byte("inventory"), 0o600)
	close(stop)
	got := <-done
	p := got.known["pages-1.img"]
	if p.Size != int64(all.Len()) || p.SHA256 != sum(all.Bytes()) {
		t.Fatalf("pages-1.img: %+v", p)
	}
	if !bytes.Equal(sink.files["pages-1.img"].Bytes(), all.Bytes()) {
		t.Fatalf("the sink got %d bytes of pages-1.img, want the %d written", sink.files["pages-1.img"].Len(), all.Len())
	}
	if _, ok := got.known["inv.img"]; ok || sink.files["inv.img"] != nil {
		t.Fatal("inv.img was followed; only pages images are")
	}
	if !got.streamed["pages-1.img"] {
		t.Fatal("pages-1.img not reported as streamed")
	}
}

// TestStreamRestRestartsChangedFiles: after CRIU exits, files the follower did not
// complete are restarted and sent whole, with digests of what was sent; a sink that
// fails stops receiving but the digests are still computed.
func TestStreamRestRestartsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pages-1.img"), []byte("pages, rewritten"), 0o600)
	os.WriteFile(filepath.Join(dir, "pages-2.img"), []byte("complete"), 0o600)
	os.WriteFile(filepath.Join(dir, "core-1.img"), []byte("core"), 0o600)
	os.WriteFile(filepath.Join(dir, "empty.img"), nil, 0o600)
	sink := &recSink{files: map[string]*bytes.Buffer{"pages-1.img": bytes.NewBufferString("pages, first"), "pages-2.img": bytes.NewBufferString("complete")}}
	known := map[string]imageset.File{
		"pages-1.img": {Name: "pages-1.img", Size: 12, SHA256: sum([]byte("pages, first"))}, // size changed since
		"pages-2.img": {Name: "pages-2.img", Size: 8, SHA256: sum([]byte("complete"))},
	}
	known, err := streamRest(dir, known, map[string]bool{"pages-1.img": true, "pages-2.img": true}, sink)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"pages-1.img": "pages, rewritten", "pages-2.img": "complete", "core-1.img": "core", "empty.img": ""} {
		if got := sink.files[name]; got == nil || got.String() != want {
			t.Errorf("sink has %q for %s, want %q", got, name, want)
		}
		if k := known[name]; k.SHA256 != sum([]byte(want)) || k.Size != int64(len(want)) {
			t.Errorf("digest of %s: %+v", name, k)
		}
	}
	if sink.restarts != 1 {
		t.Errorf("%d restarts, want 1 (pages-1.img)", sink.restarts)
	}

	failing := &recSink{failAt: 1}
	known, err = streamRest(dir, map[string]imageset.File{}, nil, failing)
	if err != nil || len(known) != 4 || known["core-1.img"].SHA256 != sum([]byte("core")) {
		t.Fatalf("after a sink failure: known=%v err=%v, want every digest", known, err)
	}
	if failing.appends != 1 {
		t.Fatalf("a failed sink was called %d times, want 1", failing.appends)
	}
}
