package rewrite

import (
	"fmt"
	"net/netip"

	"github.com/swarmckpt/swarmckpt/criuimg"
)

// Conn is one connected TCP socket found in a CRIU image directory.
type Conn struct {
	Ino           uint32         `json:"ino"`
	State         uint32         `json:"state"`
	Local, Remote netip.AddrPort `json:"-"`
	// LocalS and RemoteS are Local and Remote for JSON.
	LocalS  string `json:"local"`
	RemoteS string `json:"remote"`
}

func (c Conn) String() string {
	return fmt.Sprintf("ino %d %s -> %s (state %d)", c.Ino, c.Local, c.Remote, c.State)
}

// Connections lists the connected (not listening, not closed) TCP sockets of the CRIU
// image directory dir whose local address is not loopback: the connections a restore
// on new addresses cannot restore as they are (CRIU binds them to their recorded
// local address), and which a restore without an address map must close.
func Connections(dir string) ([]Conn, error) {
	imgs, err := criuimg.SocketImages(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrImage, err)
	}
	var out []Conn
	for _, img := range imgs {
		for _, e := range img.Image.Entries {
			isk := criuimg.Inet(e.Message)
			if isk == nil || isk.GetProto() != criuimg.ProtoTCP || isk.GetState() == criuimg.StateListen || len(isk.GetDstAddr()) == 0 {
				continue
			}
			l, err := criuimg.Addr(isk.GetFamily(), isk.GetSrcAddr())
			if err != nil {
				return nil, fmt.Errorf("%w: %s socket ino %d: %w", ErrImage, img.Name, isk.GetIno(), err)
			}
			r, err := criuimg.Addr(isk.GetFamily(), isk.GetDstAddr())
			if err != nil {
				return nil, fmt.Errorf("%w: %s socket ino %d: %w", ErrImage, img.Name, isk.GetIno(), err)
			}
			if l.Unmap().IsLoopback() || r.Unmap().IsUnspecified() {
				continue
			}
			c := Conn{Ino: isk.GetIno(), State: isk.GetState(),
				Local:  netip.AddrPortFrom(l, uint16(isk.GetSrcPort())),
				Remote: netip.AddrPortFrom(r, uint16(isk.GetDstPort()))}
			c.LocalS, c.RemoteS = c.Local.String(), c.Remote.String()
			out = append(out, c)
		}
	}
	return out, nil
}
