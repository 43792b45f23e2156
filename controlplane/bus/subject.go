package bus

import (
	"fmt"
	"strings"
)

// ValidSubject checks a subject used to publish (no wildcards) or, with wild set, to
// subscribe.
func ValidSubject(s string, wild bool) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrBadSubject)
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("%w: %q has an empty token", ErrBadSubject, s)
		case strings.ContainsAny(t, " \t\r\n"):
			return fmt.Errorf("%w: %q contains whitespace", ErrBadSubject, s)
		case t == "*" || t == ">":
			if !wild {
				return fmt.Errorf("%w: %q: wildcards only in subscriptions", ErrBadSubject, s)
			}
			if t == ">" && i != len(toks)-1 {
				return fmt.Errorf("%w: %q: '>' must be the last token", ErrBadSubject, s)
			}
		}
	}
	return nil
}

// Match reports whether subject matches pattern (NATS wildcard rules).
func Match(pattern, subject string) bool {
	p := strings.Split(pattern, ".")
	s := strings.Split(subject, ".")
	for i, t := range p {
		if t == ">" {
			return len(s) > i
		}
		if i >= len(s) {
			return false
		}
		if t != "*" && t != s[i] {
			return false
		}
	}
	return len(p) == len(s)
}
