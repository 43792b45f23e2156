package ociwrap

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// editConfig applies edit to the top-level fields of the bundle's config.json and
// writes it back atomically (same mode, rename over), keeping every field edit does
// not touch byte for byte.
func editConfig(bundle string, edit func(p string, cfg map[string]json.RawMessage) error) error {
	p := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadBundle, err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadBundle, p, err)
	}
	if err := edit(p, cfg); err != nil {
		return err
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	tmp := p + ".swarmckpt"
	if err := os.WriteFile(tmp, out, fi.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// addPrestartHook puts the hook {path, args} first (before libnetwork's, which moves
// the interfaces in) or last among the bundle's prestart hooks.
func addPrestartHook(bundle, path string, args []string, first bool) error {
	return editConfig(bundle, func(p string, cfg map[string]json.RawMessage) error {
		hooks := map[string]json.RawMessage{}
		if raw, ok := cfg["hooks"]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &hooks); err != nil {
				return fmt.Errorf("%w: %s hooks: %w", ErrBadBundle, p, err)
			}
		}
		var pre []json.RawMessage
		if raw, ok := hooks["prestart"]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &pre); err != nil {
				return fmt.Errorf("%w: %s prestart hooks: %w", ErrBadBundle, p, err)
			}
		}
		h, err := json.Marshal(struct {
			Path string   `json:"path"`
			Args []string `json:"args"`
		}{path, args})
		if err != nil {
			return err
		}
		if first {
			pre = append([]json.RawMessage{h}, pre...)
		} else {
			pre = append(pre, h)
		}
		if hooks["prestart"], err = json.Marshal(pre); err != nil {
			return err
		}
		cfg["hooks"], err = json.Marshal(hooks)
		return err
	})
}
