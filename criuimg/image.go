package criuimg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	sk_inet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
	"google.golang.org/protobuf/proto"
)

// ErrNoImages is wrapped when a directory holds no CRIU socket images at all.
var ErrNoImages = errors.New("criuimg: no CRIU images")

// Decode decodes every entry of the CRIU image file path, payloads included (queued
// socket data, pipe data...), so that Encode writes it back whole. entry is the type
// of the file's entries (e.g. &fdinfo.FileEntry{} for files.img). A missing file is an
// error matching fs.ErrNotExist.
func Decode(path string, entry proto.Message) (*crit.CriuImage, error) {
	return decode(path, entry, false)
}

// entries decodes the entries of path without their payloads: for reading only.
func entries(path string, entry proto.Message) ([]*crit.CriuEntry, error) {
	img, err := decode(path, entry, true)
	if err != nil {
		return nil, err
	}
	return img.Entries, nil
}

func decode(path string, entry proto.Message, noPayload bool) (*crit.CriuImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := crit.New(f, nil, "", false, noPayload).Decode(entry)
	if err != nil {
		return nil, fmt.Errorf("decode CRIU image %s: %w", path, err)
	}
	return img, nil
}

// Encode writes img (from Decode) to f in CRIU's image format.
func Encode(f *os.File, img *crit.CriuImage) error {
	return crit.New(nil, f, "", false, false).Encode(img)
}

// socketImage is an image file that may hold inet socket entries, with the type of its
// entries.
type socketImage struct {
	name  string
	entry proto.Message
}

// socketImages are the CRIU images that hold inet socket entries: files.img (every
// file descriptor, CRIU >= 3.x) and inetsk.img (older CRIU versions).
func socketImages() []socketImage {
	return []socketImage{{"files.img", &fdinfo.FileEntry{}}, {"inetsk.img", &sk_inet.InetSkEntry{}}}
}

// SocketImageNames are the names of the CRIU images that may hold inet socket entries,
// in the order SocketImages reads them.
func SocketImageNames() []string {
	var out []string
	for _, si := range socketImages() {
		out = append(out, si.name)
	}
	return out
}

// SocketImage is one decoded image file that holds inet socket entries.
type SocketImage struct {
	// Name is the file's name in the image directory (files.img or inetsk.img).
	Name string
	// Path is the file's path.
	Path string
	// Image is the decoded file, payloads included; Inet finds the socket entries.
	Image *crit.CriuImage
}

// SocketImages decodes the images of the CRIU image directory dir that hold inet socket
// entries (files.img, and inetsk.img of older CRIU versions), whichever are present. A
// directory with neither is an error wrapping ErrNoImages.
func SocketImages(dir string) ([]SocketImage, error) {
	var out []SocketImage
	for _, si := range socketImages() {
		path := filepath.Join(dir, si.name)
		img, err := Decode(path, si.entry)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, SocketImage{Name: si.name, Path: path, Image: img})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has neither files.img nor inetsk.img (is it a CRIU image directory?): %w", dir, ErrNoImages)
	}
	return out, nil
}

// Inet returns the inet socket entry of an entry of a socket image: the socket of an
// INETSK files.img entry, an inetsk.img entry itself, and nil for anything else.
func Inet(msg proto.Message) *sk_inet.InetSkEntry {
	switch e := msg.(type) {
	case *fdinfo.FileEntry:
		if e.GetType() == fdinfo.FdTypes_INETSK {
			return e.GetIsk()
		}
	case *sk_inet.InetSkEntry:
		return e
	}
	return nil
}
