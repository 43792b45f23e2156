package worker

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/xlate"
)

// Translations is the role a worker offers for a swarm-mode move (issue 16, "Only
// the tasks on NODE stop"): a task moved to another node got a new address, and the
// containers of its stack that stay where they are keep their connections to it
// through a stateless translation of its old address to the new one in their own
// network namespace (package worker/xlate). The worker removes a translation by
// itself once no TCP socket of the container uses the old address any more (polled
// every Config.XlatePoll), or once the container ended. *Worker, *Client and *Fake
// implement it.
type Translations interface {
	// Translate makes the running container reach old at new from now on (and see
	// new's packets as old's), replacing a translation of old to another address.
	// Idempotent. A bad pair (invalid, loopback, different families, the same
	// address, new already translated from another address) is
	// node.ErrInvalidArgument; a container not running here node.ErrNotFound.
	Translate(ctx context.Context, containerName string, old, new netip.Addr) error
	// Translations lists the translations the worker keeps, sorted by container and
	// old address.
	Translations(ctx context.Context) ([]Translation, error)
}

// Translation is one translation a worker keeps.
type Translation struct {
	// ContainerID and Name are the container whose namespace translates.
	ContainerID string     `json:"containerID"`
	Name        string     `json:"name,omitempty"`
	Old         netip.Addr `json:"old"`
	New         netip.Addr `json:"new"`
	// Since is when it was installed.
	Since time.Time `json:"since"`
}

type xlateRequest struct {
	Old netip.Addr `json:"old"`
	New netip.Addr `json:"new"`
}

// Translate implements Translations.
func (c *Client) Translate(ctx context.Context, name string, old, new netip.Addr) error {
	return c.call(ctx, http.MethodPut, "/v1/xlate/"+url.PathEscape(name), apiRequest{Xlate: xlateRequest{Old: old, New: new}}, nil)
}

// Translations implements Translations.
func (c *Client) Translations(ctx context.Context) ([]Translation, error) {
	var out []Translation
	err := c.call(ctx, http.MethodGet, "/v1/xlate", apiRequest{}, &out)
	return out, err
}

var _ Translations = (*Client)(nil)

func xlateKey(id string, old netip.Addr) string { return id + " " + old.Unmap().String() }

// keptAfter returns kept with container id's translations replaced by rules (a
// translation kept before keeps its Since). Pure.
func keptAfter(kept map[string]Translation, id, name string, rules []xlate.Rule, now time.Time) map[string]Translation {
	out := map[string]Translation{}
	for k, t := range kept {
		if t.ContainerID != id {
			out[k] = t
		}
	}
	for _, r := range rules {
		k := xlateKey(id, r.Old)
		since := now
		if t, ok := kept[k]; ok {
			since = t.Since
		}
		out[k] = Translation{ContainerID: id, Name: name, Old: r.Old, New: r.New, Since: since}
	}
	return out
}
