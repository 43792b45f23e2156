package xlate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/swarmckpt/swarmckpt/worker/container"
)

// NFT is the real Translator: nft run inside the container's network namespace
// through nsenter (as worker/netlock's NFT).
type NFT struct {
	// NFT, Nsenter and SS name the binaries ("" = from PATH).
	NFT, Nsenter, SS string

	mu sync.Mutex // one change at a time: read, apply, write
}

var _ Translator = (*NFT)(nil)

func (n *NFT) ns(c container.Ref) (string, error) {
	if c.Pid <= 0 {
		return "", fmt.Errorf("xlate %s: no pid: %w", c, ErrNamespace)
	}
	ns := fmt.Sprintf("/proc/%d/ns/net", c.Pid)
	if _, err := os.Stat(ns); err != nil {
		return "", fmt.Errorf("xlate %s: %w: %w", c, ErrNamespace, err)
	}
	return ns, nil
}

func (n *NFT) run(ctx context.Context, c container.Ref, bin, stdin string, args ...string) ([]byte, error) {
	ns, err := n.ns(c)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, or(n.Nsenter, "nsenter"), append([]string{"--net=" + ns, "--", bin}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("xlate %s: %s %s: %w: %s", c, bin, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Add implements Translator.
func (n *NFT) Add(ctx context.Context, c container.Ref, old, new netip.Addr) error {
	return n.change(ctx, c, true, old, new)
}

// Remove implements Translator.
func (n *NFT) Remove(ctx context.Context, c container.Ref, old netip.Addr) error {
	return n.change(ctx, c, false, old, netip.Addr{})
}

func (n *NFT) change(ctx context.Context, c container.Ref, add bool, old, new netip.Addr) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	cur, err := n.Rules(ctx, c)
	if err != nil {
		return err
	}
	rules, err := Apply(cur, add, old, new)
	if err != nil {
		return err
	}
	_, err = n.run(ctx, c, or(n.NFT, "nft"), Script(rules), "-f", "-")
	return err
}

// Rules implements Translator: the out maps of the table.
func (n *NFT) Rules(ctx context.Context, c container.Ref) ([]Rule, error) {
	out, err := n.run(ctx, c, or(n.NFT, "nft"), "", "-j", "list", "ruleset")
	if err != nil {
		return nil, err
	}
	return ParseRules(out)
}

// ParseRules extracts the table's rules from `nft -j list ruleset` output. Pure.
func ParseRules(js []byte) ([]Rule, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return nil, fmt.Errorf("xlate: parse nft json: %w", err)
	}
	var rules []Rule
	for _, obj := range doc.Nftables {
		raw, ok := obj["map"]
		if !ok {
			continue
		}
		var m struct {
			Table string              `json:"table"`
			Name  string              `json:"name"`
			Elem  [][]json.RawMessage `json:"elem"`
		}
		if err := json.Unmarshal(raw, &m); err != nil || m.Table != Table || (m.Name != "out4" && m.Name != "out6") {
			continue
		}
		for _, e := range m.Elem {
			var k, v string
			if len(e) != 2 || json.Unmarshal(e[0], &k) != nil || json.Unmarshal(e[1], &v) != nil {
				return nil, fmt.Errorf("xlate: map %s: unexpected element %s", m.Name, e)
			}
			o, err1 := netip.ParseAddr(k)
			w, err2 := netip.ParseAddr(v)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("xlate: map %s: bad element %s : %s", m.Name, k, v)
			}
			rules = append(rules, Rule{Old: o, New: w})
		}
	}
	return Apply(rules, false, netip.Addr{}, netip.Addr{})
}

// InUse implements Translator: `ss -Htn dst OLD` in the namespace lists a socket.
func (n *NFT) InUse(ctx context.Context, c container.Ref, old netip.Addr) (bool, error) {
	dst := old.Unmap().String()
	if old.Unmap().Is6() {
		dst = "[" + dst + "]"
	}
	out, err := n.run(ctx, c, or(n.SS, "ss"), "", "-Htan", "dst", dst)
	if err != nil {
		return false, err
	}
	return len(bytes.TrimSpace(out)) > 0, nil
}
