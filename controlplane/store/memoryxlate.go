package store

import (
	"context"
	"encoding/json"
	"fmt"
)

func memXlateKey(container, old string) string { return container + " " + old }

// PutTranslation implements Translations.
func (s *Memory) PutTranslation(_ context.Context, t Translation) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("store: encode the translation record of %s %s: %w", t.Container, t.Old, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	s.xlates[memXlateKey(t.Container, t.Old)] = memEntry{data: b, rev: s.rev}
	return nil
}

// ListTranslations implements Translations.
func (s *Memory) ListTranslations(context.Context) ([]Translation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Translation, 0, len(s.xlates))
	for k, e := range s.xlates {
		var t Translation
		if err := json.Unmarshal(e.data, &t); err != nil {
			return nil, fmt.Errorf("translation record %s: %w", k, ErrCorrupt)
		}
		out = append(out, t)
	}
	SortTranslations(out)
	return out, nil
}

// DeleteTranslation implements Translations.
func (s *Memory) DeleteTranslation(_ context.Context, container, old string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.xlates, memXlateKey(container, old))
	return nil
}
