package imageset

import "testing"

func TestManifestSameFiles(t *testing.T) {
	a := &Manifest{ContainerID: "c1", Files: []File{{Name: "files.img", Size: 10, SHA256: "AB"}, {Name: "pages-1.img", Size: 4096, SHA256: "cd"}}}
	same := &Manifest{ContainerID: "c1", Node: "other", Files: []File{{Name: "files.img", Size: 10, SHA256: "ab"}, {Name: "pages-1.img", Size: 4096, SHA256: "CD"}}}
	if !a.SameFiles(same) {
		t.Fatal("a copy of the set (digests in another case, another node) is not the same")
	}
	for name, o := range map[string]*Manifest{
		"other container": {ContainerID: "c2", Files: same.Files},
		"file missing":    {ContainerID: "c1", Files: same.Files[:1]},
		"other file":      {ContainerID: "c1", Files: []File{same.Files[0], {Name: "pages-2.img", Size: 4096, SHA256: "cd"}}},
		"other size":      {ContainerID: "c1", Files: []File{same.Files[0], {Name: "pages-1.img", Size: 8192, SHA256: "cd"}}},
		"other digest":    {ContainerID: "c1", Files: []File{same.Files[0], {Name: "pages-1.img", Size: 4096, SHA256: "ef"}}},
	} {
		if a.SameFiles(o) {
			t.Errorf("%s: reported the same files", name)
		}
	}
}
