package rewrite

import (
	"fmt"
	"net/netip"

	sk_inet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"

	"github.com/swarmckpt/swarmckpt/criuimg"
)

// Change is one address rewritten in one socket.
type Change struct {
	// File is the image file, relative to the image directory.
	File string `json:"file"`
	// Ino is the socket's inode number (tcp-stream-<ino hex>.img holds its queues).
	Ino uint32 `json:"ino"`
	// Proto (6 TCP, 17 UDP) and State (1 established, 10 listen, ...) as in the kernel.
	Proto uint32 `json:"proto"`
	State uint32 `json:"state"`
	// Field is "src" (local end) or "dst" (remote end).
	Field string `json:"field"`
	// Old and New are the address and port before and after.
	Old netip.AddrPort `json:"old"`
	New netip.AddrPort `json:"new"`
}

func (c Change) String() string {
	return fmt.Sprintf("%s socket ino %d proto %d state %d %s %s -> %s", c.File, c.Ino, c.Proto, c.State, c.Field, c.Old, c.New)
}

// rewriteSocket rewrites the local and remote address of one inet socket entry in
// place and returns what changed. Sockets of other families (none exist in inet
// entries) and addresses that are not in m are left alone. An entry with no address
// words (never bound) has nothing to rewrite.
func rewriteSocket(file string, isk *sk_inet.InetSkEntry, m Map) ([]Change, error) {
	fam := isk.GetFamily()
	if fam != criuimg.FamilyInet && fam != criuimg.FamilyInet6 {
		return nil, nil
	}
	var out []Change
	for _, f := range []struct {
		name  string
		words *[]uint32
		port  uint32
	}{{"src", &isk.SrcAddr, isk.GetSrcPort()}, {"dst", &isk.DstAddr, isk.GetDstPort()}} {
		if len(*f.words) == 0 {
			continue
		}
		old, err := criuimg.Addr(fam, *f.words)
		if err != nil {
			return nil, fmt.Errorf("%w: %s socket ino %d %s: %w", ErrImage, file, isk.GetIno(), f.name, err)
		}
		n, ok := m.Lookup(old)
		if !ok || n == old {
			continue
		}
		*f.words = criuimg.Words(n)
		out = append(out, Change{File: file, Ino: isk.GetIno(), Proto: isk.GetProto(), State: isk.GetState(),
			Field: f.name, Old: netip.AddrPortFrom(old, uint16(f.port)), New: netip.AddrPortFrom(n, uint16(f.port))})
	}
	return out, nil
}
