package worker

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Authentication of the worker's endpoint.
//
// Whoever reaches a worker's endpoint can make it dump any container of its node (its
// memory, secrets included) into another address, restore an image set as root, or
// remove containers. With Config.Token set, every request must carry it
// (`Authorization: Bearer TOKEN`): the node agent, the CLI and the other workers (Send,
// DumpTo, DumpInto) send it; a request without it, or with another, is answered 401
// and logged. All workers of a cluster share one token (swarmckpt worker --token-file;
// the lab writes one for its workers and agents). The page server DumpInto opens is
// CRIU's own protocol and carries no token: it is opened only by an authenticated
// request, accepts one connection, from the host that asked, within 30 s, and its pages
// are kept only if the authenticated live stream of the same set claims them.

const bearer = "Bearer "

// ErrUnauthorized: the worker refused a request without its token.
var ErrUnauthorized = errors.New("worker: unauthorized")

// authorized wraps next so that only requests carrying the worker's token reach it.
func (w *Worker) authorized(next http.Handler) http.Handler {
	if w.cfg.Token == "" {
		return next
	}
	want := []byte(w.cfg.Token)
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), bearer)
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.log.Warn("refused a request without this worker's token", "from", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
			writeJSON(rw, http.StatusUnauthorized, apiError{Error: fmt.Sprintf(
				"worker %s needs the cluster's worker token (Authorization: Bearer): give the caller the file of swarmckpt worker --token-file (agent: --worker-token-file)",
				w.cfg.Node)})
			return
		}
		next.ServeHTTP(rw, r)
	})
}

// authorize adds token to r (nothing when token is empty).
func authorize(r *http.Request, token string) {
	if token != "" {
		r.Header.Set("Authorization", bearer+token)
	}
}

// ReadTokenFile reads a worker token file. A file that other users can read, or an
// empty one, is refused: the token lets its holder dump any container of the cluster.
func ReadTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("worker token file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("worker token file %s is readable by other users (mode %v): chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("worker token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("worker token file %s: want one token on one line (e.g. head -c 32 /dev/urandom | xxd -p -c 64 > %s)", path, path)
	}
	return tok, nil
}

// WriteNewTokenFile writes a fresh random token into path (mode 0600) unless path
// holds one already, and returns the token in the file.
func WriteNewTokenFile(path string) (string, error) {
	if tok, err := ReadTokenFile(path); err == nil {
		return tok, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("worker token: %w", err)
	}
	tok := hex.EncodeToString(b)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("worker token file: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("worker token file %s: %w", path, err)
	}
	return tok, f.Close()
}
