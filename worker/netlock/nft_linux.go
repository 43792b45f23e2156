package netlock

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"github.com/swarmckpt/swarmckpt/worker/container"
)

// Table is the nftables table (family inet) holding every rule of this package.
const Table = "swarmckpt_lock"

// allComment marks the catch-all drop rule.
const allComment = "swarmckpt-lock-all"

// NFT is the real Locker: it runs nft inside the container's network namespace through
// nsenter --net=/proc/<pid>/ns/net.
type NFT struct {
	// NFT and Nsenter are the binaries; empty means "nft" and "nsenter" on PATH.
	NFT, Nsenter string
}

var _ Locker = (*NFT)(nil)

func (n *NFT) run(ctx context.Context, c container.Ref, stdin string, args ...string) ([]byte, error) {
	if c.Pid <= 0 {
		return nil, fmt.Errorf("netlock %s: no pid: %w", c, ErrNamespace)
	}
	ns := fmt.Sprintf("/proc/%d/ns/net", c.Pid)
	if _, err := os.Stat(ns); err != nil {
		return nil, fmt.Errorf("netlock %s: %w: %w", c, ErrNamespace, err)
	}
	nsenter, nft := or(n.Nsenter, "nsenter"), or(n.NFT, "nft")
	cmd := exec.CommandContext(ctx, nsenter, append([]string{"--net=" + ns, "--", nft}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("netlock %s: nft %s: %w: %s", c, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Lock implements Locker.
func (n *NFT) Lock(ctx context.Context, c container.Ref, peers []netip.Addr) error {
	return n.change(ctx, c, true, peers)
}

// Unlock implements Locker.
func (n *NFT) Unlock(ctx context.Context, c container.Ref, peers []netip.Addr) error {
	return n.change(ctx, c, false, peers)
}

// Set implements Locker: the table is replaced in one nft transaction.
func (n *NFT) Set(ctx context.Context, c container.Ref, s State) error {
	s = normalState(s)
	_, err := n.run(ctx, c, Script(s), "-f", "-")
	return err
}

func (n *NFT) change(ctx context.Context, c container.Ref, lock bool, peers []netip.Addr) error {
	cur := State{}
	if !(lock && len(peers) == 0) && !(!lock && len(peers) == 0) {
		var err error
		if cur, err = n.State(ctx, c); err != nil {
			return err
		}
	}
	_, err := n.run(ctx, c, Script(Apply(cur, lock, peers)), "-f", "-")
	return err
}

// Script returns the nft script that replaces the table with state s in one transaction
// (an unlocked state removes the table). Pure.
func Script(s State) string {
	var b strings.Builder
	// "add" then "delete" makes the delete succeed whether or not the table existed.
	fmt.Fprintf(&b, "add table inet %s\ndelete table inet %s\n", Table, Table)
	if !s.Locked() {
		return b.String()
	}
	var v4, v6 []string
	for _, a := range s.Peers {
		if a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	fmt.Fprintf(&b, "table inet %s {\n", Table)
	fmt.Fprintf(&b, "  set peers4 { type ipv4_addr;%s }\n", elems(v4))
	fmt.Fprintf(&b, "  set peers6 { type ipv6_addr;%s }\n", elems(v6))
	for _, h := range []struct{ chain, hook, iface, dir string }{
		{"in", "input", "iifname", "saddr"}, {"out", "output", "oifname", "daddr"},
	} {
		fmt.Fprintf(&b, "  chain %s {\n    type filter hook %s priority -310; policy accept;\n", h.chain, h.hook)
		fmt.Fprintf(&b, "    %s \"lo\" accept\n", h.iface)
		fmt.Fprintf(&b, "    ip %s @peers4 drop\n    ip6 %s @peers6 drop\n", h.dir, h.dir)
		if s.All {
			fmt.Fprintf(&b, "    drop comment %q\n", allComment)
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func elems(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return " elements = { " + strings.Join(a, ", ") + " };"
}

// State implements Locker by reading the table back from the kernel.
func (n *NFT) State(ctx context.Context, c container.Ref) (State, error) {
	out, err := n.run(ctx, c, "", "-j", "list", "ruleset")
	if err != nil {
		return State{}, err
	}
	return ParseState(out)
}

// ParseState extracts our table's State from `nft -j list ruleset` output. Pure.
func ParseState(js []byte) (State, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return State{}, fmt.Errorf("netlock: parse nft json: %w", err)
	}
	var s State
	for _, obj := range doc.Nftables {
		if raw, ok := obj["set"]; ok {
			var set struct {
				Table string            `json:"table"`
				Elem  []json.RawMessage `json:"elem"`
			}
			if err := json.Unmarshal(raw, &set); err != nil || set.Table != Table {
				continue
			}
			for _, e := range set.Elem {
				var str string
				if json.Unmarshal(e, &str) == nil {
					if a, err := netip.ParseAddr(str); err == nil {
						s.Peers = append(s.Peers, a)
					}
				}
			}
		}
		if raw, ok := obj["rule"]; ok {
			var rule struct {
				Table   string `json:"table"`
				Comment string `json:"comment"`
			}
			if json.Unmarshal(raw, &rule) == nil && rule.Table == Table && rule.Comment == allComment {
				s.All = true
			}
		}
	}
	if s.All {
		s.Peers = nil
	}
	s.Peers = normalize(s.Peers)
	return s, nil
}
