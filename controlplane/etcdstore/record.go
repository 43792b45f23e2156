package etcdstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// A snapshot's record in etcd (layout 2):
//
//	PREFIX/snapshots/ID         the header: the manifest without Containers and
//	                            Record, plus "parts", the names and sha256 of the
//	                            part keys that hold them, in order
//	PREFIX/parts/ID/NONCE-cN    a JSON array of consecutive containers (at most
//	                            partContainers of them, about partBytes)
//	PREFIX/parts/ID/NONCE-rN    a piece of the algorithm record (at most partBytes)
//
// A write first puts the parts that changed under names no one else uses (a fresh
// NONCE per write; unchanged parts keep their names), then puts the header in one
// transaction that compares its revision (and, for Commit, the stack lock): the
// new parts become visible with the header, atomically. Afterwards the parts the old
// header named and the new one does not are deleted; a part is never named again
// once unnamed, so that deletion races with nobody. A failed or interrupted write
// leaves unnamed parts, which the next write's cleanup does not see but rm (which
// deletes PREFIX/parts/ID/ whole) removes. Every value stays far below etcd's
// request limit (--max-request-bytes, 1.5 MiB by default) and no transaction has
// more than maxOps operations (--max-txn-ops, 128 by default), whatever the number
// of containers: the header grows by one part name per partContainers containers.
//
// Layout 1 (before parts existed) kept the whole manifest in the snapshot key: it is
// still read (a header without "parts" is a whole manifest) and rewritten in layout 2
// by the next Update.
const (
	partContainers = 64
	partBytes      = 256 << 10
	maxOps         = 64
	maxTxnBytes    = 1 << 20
)

// parts names the part keys of a layout-2 header.
type parts struct {
	Containers []partRef `json:"containers,omitempty"`
	Record     []partRef `json:"record,omitempty"`
}

// partRef is one part key: its name under PREFIX/parts/ID/ and the sha256 of its
// value (hex, 128 bits), which a write compares to keep unchanged parts.
type partRef struct {
	Name string `json:"k"`
	Sum  string `json:"h"`
}

func (p *parts) names() map[string]bool {
	out := map[string]bool{}
	if p != nil {
		for _, r := range append(append([]partRef{}, p.Containers...), p.Record...) {
			out[r.Name] = true
		}
	}
	return out
}

// header is the JSON of a layout-2 snapshot key.
type header struct {
	store.Manifest
	Parts *parts `json:"parts"`
}

