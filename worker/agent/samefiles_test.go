package agent_test

import (
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/agent"
)

func TestSameFiles(t *testing.T) {
	a := node.File{Name: "images/pages-1.img", Size: 4096, SHA256: "AB12"}
	b := node.File{Name: "images/files.img", Size: 10, SHA256: "cd34"}
	for _, tc := range []struct {
		name      string
		got, want []node.File
		err       string
	}{
		{"same, any order, any hex case", []node.File{b, {Name: a.Name, Size: a.Size, SHA256: "ab12"}}, []node.File{a, b}, ""},
		{"missing", []node.File{a}, []node.File{a, b}, "file images/files.img of the snapshot is missing"},
		{"extra", []node.File{a, b}, []node.File{a}, "file images/files.img is not in the snapshot's manifest"},
		{"size", []node.File{{Name: a.Name, Size: 1, SHA256: a.SHA256}}, []node.File{a}, "differs from the snapshot's manifest (size 1"},
		{"digest", []node.File{{Name: a.Name, Size: a.Size, SHA256: "ffff"}}, []node.File{a}, "sha256 ffff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := agent.SameFiles(tc.got, tc.want)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}
