package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

func (s *Store) translationKey(container, old string) string {
	return s.prefix + "/xlates/" + container + "/" + old
}

// PutTranslation implements store.Translations (a plain put: the record of a
// container and old address is the coordinator's alone, and it is replaced whole).
func (s *Store) PutTranslation(ctx context.Context, t store.Translation) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("etcdstore: encode the translation record of %s %s: %w", t.Container, t.Old, err)
	}
	if _, err := s.cli.Put(ctx, s.translationKey(t.Container, t.Old), string(b)); err != nil {
		return fmt.Errorf("etcdstore: write the translation record of %s %s: %w", t.Container, t.Old, err)
	}
	return nil
}

// ListTranslations implements store.Translations.
func (s *Store) ListTranslations(ctx context.Context) ([]store.Translation, error) {
	ptrs, err := listJSON(ctx, s, s.prefix+"/xlates/", "translation record",
		func(*store.Translation, int64) {},
		func(k string) string {
			return "delete key " + k + ": the translation it names is then no longer known to the coordinator"
		})
	if err != nil {
		return nil, err
	}
	out := make([]store.Translation, 0, len(ptrs))
	for _, t := range ptrs {
		out = append(out, *t)
	}
	store.SortTranslations(out)
	return out, nil
}

// DeleteTranslation implements store.Translations.
func (s *Store) DeleteTranslation(ctx context.Context, container, old string) error {
	if _, err := s.cli.Delete(ctx, s.translationKey(container, old)); err != nil {
		return fmt.Errorf("etcdstore: delete the translation record of %s %s: %w", container, old, err)
	}
	return nil
}
