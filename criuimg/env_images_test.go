package criuimg

import (
	"os"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/cut"
)

// TestImagesFromEnv checks a cut made elsewhere, e.g. runc checkpoints of Docker
// containers made by the worker:
//
//	SWARMCKPT_CUT_IMAGES=server=/path/to/images,client=/other/path go test ./criuimg -run ImagesFromEnv -v
//
// SWARMCKPT_CUT_EXPECT=consistent (default) or inconsistent says what the verdict must be.
func TestImagesFromEnv(t *testing.T) {
	spec := os.Getenv("SWARMCKPT_CUT_IMAGES")
	if spec == "" {
		t.Skip("SKIPPED LOUDLY: set SWARMCKPT_CUT_IMAGES=id=dir,id=dir to check CRIU image directories made elsewhere")
	}
	dirs := map[string]string{}
	for _, kv := range strings.Split(spec, ",") {
		id, dir, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("SWARMCKPT_CUT_IMAGES entry %q: want id=dir", kv)
		}
		dirs[id] = dir
	}
	st, socks, err := FromImages(dirs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range socks {
		t.Logf("socket %s", s)
	}
	r := cut.Check(st)
	for _, l := range r.Lines() {
		t.Logf("evidence: %s", l)
	}
	t.Log(r.Summary())
	want := os.Getenv("SWARMCKPT_CUT_EXPECT")
	if want == "" {
		want = "consistent"
	}
	if len(r.Channels) == 0 {
		t.Fatalf("no connection between the containers was found in the images")
	}
	if (want == "consistent") != r.Consistent() {
		t.Fatalf("verdict %s, want %s", r.Summary(), want)
	}
}
