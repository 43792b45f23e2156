package criuimg

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"sort"

	tcp_stream "github.com/checkpoint-restore/go-criu/v7/crit/images/tcp-stream"

	"github.com/swarmckpt/swarmckpt/cut"
)

// tcpStreamImage is the name of the image holding the queues of the socket with an inode.
const tcpStreamImage = "tcp-stream-%x.img"

// ReadSockets reads every TCP socket of the CRIU image directory dir, labelled with
// container. Sockets with a saved stream (tcp-stream-<ino>.img, i.e. dumped with
// --tcp-established) have HasStreamRecord set; listening sockets are skipped.
// IPv4-mapped IPv6 addresses are unmapped.
func ReadSockets(container, dir string) ([]cut.Socket, error) {
	imgs, err := SocketImages(dir)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", container, err)
	}
	var out []cut.Socket
	for _, img := range imgs {
		for _, e := range img.Image.Entries {
			isk := Inet(e.Message)
			if isk == nil || isk.GetProto() != ProtoTCP || isk.GetState() == StateListen {
				continue
			}
			local, err := Addr(isk.GetFamily(), isk.GetSrcAddr())
			if err != nil {
				return nil, fmt.Errorf("container %s socket ino %d: %w", container, isk.GetIno(), err)
			}
			remote, err := Addr(isk.GetFamily(), isk.GetDstAddr())
			if err != nil {
				return nil, fmt.Errorf("container %s socket ino %d: %w", container, isk.GetIno(), err)
			}
			s := cut.Socket{Container: container, Ino: isk.GetIno(), State: isk.GetState(),
				Local:  netip.AddrPortFrom(local.Unmap(), uint16(isk.GetSrcPort())),
				Remote: netip.AddrPortFrom(remote.Unmap(), uint16(isk.GetDstPort()))}
			if err := readStream(&s, dir); err != nil {
				return nil, fmt.Errorf("container %s: %w", container, err)
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// readStream fills in the queues of s from its tcp-stream image in dir, if it has one.
func readStream(s *cut.Socket, dir string) error {
	path := filepath.Join(dir, fmt.Sprintf(tcpStreamImage, s.Ino))
	es, err := entries(path, &tcp_stream.TcpStreamEntry{})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case len(es) != 1:
		return fmt.Errorf("%s holds %d entries, want 1", path, len(es))
	}
	ts, ok := es[0].Message.(*tcp_stream.TcpStreamEntry)
	if !ok {
		return fmt.Errorf("%s: unexpected entry type %T", path, es[0].Message)
	}
	s.HasStreamRecord = true
	s.InqSeq, s.InqLen = ts.GetInqSeq(), ts.GetInqLen()
	s.OutqSeq, s.OutqLen, s.UnsqLen = ts.GetOutqSeq(), ts.GetOutqLen(), ts.GetUnsqLen()
	return nil
}

// FromImages reads the CRIU image directories of a cut (container ID -> directory,
// e.g. runc checkpoint image paths) and returns the State to check with cut.Check.
// addrs optionally names the IP addresses each container owns; a connection to an
// owned address whose other end is in no image is then reported as a missing
// endpoint. Without it, the non-loopback local addresses of each container's sockets
// are used.
func FromImages(dirs map[string]string, addrs map[string][]netip.Addr) (cut.State, []cut.Socket, error) {
	ids := make([]string, 0, len(dirs))
	for id := range dirs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var all []cut.Socket
	for _, id := range ids {
		socks, err := ReadSockets(id, dirs[id])
		if err != nil {
			return cut.State{}, nil, err
		}
		all = append(all, socks...)
	}
	return cut.StateFromSockets(ids, all, addrs), all, nil
}

// VerifyImages reads the CRIU image directories of a cut (container ID -> directory) and
// checks it, for tests of image sets on one machine (`inspect --verify` reads each set
// on its node instead: coordinator.AgentVerifier). The error is about reading the
// images; the verdict is in the Report.
func VerifyImages(dirs map[string]string) (*cut.Report, error) {
	st, _, err := FromImages(dirs, nil)
	if err != nil {
		return nil, err
	}
	return cut.Check(st), nil
}
