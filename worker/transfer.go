package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// Transfer endpoint: PUT /v1/sets/<set ID> with a tar stream (imageset.Send) as body.
// The receiver writes into <sets>/.incoming-<set ID>, hashing while it writes, and
// renames it to <sets>/<set ID> only when every file matched the manifest.
const setsPath = "/v1/sets/"

func (w *Worker) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT "+setsPath+"{id}", func(rw http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		v, err := w.Receive(r.Context(), id, r.Body)
		if err != nil {
			code := http.StatusInternalServerError
			switch {
			case errors.Is(err, imageset.ErrChecksum), errors.Is(err, imageset.ErrMissing), errors.Is(err, imageset.ErrManifest), errors.Is(err, ErrBadSetID):
				code = http.StatusBadRequest
			case errors.Is(err, os.ErrExist):
				code = http.StatusConflict
			}
			http.Error(rw, err.Error(), code)
			return
		}
		fmt.Fprintf(rw, "received %s\n", v)
	})
	w.api(mux)
	return mux
}

// Receive stores the stream r as image set id, verified on the fly.
func (w *Worker) Receive(ctx context.Context, id string, r io.Reader) (imageset.Verified, error) {
	final, err := w.setPath(id)
	if err != nil {
		return imageset.Verified{}, err
	}
	if _, err := os.Stat(final); err == nil {
		return imageset.Verified{}, fmt.Errorf("worker %s: receive set %s: %w", w.cfg.Node, id, os.ErrExist)
	}
	tmp := filepath.Join(w.SetsDir(), ".incoming-"+id)
	_ = os.RemoveAll(tmp) // a previous, interrupted transfer
	start := time.Now()
	v, err := imageset.Receive(r, tmp)
	if err != nil {
		return v, fmt.Errorf("worker %s: receive set %s: %w", w.cfg.Node, id, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return v, errors.Join(fmt.Errorf("worker %s: receive set %s: %w", w.cfg.Node, id, err), os.RemoveAll(tmp))
	}
	w.log.Info("image set received", "set", id, "bytes", v.Manifest().TotalBytes(), "seconds", time.Since(start).Seconds())
	v = v.Moved(final)
	w.remember(id, v)
	return v, nil
}

// Send implements Service: it streams set id to the worker at addr.
func (w *Worker) Send(ctx context.Context, id, addr string) error {
	set, err := w.setPath(id)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(set, imageset.ManifestName)); err != nil {
		return fmt.Errorf("worker %s: send set %s: %w", w.cfg.Node, id, ErrNoSet)
	}
	return SendSet(ctx, set, "http://"+addr+setsPath+id)
}

// SendSet streams the set directory to url (PUT), without staging it anywhere.
func SendSet(ctx context.Context, set, url string) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(imageset.Send(pw, set)) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, pr)
	if err != nil {
		pr.Close()
		return fmt.Errorf("send %s: %w", set, err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		pr.Close()
		return fmt.Errorf("send %s to %s: %w", set, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("send %s to %s: receiver answered %s: %s", set, url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
