package api

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The names a request carries, checked by the CLI before it sends anything and by the
// coordinator before it locks, freezes or writes anything (docs/cli.md, "Names and
// ids"). Each appears in NATS subjects (one token: no '.', '*', '>' or whitespace),
// in etcd keys and in directory names on the nodes, hence the short alphabets.
const (
	// MaxIDLen is the longest snapshot id. A set's directory is named ID.SERVICE.SLOT,
	// which stays under the 255 bytes of a file name.
	MaxIDLen = 128
	// MaxStackLen is the longest stack name: swarm's limit on a service name (a DNS
	// label), of which the stack name is the prefix (STACK_SERVICE).
	MaxStackLen = 63
	// MaxNodeLen is the longest node name (a host name's limit).
	MaxNodeLen = 253
	// MaxServiceLen is the longest service name (swarm's).
	MaxServiceLen = 63
)

// What each kind of name allows, as the error messages say it.
const (
	idRule      = "1 to 128 letters, digits, '-' or '_', starting with a letter or digit"
	stackRule   = "1 to 63 letters, digits, '-' or '_', starting and ending with a letter or digit (swarm's rule for the service names STACK_SERVICE)"
	nodeRule    = "1 to 253 letters, digits, '-' or '_', starting with a letter or digit (a host name without dots: node names are NATS subject tokens)"
	serviceRule = "1 to 63 letters, digits, '-' or '_', starting and ending with a letter or digit"
	keyRule     = "SERVICE.SLOT: a service name (" + serviceRule + "), a dot and a slot number 1 to 999999999"
)

// ValidID checks a snapshot id: 1..MaxIDLen of [A-Za-z0-9_-], starting with a letter
// or digit. The ids NewID generates (STACK-YYYYMMDD-HHMMSS-RANDOM) pass for every
// valid stack name. A bad id is an *Error with CodeBadRequest.
func ValidID(id string) error {
	return check("snapshot id", id, MaxIDLen, false, idRule)
}

// ValidStack checks a stack name: 1..MaxStackLen of [A-Za-z0-9_-], starting and
// ending with a letter or digit.
func ValidStack(name string) error {
	return check("stack name", name, MaxStackLen, true, stackRule)
}

// ValidNode checks a node name: 1..MaxNodeLen of [A-Za-z0-9_-], starting with a
// letter or digit.
func ValidNode(name string) error {
	return check("node name", name, MaxNodeLen, false, nodeRule)
}

// ValidKey checks a container key SERVICE.SLOT (store.Container.Key).
func ValidKey(key string) error {
	svc, slot, ok := strings.Cut(key, ".")
	if !ok {
		return Errorf(CodeBadRequest, "container %s has no '.SLOT'; want %s", show(key), keyRule)
	}
	if err := check("service name", svc, MaxServiceLen, true, serviceRule); err != nil {
		return Errorf(CodeBadRequest, "container %s: %v", show(key), err)
	}
	n, err := strconv.Atoi(slot)
	if err != nil || n < 1 || n > 999999999 || strconv.Itoa(n) != slot {
		return Errorf(CodeBadRequest, "container %s: slot %s is not a number 1 to 999999999; want %s", show(key), show(slot), keyRule)
	}
	return nil
}

// ValidTargets checks a restore's SERVICE.SLOT=NODE targets (RestoreRequest.Targets),
// in key order.
func ValidTargets(targets map[string]string) error {
	keys := make([]string, 0, len(targets))
	for k := range targets {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same message for the same request
	for _, k := range keys {
		if err := ValidKey(k); err != nil {
			return err
		}
		if err := ValidNode(targets[k]); err != nil {
			return Errorf(CodeBadRequest, "target of %s: %v", k, err)
		}
	}
	return nil
}

// check is the rule every name shares: 1..max characters of [A-Za-z0-9_-], the first
// (and with alnumEnd the last) a letter or digit.
func check(what, s string, max int, alnumEnd bool, rule string) error {
	bad := func(why string) error {
		return Errorf(CodeBadRequest, "%s %s %s; use %s", what, show(s), why, rule)
	}
	switch {
	case s == "":
		return Errorf(CodeBadRequest, "empty %s; use %s", what, rule)
	case len(s) > max:
		return bad(fmt.Sprintf("is %d characters long, more than %d", len(s), max))
	case !alnum(s[0]):
		return bad(fmt.Sprintf("starts with %q", s[0]))
	case alnumEnd && !alnum(s[len(s)-1]):
		return bad(fmt.Sprintf("ends with %q", s[len(s)-1]))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' {
			if c >= 0x80 {
				return bad("contains a non-ASCII character")
			}
			return bad(fmt.Sprintf("contains %q", c))
		}
	}
	return nil
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// show quotes s for a message, shortened when long (a 5,000-character name is not
// echoed whole).
func show(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%q...", s[:40])
	}
	return fmt.Sprintf("%q", s)
}
