package members

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrKey is wrapped by every error about a gossip key file.
var ErrKey = errors.New("members: gossip key")

// keySize: AES-256.
const keySize = 32

// ReadKey reads a gossip key file: the key in base64 on its first line.
func ReadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (the coordinator makes it as gossip.key in its --data-dir)", ErrKey, err)
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not base64: %w", ErrKey, path, err)
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("%w: %s holds %d bytes, want 16, 24 or 32", ErrKey, path, n)
	}
	return k, nil
}

// LoadOrCreateKey reads the key at path, or makes a new random one there (mode 0600).
func LoadOrCreateKey(path string) ([]byte, error) {
	k, err := ReadKey(path)
	if err == nil {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKey, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k = make([]byte, keySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("%w: write %s: %w", ErrKey, path, err)
	}
	return k, nil
}

// KeyPath is where the coordinator keeps its gossip key in its data directory.
func KeyPath(dataDir string) string { return filepath.Join(dataDir, "gossip.key") }
