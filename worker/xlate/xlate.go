package xlate

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/swarmckpt/swarmckpt/worker/container"
)

// Table is the nftables table (family inet) holding every translation of a namespace.
const Table = "swarmckpt_xlate"

var (
	// ErrNamespace: the container's network namespace cannot be entered (it exited?).
	ErrNamespace = errors.New("xlate: network namespace unavailable")
	// ErrBadRule: the addresses cannot be translated (invalid, loopback, different
	// families, or the same).
	ErrBadRule = errors.New("xlate: bad translation")
	// ErrConflict: the new address is already the target of another translation.
	ErrConflict = errors.New("xlate: new address already translated from another")
)

// Rule translates Old (what the peer's sockets know) to New (where the moved
// container runs now).
type Rule struct {
	Old, New netip.Addr
}

func (r Rule) String() string { return r.Old.String() + "->" + r.New.String() }

// Translator keeps the translations of containers' network namespaces.
type Translator interface {
	// Add translates old to new in c's namespace, replacing a translation of old to
	// another address, and chaining one of another address to old (Apply). Idempotent.
	Add(ctx context.Context, c container.Ref, old, new netip.Addr) error
	// Remove removes the translation of old (none: not an error).
	Remove(ctx context.Context, c container.Ref, old netip.Addr) error
	// Rules lists c's translations, sorted by Old.
	Rules(ctx context.Context, c container.Ref) ([]Rule, error)
	// InUse tells whether a TCP socket of c's namespace has old as its remote address.
	InUse(ctx context.Context, c container.Ref, old netip.Addr) (bool, error)
}

// Check validates a translation. Pure.
func Check(old, new netip.Addr) error {
	switch {
	case !old.IsValid() || !new.IsValid():
		return fmt.Errorf("%w: %v -> %v: invalid address", ErrBadRule, old, new)
	case old.Unmap().Is4() != new.Unmap().Is4():
		return fmt.Errorf("%w: %v -> %v: different address families", ErrBadRule, old, new)
	case old.IsLoopback() || new.IsLoopback():
		return fmt.Errorf("%w: %v -> %v: loopback is never translated", ErrBadRule, old, new)
	case old.Unmap() == new.Unmap():
		return fmt.Errorf("%w: %v -> %v: the same address", ErrBadRule, old, new)
	}
	return nil
}

// Apply returns rules with old translated to new (add) or without old (!add),
// sorted by Old. Adding a translation whose New another Old already has is
// ErrConflict (the reverse map would be ambiguous). A container that moves again
// chains: adding old -> new where a rule X -> old exists (the peer's sockets still
// know it as X, from before its first move) re-points that rule to X -> new (and
// drops it if X is new: back at its first address), and old -> new itself is then
// not added, since new's packets can be given only one source address back (the
// first one, which the peer's connections from before the first move know; a
// connection the peer opened to old since then breaks). Pure.
func Apply(rules []Rule, add bool, old, new netip.Addr) ([]Rule, error) {
	old, new = old.Unmap(), new.Unmap()
	out := slices.DeleteFunc(slices.Clone(rules), func(r Rule) bool { return r.Old == old })
	if add {
		if err := Check(old, new); err != nil {
			return nil, err
		}
		chained := false
		for i := range out {
			if out[i].New == old {
				out[i].New, chained = new, true
			}
		}
		out = slices.DeleteFunc(out, func(r Rule) bool { return r.Old == r.New })
		seen := map[netip.Addr]netip.Addr{}
		for _, r := range out {
			if o, ok := seen[r.New]; ok {
				return nil, fmt.Errorf("%w: %v is already translated from %v", ErrConflict, r.New, o)
			}
			seen[r.New] = r.Old
		}
		if !chained {
			if o, ok := seen[new]; ok {
				return nil, fmt.Errorf("%w: %v is already translated from %v", ErrConflict, new, o)
			}
			out = append(out, Rule{Old: old, New: new})
		}
	}
	slices.SortFunc(out, func(a, b Rule) int { return a.Old.Compare(b.Old) })
	return out, nil
}

// Script returns the nft script that replaces the table with rules in one
// transaction (no rules: the table is removed). Pure.
func Script(rules []Rule) string {
	var b strings.Builder
	// "add" then "delete" makes the delete succeed whether or not the table existed.
	fmt.Fprintf(&b, "add table inet %s\ndelete table inet %s\n", Table, Table)
	if len(rules) == 0 {
		return b.String()
	}
	var out4, in4, out6, in6 []string
	for _, r := range rules {
		if r.Old.Is4() {
			out4 = append(out4, r.Old.String()+" : "+r.New.String())
			in4 = append(in4, r.New.String()+" : "+r.Old.String())
		} else {
			out6 = append(out6, r.Old.String()+" : "+r.New.String())
			in6 = append(in6, r.New.String()+" : "+r.Old.String())
		}
	}
	fmt.Fprintf(&b, "table inet %s {\n", Table)
	maps := func(name, typ string, elems []string) {
		if len(elems) > 0 {
			fmt.Fprintf(&b, "\tmap %s {\n\t\ttype %s : %s\n\t\telements = { %s }\n\t}\n", name, typ, typ, strings.Join(elems, ", "))
		}
	}
	maps("out4", "ipv4_addr", out4)
	maps("in4", "ipv4_addr", in4)
	maps("out6", "ipv6_addr", out6)
	maps("in6", "ipv6_addr", in6)
	fmt.Fprintf(&b, "\tchain out {\n\t\ttype route hook output priority raw; policy accept;\n")
	if len(out4) > 0 {
		fmt.Fprintf(&b, "\t\tip daddr set ip daddr map @out4 notrack\n")
	}
	if len(out6) > 0 {
		fmt.Fprintf(&b, "\t\tip6 daddr set ip6 daddr map @out6 notrack\n")
	}
	fmt.Fprintf(&b, "\t}\n\tchain in {\n\t\ttype filter hook prerouting priority raw; policy accept;\n")
	if len(in4) > 0 {
		fmt.Fprintf(&b, "\t\tip saddr set ip saddr map @in4 notrack\n")
	}
	if len(in6) > 0 {
		fmt.Fprintf(&b, "\t\tip6 saddr set ip6 saddr map @in6 notrack\n")
	}
	fmt.Fprintf(&b, "\t}\n}\n")
	return b.String()
}
