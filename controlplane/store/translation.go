package store

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Translation is the coordinator's record of an address translation it had a node's
// worker install in a staying container (node operation xlate; docs/drain.md "The
// address map of a held task"): the container reaches Old at New, the address of a
// task moved earlier. The coordinator reads it when that container moves in turn
// (its images are rewritten with the translation, which stays behind with its old
// namespace), and deletes it once the node's worker no longer keeps the translation
// (its last connection to Old ended, or the container ended). Stored, not kept in the
// leader's memory, so that a new leader knows the translations its predecessors
// installed.
type Translation struct {
	// Node is where the container runs.
	Node string `json:"node"`
	// Container is the translating container's ID.
	Container string `json:"container"`
	// Old and New are IP addresses (netip.Addr's text form).
	Old string `json:"old"`
	New string `json:"new"`
	// Stack is the stack of the moved task and the container.
	Stack string `json:"stack,omitempty"`
	// At is when the coordinator recorded it (after the node translated).
	At time.Time `json:"at"`
}

// Translations keeps the coordinator's translation records, one per container and
// old address.
type Translations interface {
	// PutTranslation stores t, replacing the record of the same container and old
	// address.
	PutTranslation(ctx context.Context, t Translation) error
	// ListTranslations returns every record, sorted by container, then old address.
	// One that does not decode is an error wrapping ErrCorrupt naming its key.
	ListTranslations(ctx context.Context) ([]Translation, error)
	// DeleteTranslation removes the record of container's translation of old;
	// absent: no error.
	DeleteTranslation(ctx context.Context, container, old string) error
}

// SortTranslations sorts ts by container, then old address (ListTranslations' order).
func SortTranslations(ts []Translation) {
	slices.SortFunc(ts, func(a, b Translation) int {
		if c := strings.Compare(a.Container, b.Container); c != 0 {
			return c
		}
		return strings.Compare(a.Old, b.Old)
	})
}