func (s *Store) partsPrefix(id string) string { return s.prefix + "/parts/" + id + "/" }

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// decodeHeader decodes a snapshot key: the manifest (whole in layout 1, without
// Containers and Record in layout 2) and its parts (nil in layout 1).
func decodeHeader(id string, b []byte, rev int64) (*store.Manifest, *parts, error) {
	m, err := store.Decode(id, b, rev)
	if err != nil {
		return nil, nil, err
	}
	var h struct {
		Parts *parts `json:"parts"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: %w: parts: %v (remove it with 'swarmckpt rm %s')", id, store.ErrCorrupt, err, id)
	}
	return m, h.Parts, nil
}

// assemble fills m's Containers and Record from its parts; vals maps part names to
// values. A missing or changed part makes the manifest corrupt.
func assemble(m *store.Manifest, p *parts, vals map[string][]byte) error {
	bad := func(what string, args ...any) error {
		return fmt.Errorf("snapshot %s: %w: %s (remove it with 'swarmckpt rm %s')", m.ID, store.ErrCorrupt, fmt.Sprintf(what, args...), m.ID)
	}
	m.Containers = []store.Container{}
	for _, r := range p.Containers {
		v, ok := vals[r.Name]
		if !ok {
			return bad("container part %s is missing", r.Name)
		}
		if sum(v) != r.Sum {
			return bad("container part %s does not match its checksum", r.Name)
		}
		var cs []store.Container
		if err := json.Unmarshal(v, &cs); err != nil {
			return bad("container part %s: %v", r.Name, err)
		}
		m.Containers = append(m.Containers, cs...)
	}
	m.Record = nil
	for _, r := range p.Record {
		v, ok := vals[r.Name]
		if !ok {
			return bad("record part %s is missing", r.Name)
		}
		if sum(v) != r.Sum {
			return bad("record part %s does not match its checksum", r.Name)
		}
		m.Record = append(m.Record, v...)
	}
	return nil
}

// split cuts m's containers and record into part values.
func split(m *store.Manifest) (cs, rs [][]byte, err error) {
	var cur []store.Container
	size := 0
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		b, err := json.Marshal(cur)
		if err != nil {
			return fmt.Errorf("etcdstore: encode the containers of snapshot %s: %w", m.ID, err)
		}
		cs = append(cs, b)
		cur, size = nil, 0
		return nil
	}
	for _, c := range m.Containers {
		b, err := json.Marshal(c)
		if err != nil {
			return nil, nil, fmt.Errorf("etcdstore: encode container %s of snapshot %s: %w", c.Key(), m.ID, err)
		}
		if len(b) > maxTxnBytes {
			return nil, nil, fmt.Errorf("etcdstore: snapshot %s: the record of container %s is %d bytes, more than one etcd request may carry (%d)",
				m.ID, c.Key(), len(b), maxTxnBytes)
		}
		if len(cur) == partContainers || (len(cur) > 0 && size+len(b) > partBytes) {
			if err := flush(); err != nil {
				return nil, nil, err
			}
		}
		cur = append(cur, c)
		size += len(b) + 1
	}
	if err := flush(); err != nil {
		return nil, nil, err
	}
	for r := m.Record; len(r) > 0; {
		n := min(len(r), partBytes)
		rs = append(rs, r[:n])
		r = r[n:]
	}
	return cs, rs, nil
}

// write stores m in layout 2: the changed parts (base: the parts of the stored
// header this write replaces, nil for none), then the header with base's revision
// conditions cmps in one transaction. It returns the transaction's response (nil
// with an error when it could not be sent); on a failed condition the new parts are
// deleted again, on success the parts only base names.
func (s *Store) write(ctx context.Context, m *store.Manifest, base *parts, cmps []clientv3.Cmp, op string) (*clientv3.TxnResponse, error) {
	cs, rs, err := split(m)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 6)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("etcdstore: %s snapshot %s: %w", op, m.ID, err)
	}
	old := map[string]string{} // sum -> name of base's parts
	if base != nil {
		for _, r := range append(append([]partRef{}, base.Containers...), base.Record...) {
			old[r.Sum] = r.Name
		}
	}
	var puts []clientv3.Op
	var fresh []string
	p := &parts{}
	ref := func(kind string, i int, v []byte) partRef {
		h := sum(v)
		if n, ok := old[h]; ok && strings.Contains(n, "-"+kind) {
			return partRef{Name: n, Sum: h}
		}
		n := fmt.Sprintf("%s-%s%d", hex.EncodeToString(nonce), kind, i)
		puts = append(puts, clientv3.OpPut(s.partsPrefix(m.ID)+n, string(v)))
		fresh = append(fresh, n)
		return partRef{Name: n, Sum: h}
	}
	for i, v := range cs {
		p.Containers = append(p.Containers, ref("c", i, v))
	}
	for i, v := range rs {
		p.Record = append(p.Record, ref("r", i, v))
	}
	h := header{Manifest: *m, Parts: p}
	h.Containers, h.Record = nil, nil
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: encode snapshot %s: %w", m.ID, err)
	}
	if err := s.batch(ctx, puts); err != nil {
		s.dropParts(ctx, m.ID, fresh)
		return nil, fmt.Errorf("etcdstore: %s snapshot %s: write its parts: %w", op, m.ID, err)
	}
	k := s.snapKey(m.ID)
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(k, string(hb))).Commit()
	if err != nil {
		// Whether the header landed is unknown: keep the parts (rm removes them).
		return nil, fmt.Errorf("etcdstore: %s snapshot %s: %w", op, m.ID, err)
	}
	if !resp.Succeeded {
		s.dropParts(ctx, m.ID, fresh)
		return resp, nil
	}
	now := p.names()
	var stale []string
	for n := range base.names() {
		if !now[n] {
			stale = append(stale, n)
		}
	}
	s.dropParts(ctx, m.ID, stale)
	return resp, nil
}

// batch runs ops in transactions of at most maxOps operations and about maxTxnBytes.
func (s *Store) batch(ctx context.Context, ops []clientv3.Op) error {
	for len(ops) > 0 {
		n, size := 0, 0
		for n < len(ops) && n < maxOps {
			l := len(ops[n].ValueBytes()) + len(ops[n].KeyBytes())
			if n > 0 && size+l > maxTxnBytes {
				break
			}
			size += l
			n++
		}
		if _, err := s.cli.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

// dropParts deletes the named parts of snapshot id, best effort: a part left behind
// is named by no header and goes with the snapshot's rm.
func (s *Store) dropParts(ctx context.Context, id string, names []string) {
	ops := make([]clientv3.Op, 0, len(names))
	for _, n := range names {
		ops = append(ops, clientv3.OpDelete(s.partsPrefix(id)+n))
	}
	_ = s.batch(context.WithoutCancel(ctx), ops)
}

// partValues returns by name the values of the part keys of snapshot id among kvs
// (a prefix read of PREFIX/parts/ or PREFIX/parts/ID/).
func (s *Store) partValues(kvs []*mvccpb.KeyValue, id string) map[string][]byte {
	pfx := []byte(s.partsPrefix(id))
	out := map[string][]byte{}
	for _, kv := range kvs {
		if bytes.HasPrefix(kv.Key, pfx) {
			out[string(kv.Key[len(pfx):])] = kv.Value
		}
	}
	return out
}
