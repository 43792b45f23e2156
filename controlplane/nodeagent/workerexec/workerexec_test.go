package workerexec_test

import (
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent/workerexec"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

func TestSameFiles(t *testing.T) {
	a := store.File{Name: "images/pages-1.img", Size: 4096, SHA256: "AB12"}
	b := store.File{Name: "images/files.img", Size: 10, SHA256: "cd34"}
	for _, tc := range []struct {
		name      string
		got, want []store.File
		err       string
	}{
		{"same, any order, any hex case", []store.File{b, {Name: a.Name, Size: a.Size, SHA256: "ab12"}}, []store.File{a, b}, ""},
		{"missing", []store.File{a}, []store.File{a, b}, "file images/files.img of the snapshot is missing"},
		{"extra", []store.File{a, b}, []store.File{a}, "file images/files.img is not in the snapshot's manifest"},
		{"size", []store.File{{Name: a.Name, Size: 1, SHA256: a.SHA256}}, []store.File{a}, "differs from the snapshot's manifest (size 1"},
		{"digest", []store.File{{Name: a.Name, Size: a.Size, SHA256: "ffff"}}, []store.File{a}, "sha256 ffff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := workerexec.SameFiles(tc.got, tc.want)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}
