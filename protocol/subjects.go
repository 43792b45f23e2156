package protocol

import (
	"fmt"
	"strings"
)

// ValidToken reports whether s can be one token of a subject (a node name): non-empty,
// no '.', '*', '>' and no whitespace.
func ValidToken(s string) error {
	if s == "" {
		return fmt.Errorf("protocol: empty subject token: %w", ErrMalformed)
	}
	if strings.ContainsAny(s, ".*> \t\r\n") {
		return fmt.Errorf("protocol: subject token %q contains one of '.', '*', '>' or whitespace; rename the node: %w", s, ErrMalformed)
	}
	return nil
}
