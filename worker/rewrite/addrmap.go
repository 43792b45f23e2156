package rewrite

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
)

// Sentinel errors.
var (
	// ErrBadMap: the address map is malformed or ambiguous.
	ErrBadMap = errors.New("rewrite: bad address map")
	// ErrImage: a CRIU image could not be read or written.
	ErrImage = errors.New("rewrite: bad CRIU image")
)

// MapVersion is the version of the address map file format.
const MapVersion = 1

// Map sends old addresses to new ones. The zero Map maps nothing.
type Map struct {
	m map[netip.Addr]netip.Addr
}

// NewMap validates pairs (old -> new): both valid, same family, neither loopback,
// unspecified, multicast or link-local (those are never a container's own address on
// its network), and no two old addresses going to the same new one (the rewrite could
// then merge two distinct connections into one 4-tuple).
func NewMap(pairs map[netip.Addr]netip.Addr) (Map, error) {
	m := Map{m: make(map[netip.Addr]netip.Addr, len(pairs))}
	seen := make(map[netip.Addr]netip.Addr, len(pairs))
	for o, n := range pairs {
		o, n = o.Unmap(), n.Unmap()
		for _, a := range []netip.Addr{o, n} {
			if !a.IsValid() || a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() ||
				a.IsLinkLocalUnicast() || a.Zone() != "" {
				return Map{}, fmt.Errorf("%w: %s -> %s: %s is not a container address", ErrBadMap, o, n, a)
			}
		}
		if o.Is4() != n.Is4() {
			return Map{}, fmt.Errorf("%w: %s -> %s changes the address family", ErrBadMap, o, n)
		}
		if prev, dup := seen[n]; dup && prev != o {
			return Map{}, fmt.Errorf("%w: %s and %s both map to %s", ErrBadMap, prev, o, n)
		}
		if prev, dup := m.m[o]; dup && prev != n {
			return Map{}, fmt.Errorf("%w: %s maps to both %s and %s", ErrBadMap, o, prev, n)
		}
		seen[n] = o
		m.m[o] = n
	}
	return m, nil
}

// Len is the number of mapped addresses.
func (m Map) Len() int { return len(m.m) }

// Lookup returns the new address of a, and whether a is mapped. An IPv4-mapped IPv6
// address (::ffff:a.b.c.d) is looked up by its IPv4 address and returned mapped.
func (m Map) Lookup(a netip.Addr) (netip.Addr, bool) {
	if a.Is4In6() {
		n, ok := m.m[a.Unmap()]
		if !ok {
			return a, false
		}
		return netip.AddrFrom16(n.As16()), true
	}
	n, ok := m.m[a]
	if !ok {
		return a, false
	}
	return n, true
}

// Pairs returns the mapping as old -> new, sorted by old address.
func (m Map) Pairs() [][2]netip.Addr {
	out := make([][2]netip.Addr, 0, len(m.m))
	for o, n := range m.m {
		out = append(out, [2]netip.Addr{o, n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0].Less(out[j][0]) })
	return out
}

// File is the address map file format (JSON):
//
//	{"version": 1, "addresses": {"10.0.9.5": "10.0.9.17", "fd00::5": "fd00::17"}}
type File struct {
	Version   int               `json:"version"`
	Addresses map[string]string `json:"addresses"`
}

// MarshalJSON encodes m in the File format.
func (m Map) MarshalJSON() ([]byte, error) {
	f := File{Version: MapVersion, Addresses: make(map[string]string, len(m.m))}
	for o, n := range m.m {
		f.Addresses[o.String()] = n.String()
	}
	return json.Marshal(f)
}

// ParseMap decodes an address map file (at most 1 MiB).
func ParseMap(r io.Reader) (Map, error) {
	var f File
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Map{}, fmt.Errorf("%w: decode: %w", ErrBadMap, err)
	}
	if f.Version != MapVersion {
		return Map{}, fmt.Errorf("%w: version %d, this build reads %d", ErrBadMap, f.Version, MapVersion)
	}
	pairs := make(map[netip.Addr]netip.Addr, len(f.Addresses))
	for o, n := range f.Addresses {
		oa, err := netip.ParseAddr(o)
		if err != nil {
			return Map{}, fmt.Errorf("%w: old address %q: %w", ErrBadMap, o, err)
		}
		na, err := netip.ParseAddr(n)
		if err != nil {
			return Map{}, fmt.Errorf("%w: new address %q for %s: %w", ErrBadMap, n, o, err)
		}
		if _, dup := pairs[oa.Unmap()]; dup {
			return Map{}, fmt.Errorf("%w: %s listed twice", ErrBadMap, oa)
		}
		pairs[oa.Unmap()] = na
	}
	return NewMap(pairs)
}
