package store

import (
	"reflect"
	"strings"
	"testing"
)

// The manifest in etcd holds no container configuration: nothing that could carry a
// container's environment (secrets). A restore reads the configuration from the image
// set's manifest.json on the node (docs/operations.md, "What is stored where"). A field
// named like a spec or an environment, at any depth, fails this test.
func TestManifestHoldsNoContainerSpec(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(path string, ty reflect.Type)
	walk = func(path string, ty reflect.Type) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Array || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || seen[ty] {
			return
		}
		seen[ty] = true
		for i := range ty.NumField() {
			f := ty.Field(i)
			tag := strings.Split(f.Tag.Get("json"), ",")[0]
			for _, bad := range []string{"spec", "env", "environ", "config"} {
				if strings.EqualFold(f.Name, bad) || strings.EqualFold(tag, bad) {
					t.Errorf("%s.%s (json %q) could carry a container's configuration or environment into etcd", path, f.Name, tag)
				}
			}
			walk(path+"."+f.Name, f.Type)
		}
	}
	walk("Manifest", reflect.TypeOf(Manifest{}))
	if len(seen) < 3 {
		t.Fatalf("walked only %d types", len(seen))
	}
}
