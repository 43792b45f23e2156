package imageset

import "fmt"

// Verified is an image set whose every file was checked against its manifest: by Verify
// (re-hashing the files on disk) or by Receive (hashing while the files streamed in).
// Restore paths take a Verified, so the type system guarantees the check was not skipped.
type Verified struct {
	dir string
	m   *Manifest
}

// Dir is the set's directory.
func (v Verified) Dir() string { return v.dir }

// Manifest is the verified manifest.
func (v Verified) Manifest() *Manifest { return v.m }

// Valid tells whether v came from Verify or Receive (the zero Verified is not valid).
func (v Verified) Valid() bool { return v.dir != "" && v.m != nil }

// Moved returns v for the same set after its directory was renamed to dir.
func (v Verified) Moved(dir string) Verified { return Verified{dir: dir, m: v.m} }

// Check verifies the set at dir and returns it as Verified.
func Check(dir string) (Verified, error) {
	m, err := Verify(dir)
	if err != nil {
		return Verified{}, err
	}
	return Verified{dir: dir, m: m}, nil
}

// String names the set for messages.
func (v Verified) String() string {
	if v.m == nil {
		return v.dir
	}
	return fmt.Sprintf("%s (container %.12s, %d files, %d bytes)", v.dir, v.m.ContainerID, len(v.m.Files), v.m.TotalBytes())
}
