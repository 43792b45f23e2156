package criuimg

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fown"
	sk_inet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
	sk_opts "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-opts"
	tcp_stream "github.com/checkpoint-restore/go-criu/v7/crit/images/tcp-stream"
	"google.golang.org/protobuf/proto"
)

// inetFile is a files.img entry for an inet socket with every field CRIU requires.
func inetFile(ino, fam, protocol, state uint32, src, dst netip.AddrPort) *crit.CriuEntry {
	u := proto.Uint32
	isk := &sk_inet.InetSkEntry{Id: u(ino), Ino: u(ino), Family: u(fam), Type: u(1), Proto: u(protocol), State: u(state),
		SrcPort: u(uint32(src.Port())), DstPort: u(uint32(dst.Port())), Flags: u(0), Backlog: u(0),
		SrcAddr: Words(src.Addr()), DstAddr: Words(dst.Addr()),
		Fown: &fown.FownEntry{Uid: u(0), Euid: u(0), Signum: u(0), PidType: u(0), Pid: u(0)},
		Opts: &sk_opts.SkOptsEntry{SoSndbuf: u(4096), SoRcvbuf: u(4096), SoSndTmoSec: proto.Uint64(0),
			SoSndTmoUsec: proto.Uint64(0), SoRcvTmoSec: proto.Uint64(0), SoRcvTmoUsec: proto.Uint64(0)}}
	return &crit.CriuEntry{Message: &fdinfo.FileEntry{Type: fdinfo.FdTypes_INETSK.Enum(), Id: u(ino), Isk: isk}}
}

func writeImage(t *testing.T, path string, img *crit.CriuImage) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Encode(f, img); err != nil {
		t.Fatalf("encode %s: %v", path, err)
	}
}

// imageDir writes a files.img with an established IPv4 connection (ino 7, with a
// tcp-stream image), the other end of one seen by a dual-stack socket (ino 8, an
// IPv4-mapped IPv6 address, no stream image), a listener and a UDP socket.
func imageDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ap := netip.MustParseAddrPort
	writeImage(t, filepath.Join(dir, "files.img"), &crit.CriuImage{Magic: "FILES", Entries: []*crit.CriuEntry{
		inetFile(7, FamilyInet, ProtoTCP, StateEstablished, ap("10.0.0.1:40000"), ap("10.0.0.2:7000")),
		inetFile(8, FamilyInet6, ProtoTCP, StateEstablished, ap("[::ffff:10.0.0.1]:7001"), ap("[::ffff:10.0.0.3]:40001")),
		inetFile(9, FamilyInet, ProtoTCP, StateListen, ap("0.0.0.0:7000"), ap("0.0.0.0:0")),
		inetFile(10, FamilyInet, 17, 7, ap("10.0.0.1:53"), ap("0.0.0.0:0")),
	}})
	u := proto.Uint32
	writeImage(t, filepath.Join(dir, "tcp-stream-7.img"), &crit.CriuImage{Magic: "TCP_STREAM", Entries: []*crit.CriuEntry{
		{Message: &tcp_stream.TcpStreamEntry{InqLen: u(0), InqSeq: u(1000), OutqLen: u(0), OutqSeq: u(2000),
			OptMask: u(0), SndWscale: u(7), MssClamp: u(1460), UnsqLen: u(0)}}}})
	return dir
}

func TestReadSocketsFromEncodedImages(t *testing.T) {
	socks, err := ReadSockets("c", imageDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 2 {
		t.Fatalf("got %d sockets %v, want the 2 TCP connections (no listener, no UDP)", len(socks), socks)
	}
	s := socks[0]
	if s.Container != "c" || s.Ino != 7 || s.Local.String() != "10.0.0.1:40000" || s.Remote.String() != "10.0.0.2:7000" ||
		!s.HasStreamRecord || s.InqSeq != 1000 || s.OutqSeq != 2000 {
		t.Errorf("socket 7 = %s (stream %v)", s, s.HasStreamRecord)
	}
	s = socks[1]
	if s.Ino != 8 || s.Local.String() != "10.0.0.1:7001" || s.Remote.String() != "10.0.0.3:40001" || s.HasStreamRecord {
		t.Errorf("socket 8 = %s (stream %v), want unmapped addresses and no stream record", s, s.HasStreamRecord)
	}
}

func TestDecodeEncodeRoundTrip(t *testing.T) {
	dir := imageDir(t)
	imgs, err := SocketImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Name != "files.img" || len(imgs[0].Image.Entries) != 4 {
		t.Fatalf("SocketImages = %+v, want files.img with 4 entries", imgs)
	}
	for i, e := range imgs[0].Image.Entries {
		if Inet(e.Message) == nil {
			t.Errorf("entry %d: no inet socket found", i)
		}
	}
	out := filepath.Join(t.TempDir(), "files.img")
	writeImage(t, out, imgs[0].Image)
	a, _ := os.ReadFile(imgs[0].Path)
	b, _ := os.ReadFile(out)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("re-encoded files.img differs (%d vs %d bytes)", len(a), len(b))
	}
}

func TestReadSocketsNotAnImageDir(t *testing.T) {
	if _, err := ReadSockets("c", t.TempDir()); !errors.Is(err, ErrNoImages) {
		t.Fatalf("err = %v, want ErrNoImages", err)
	}
}

func TestAddressWordsRoundTrip(t *testing.T) {
	for _, s := range []string{"10.1.2.3", "fd00::1:2", "::ffff:10.1.2.3"} {
		a := netip.MustParseAddr(s)
		fam := uint32(FamilyInet6)
		if a.Is4() {
			fam = FamilyInet
		}
		back, err := Addr(fam, Words(a))
		if err != nil || back != a {
			t.Errorf("%s -> %v -> %s (%v)", s, Words(a), back, err)
		}
	}
	if _, err := Addr(FamilyInet, []uint32{1, 2}); err == nil {
		t.Error("IPv4 address with 2 words accepted")
	}
	if _, err := Addr(FamilyInet6, []uint32{1}); err == nil {
		t.Error("IPv6 address with 1 word accepted")
	}
}
