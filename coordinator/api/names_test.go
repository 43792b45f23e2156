package api_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

func TestNames(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		what  string
		check func(string) error
		in    string
		ok    bool
		says  string // in the message of a refusal
	}{
		{"id", api.ValidID, "bank-20261122-021500-1a2b3c", true, ""},
		{"id", api.ValidID, "echo-before-upgrade", true, ""},
		{"id", api.ValidID, "Snap_1", true, ""},
		{"id", api.ValidID, "7", true, ""},
		{"id", api.ValidID, long(128), true, ""},
		{"id", api.ValidID, long(129), false, "129 characters long, more than 128"},
		{"id", api.ValidID, long(3000), false, "3000 characters long"},
		{"id", api.ValidID, "", false, "empty snapshot id"},
		{"id", api.ValidID, "a/b", false, `contains '/'`},
		{"id", api.ValidID, "a.b", false, `contains '.'`},
		{"id", api.ValidID, "a*", false, `contains '*'`},
		{"id", api.ValidID, "a>", false, `contains '>'`},
		{"id", api.ValidID, "a b", false, `contains ' '`},
		{"id", api.ValidID, "a\tb", false, `contains '\t'`},
		{"id", api.ValidID, "..", false, `starts with '.'`},
		{"id", api.ValidID, "-x", false, `starts with '-'`},
		{"id", api.ValidID, "_x", false, `starts with '_'`},
		{"id", api.ValidID, "snap-", true, ""},
		{"id", api.ValidID, "café", false, "non-ASCII"},
		{"stack", api.ValidStack, "bank", true, ""},
		{"stack", api.ValidStack, "my_stack-2", true, ""},
		{"stack", api.ValidStack, "B", true, ""},
		{"stack", api.ValidStack, long(63), true, ""},
		{"stack", api.ValidStack, long(64), false, "more than 63"},
		{"stack", api.ValidStack, long(5000), false, "5000 characters long"},
		{"stack", api.ValidStack, "", false, "empty stack name"},
		{"stack", api.ValidStack, "a.b", false, `contains '.'`},
		{"stack", api.ValidStack, "bank-", false, `ends with '-'`},
		{"stack", api.ValidStack, "_bank", false, `starts with '_'`},
		{"stack", api.ValidStack, "ba/nk", false, `contains '/'`},
		{"node", api.ValidNode, "lab-1", true, ""},
		{"node", api.ValidNode, "e2e1234-3", true, ""},
		{"node", api.ValidNode, "host", true, ""},
		{"node", api.ValidNode, long(253), true, ""},
		{"node", api.ValidNode, long(254), false, "more than 253"},
		{"node", api.ValidNode, "", false, "empty node name"},
		{"node", api.ValidNode, "node1.example.com", false, `contains '.'`},
		{"node", api.ValidNode, "lab>", false, `contains '>'`},
		{"key", api.ValidKey, "bank_holder.1", true, ""},
		{"key", api.ValidKey, "echo_server.12", true, ""},
		{"key", api.ValidKey, "bank_holder", false, "no '.SLOT'"},
		{"key", api.ValidKey, "bank_holder.0", false, "slot \"0\""},
		{"key", api.ValidKey, "bank_holder.01", false, "slot \"01\""},
		{"key", api.ValidKey, "bank_holder.x", false, "slot \"x\""},
		{"key", api.ValidKey, "bank_holder.1.2", false, "slot \"1.2\""},
		{"key", api.ValidKey, ".1", false, "empty service name"},
		{"key", api.ValidKey, "bank/holder.1", false, `contains '/'`},
		{"key", api.ValidKey, long(64) + ".1", false, "more than 63"},
	}
	for _, c := range cases {
		err := c.check(c.in)
		name := c.what + " " + c.in
		if len(name) > 60 {
			name = name[:60] + "..."
		}
		if c.ok {
			if err != nil {
				t.Errorf("%s: refused: %v", name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted, want refused", name)
			continue
		}
		if !errors.Is(err, api.ErrBadRequest) {
			t.Errorf("%s: %v is not a bad request", name, err)
		}
		if !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "use ") && !strings.Contains(err.Error(), "want ") {
			t.Errorf("%s: message %q, want it to say %q and what is allowed", name, err, c.says)
		}
		if len(err.Error()) > 400 {
			t.Errorf("%s: message is %d characters long: a long name must not be echoed whole", name, len(err.Error()))
		}
	}
}
