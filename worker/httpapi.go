package worker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// The worker's transfer endpoint also serves its roles as JSON over HTTP: for its node's
// agent (worker/agent, through Client) and local tools (benchmarks, tests, debugging).
// An error answers with node.Status (message, code, reason) and the code's HTTP status. With Config.Token set,
// every route needs it (auth.go; Client.Token). Routes:
//
//	POST /v1/containers/{name}/lock    {"peers":[...],"deadline":"RFC3339"}
//	POST /v1/containers/{name}/unlock  {"peers":[...]}
//	POST /v1/containers/{name}/freeze  {"deadline":"RFC3339"}
//	POST /v1/containers/{name}/thaw
//	POST /v1/containers/{name}/stop                                     (Stop: end a container frozen since its dump)
//	POST /v1/containers/{name}/dumpable                                 (CheckDump: refused as Lock would)
//	POST /v1/space                                                      (CheckSpace: the dumps' disk space)
//	GET  /v1/containers/{name}/state                                    -> {"state":ContainerState} (ContainerStater)
//	POST /v1/containers/{name}/dump    {"set":"ID","leaveRunning":bool,"carryVolumes":bool,"preCopied":bool}  -> Manifest
//	POST /v1/containers/{name}/dumpto  {"set":"ID","addr":"host:port","leaveRunning":bool,"carryVolumes":bool,"preCopied":bool} -> Manifest
//	POST /v1/containers/{name}/dumpinto {"set":"ID","addr":"host:port","leaveRunning":bool,"carryVolumes":bool}  -> Manifest
//	POST /v1/containers/{name}/precopy {"set":"ID","addr":"host:port"}  -> PreCopyReport (pre-dumps kept for the set's dump, sent ahead to addr)
//	POST /v1/containers/{name}/dumplazy {"set":"ID","addr":"host:port","leaveRunning":bool}  -> Manifest (leaveRunning: held, DumpWith Lazy)
//	POST /v1/sets/{id}/waitlazy                                          (WaitLazy: until a held post-copy dump's last page was served)
//	POST /v1/containers/{name}/disconnect                                (DisconnectHeld: a frozen post-copy source off its networks)
//	POST /v1/containers/{name}/reconnect                                 (ReconnectHeld: a held post-copy source back on its networks)
//	POST /v1/sets/{id}/cancellazy                                        (CancelLazy: stop that page server; nil when none runs)
//	POST /v1/sets/{id}/send            {"addr":"host:port"}              -> SendResult
//	POST /v1/sets/{id}/restore         RestoreOptions                    -> container.Ref
//	DELETE /v1/containers/{name}                                        (idempotent)
//	DELETE /v1/sets/{id}                                                (idempotent)
//	POST /v1/sets/{id}/sockets         {"label":"SERVICE.SLOT"[,"recheck":true]} -> SetSockets
//	POST /v1/sets/{id}/digests                                           -> Manifest (DigestWaiter: once its received pages are hashed)
//	GET  /v1/info                                                        -> NodeInfo
//	PUT  /v1/sets/{id}                 tar stream (see transfer.go)
//	POST /v1/sets/{id}/place           {"task":{"options":TaskOptions}} -> TaskPlacement (task.go)
//	PUT  /v1/tasks/{service}/{slot}/address-map {"task":{"addresses":{old:new}}}
//	DELETE /v1/tasks/{service}/{slot}  {"task":{"set":"ID"}}         -> TaskRelease
//	GET  /v1/standalone?stack=NAME                                       -> []restore.Standalone (standalone.go)
//	POST /v1/preflight                 {"preflight":PreflightRequest}   -> PreflightReport
//	PUT  /v1/drain/{name}              {"drain":{"arm":ArmOptions}}     (Arm, drain.go)
//	DELETE /v1/drain/{name}                                             (Disarm)
//	GET  /v1/drain                                                       -> []HeldStop
//	POST /v1/drain/{id}/checkpoint     {"set":"ID"}                      -> Manifest
//	POST /v1/drain/{id}/release        {"drain":{"reason":"..."}}
//	PUT  /v1/xlate/{name}              {"xlate":{"old":IP,"new":IP}}    (Translate, xlate.go)
//	GET  /v1/xlate                                                       -> []Translation

type apiRequest struct {
	Peers        []netip.Addr         `json:"peers,omitempty"`
	Deadline     time.Time            `json:"deadline,omitzero"`
	Set          string               `json:"set,omitempty"`
	LeaveRunning bool                 `json:"leaveRunning,omitempty"`
	CarryVolumes bool                 `json:"carryVolumes,omitempty"`
	PreCopied    bool                 `json:"preCopied,omitempty"` // DumpOptions.PreCopied
	Addr         string               `json:"addr,omitempty"`
	Restore      RestoreOptions       `json:"restore,omitzero"`
	Label        string               `json:"label,omitempty"`
	Recheck      bool                 `json:"recheck,omitempty"` // sockets: SetRechecker
	Task         taskRequest          `json:"task,omitzero"`
	Preflight    *PreflightRequest    `json:"preflight,omitempty"`
	Drain        drainRequest         `json:"drain,omitzero"`
	Xlate        xlateRequest         `json:"xlate,omitzero"`
	Networks     []node.NetworkAttach `json:"networks,omitempty"` // ReconnectHeld
	Space        []SpaceDump          `json:"space,omitempty"`    // CheckSpace
}

// apiError is every error answer's body: the message and its wire code
// (node.Status), with the code's HTTP status (node.HTTPStatus).
type apiError = node.Status

func (w *Worker) api(mux *http.ServeMux) {
	handle := func(pattern string, f func(ctx context.Context, r *http.Request, req apiRequest) (any, error)) {
		op := opName(pattern)
		mux.HandleFunc(pattern, func(rw http.ResponseWriter, r *http.Request) {
			var req apiRequest
			if r.Body != nil {
				if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
					writeJSON(rw, http.StatusBadRequest, apiError{Error: "bad request body: " + err.Error(), Code: node.CodeInvalidArgument})
					return
				}
			}
			t0 := time.Now()
			out, err := f(r.Context(), r, req)
			w.cfg.Metrics.Op(op, time.Since(t0), err)
			if err != nil {
				st := node.StatusOf(err)
				writeJSON(rw, node.HTTPStatus(st.Code), st)
				return
			}
			writeJSON(rw, http.StatusOK, out)
		})
	}
	name := func(r *http.Request) string { return r.PathValue("name") }
	handle("POST /v1/containers/{name}/lock", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.Lock(ctx, name(r), q.Peers, q.Deadline)
	})
	handle("POST /v1/containers/{name}/unlock", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.Unlock(ctx, name(r), q.Peers)
	})
	handle("POST /v1/containers/{name}/freeze", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		err := w.Freeze(ctx, name(r), q.Deadline)
		if err == nil {
			w.cfg.Metrics.Frozen(name(r), time.Now())
		}
		return struct{}{}, err
	})
	handle("POST /v1/containers/{name}/thaw", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		err := w.Thaw(ctx, name(r))
		if err == nil {
			w.cfg.Metrics.Released(name(r), time.Now())
		}
		return struct{}{}, err
	})
	handle("POST /v1/containers/{name}/stop", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		err := w.Stop(ctx, name(r))
		if err == nil {
			w.cfg.Metrics.Released(name(r), time.Now())
		}
		return struct{}{}, err
	})
	handle("POST /v1/containers/{name}/dump", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.dumped(name(r), !q.LeaveRunning)(w.DumpWith(ctx, name(r), q.Set, DumpOptions{LeaveRunning: q.LeaveRunning, CarryVolumes: q.CarryVolumes, PreCopied: q.PreCopied}))
	})
	handle("POST /v1/containers/{name}/dumpto", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.dumped(name(r), !q.LeaveRunning)(w.DumpWith(ctx, name(r), q.Set, DumpOptions{LeaveRunning: q.LeaveRunning, StreamTo: q.Addr, CarryVolumes: q.CarryVolumes, PreCopied: q.PreCopied}))
	})
	handle("POST /v1/containers/{name}/precopy", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.PreCopy(ctx, name(r), q.Set, q.Addr)
	})
	handle("POST /v1/containers/{name}/dumpinto", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		if q.LeaveRunning || q.CarryVolumes {
			return w.dumped(name(r), !q.LeaveRunning)(w.DumpWith(ctx, name(r), q.Set, DumpOptions{LeaveRunning: q.LeaveRunning, Into: q.Addr, CarryVolumes: q.CarryVolumes}))
		}
		return w.dumped(name(r), true)(w.DumpInto(ctx, name(r), q.Set, q.Addr))
	})
	handle("POST /v1/containers/{name}/dumplazy", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		if q.LeaveRunning {
			return w.DumpWith(ctx, name(r), q.Set, DumpOptions{LeaveRunning: true, Lazy: q.Addr})
		}
		return w.DumpLazy(ctx, name(r), q.Set, q.Addr)
	})
	handle("POST /v1/sets/{id}/waitlazy", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.WaitLazy(ctx, r.PathValue("id"))
	})
	handle("POST /v1/containers/{name}/disconnect", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.DisconnectHeld(ctx, name(r))
	})
	handle("POST /v1/containers/{name}/reconnect", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.ReconnectHeld(ctx, name(r), q.Networks)
	})
	handle("POST /v1/sets/{id}/cancellazy", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.CancelLazy(ctx, r.PathValue("id"))
	})
	handle("POST /v1/sets/{id}/send", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.Send(ctx, r.PathValue("id"), q.Addr)
	})
	handle("POST /v1/sets/{id}/restore", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.Restore(ctx, r.PathValue("id"), q.Restore)
	})
	handle("DELETE /v1/containers/{name}", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.RemoveContainer(ctx, name(r))
	})
	handle("DELETE /v1/sets/{id}", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return struct{}{}, w.DropSet(ctx, r.PathValue("id"))
	})
	handle("POST /v1/sets/{id}/sockets", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		if q.Recheck {
			return w.RecheckSockets(ctx, r.PathValue("id"), q.Label)
		}
		return w.Sockets(ctx, r.PathValue("id"), q.Label)
	})
	handle("POST /v1/sets/{id}/digests", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.SetDigests(ctx, r.PathValue("id"))
	})
	handle("GET /v1/info", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		return w.Info(ctx)
	})
	handle("POST /v1/preflight", func(ctx context.Context, r *http.Request, q apiRequest) (any, error) {
		if q.Preflight == nil {
			return nil, errors.New("preflight: empty request")
		}
		return w.Preflight(ctx, *q.Preflight)
	})
	w.taskAPI(handle)
	w.standaloneAPI(handle)     // standalone_linux.go
	w.dumpCheckAPI(handle)      // dumpcheck_linux.go
	w.containerStateAPI(handle) // containerstate_linux.go
	w.dumpSpaceAPI(handle)      // dumpspace_linux.go
	w.holdsAPI(handle)          // holds_linux.go
	w.drainAPI(handle)          // drain_linux.go
	w.xlateAPI(handle)          // xlate_linux.go
	w.activityAPI(handle)       // activity_linux.go
}

// dumped returns what records a dump's result in the metrics and passes it on: its
// bytes, and the end of the container's freeze when the dump stopped it.
func (w *Worker) dumped(name string, stops bool) func(*imageset.Manifest, error) (any, error) {
	return func(m *imageset.Manifest, err error) (any, error) {
		if err == nil && m != nil {
			w.cfg.Metrics.Dumped(m.TotalBytes())
			if stops {
				w.cfg.Metrics.Released(name, time.Now())
			}
		}
		return m, err
	}
}

// opName is the op label of an API pattern: its last literal path element, with
// "remove-" and the singular for DELETE ("DELETE /v1/sets/{id}": remove-set).
func opName(pattern string) string {
	method, path, _ := strings.Cut(pattern, " ")
	els := strings.Split(path, "/")
	op := ""
	for i := len(els) - 1; i >= 0; i-- {
		if e := els[i]; e != "" && !strings.HasPrefix(e, "{") {
			op = e
			break
		}
	}
	if method == "DELETE" {
		op = "remove-" + strings.TrimSuffix(op, "s")
	}
	return op
}

func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	_ = json.NewEncoder(rw).Encode(v)
}

// Client is the worker's roles over its HTTP endpoint.
type Client struct {
	// Addr is the worker's host:port.
	Addr string
	// HTTP is the client to use; nil means http.DefaultClient, or one with TLS.
	HTTP *http.Client
	// Token is the worker's token (its Config.Token, swarmckpt worker --token-file);
	// empty sends none.
	Token string
	// TLS, when set, reaches a worker that runs with TLS (Config.TLS) over HTTPS,
	// verified by it: ClientTLS of the cluster's CA (LoadCA). Ignored when HTTP is set
	// (that client's transport decides), except that HTTPS is used.
	TLS *tls.Config

	mu    sync.Mutex
	p     peer
	pFrom [2]any // the TLS and HTTP that p was made from
}

// peer is the client's way to the worker, made on first use and again whenever TLS,
// HTTP or Token changed since.
func (c *Client) peer() peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if from := [2]any{c.TLS, c.HTTP}; c.p.hc == nil || from != c.pFrom {
		c.p, c.pFrom = newPeer(c.TLS, c.Token), from
		if c.HTTP != nil {
			c.p.hc = c.HTTP
		}
	}
	c.p.token = c.Token
	return c.p
}

var (
	_ Holder    = (*Client)(nil)
	_ Dumper    = (*Client)(nil)
	_ Sets      = (*Client)(nil)
	_ Restorer  = (*Client)(nil)
	_ Tasks     = (*Client)(nil)
	_ Inspector = (*Client)(nil)
)

// Roles returns the worker's roles, all served over its HTTP API.
func (c *Client) Roles() Roles {
	return Roles{Holder: c, Dumper: c, Sets: c, Restorer: c, Tasks: c, Inspector: c, Drainer: c, Translations: c, Lazy: c, PreCopier: c}
}

// ErrRemote: the worker answered with an error (its message is attached).
var ErrRemote = errors.New("worker: remote error")

// do sends a request with the worker's token through the client's HTTP client.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	p := c.peer()
	hr, err := http.NewRequestWithContext(ctx, method, p.url(c.Addr, path), body)
	if err != nil {
		return nil, err
	}
	resp, err := p.do(hr)
	if err != nil && ctx.Err() == nil {
		// No answer (refused, reset, cut off): the worker is not running, or ended while
		// it served the request (killed, restarting). The caller may repeat an
		// idempotent request once it is back (node.ErrWorkerUnreachable).
		err = node.Mark(err, node.ErrWorkerUnreachable)
	}
	return resp, err
}

// remoteError is the error of a worker's answer other than 200: ErrUnauthorized for a
// 401, else ErrRemote, with the worker's message; it matches the worker's error code
// and reason too (errors.Is(err, node.ErrNoSuchSet)).
func (c *Client) remoteError(resp *http.Response) error {
	var ae apiError
	_ = json.NewDecoder(resp.Body).Decode(&ae)
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%w: worker at %s: %s", ErrUnauthorized, c.Addr, ae.Error)
	}
	if err := ae.Err(); err != nil {
		return fmt.Errorf("%w: worker at %s: %w", ErrRemote, c.Addr, err)
	}
	return fmt.Errorf("%w: worker at %s: %s", ErrRemote, c.Addr, ae.Error)
}

func (c *Client) call(ctx context.Context, method, path string, req apiRequest, out any) error {
	b, _ := json.Marshal(req)
	resp, err := c.do(ctx, method, path, strings.NewReader(string(b)))
	if err != nil {
		return fmt.Errorf("worker at %s: %s %s: %w", c.Addr, method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c.remoteError(resp)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func cpath(name, op string) string { return "/v1/containers/" + name + "/" + op }

// Lock implements Holder.
func (c *Client) Lock(ctx context.Context, name string, peers []netip.Addr, deadline time.Time) error {
	return c.call(ctx, http.MethodPost, cpath(name, "lock"), apiRequest{Peers: peers, Deadline: deadline}, nil)
}

// Unlock implements Holder.
func (c *Client) Unlock(ctx context.Context, name string, peers []netip.Addr) error {
	return c.call(ctx, http.MethodPost, cpath(name, "unlock"), apiRequest{Peers: peers}, nil)
}

// Freeze implements Holder.
func (c *Client) Freeze(ctx context.Context, name string, deadline time.Time) error {
	return c.call(ctx, http.MethodPost, cpath(name, "freeze"), apiRequest{Deadline: deadline}, nil)
}

// Thaw implements Holder.
func (c *Client) Thaw(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, cpath(name, "thaw"), apiRequest{}, nil)
}

// Stop implements Holder.
func (c *Client) Stop(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, cpath(name, "stop"), apiRequest{}, nil)
}

// Dump implements Dumper.
func (c *Client) Dump(ctx context.Context, name, setID string, leaveRunning bool) (*imageset.Manifest, error) {
	var m imageset.Manifest
	if err := c.call(ctx, http.MethodPost, cpath(name, "dump"), apiRequest{Set: setID, LeaveRunning: leaveRunning}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// DumpTo implements Dumper.
func (c *Client) DumpTo(ctx context.Context, name, setID, addr string, leaveRunning bool) (*imageset.Manifest, error) {
	var m imageset.Manifest
	if err := c.call(ctx, http.MethodPost, cpath(name, "dumpto"), apiRequest{Set: setID, Addr: addr, LeaveRunning: leaveRunning}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// DumpInto implements Dumper.
func (c *Client) DumpInto(ctx context.Context, name, setID, addr string) (*imageset.Manifest, error) {
	var m imageset.Manifest
	if err := c.call(ctx, http.MethodPost, cpath(name, "dumpinto"), apiRequest{Set: setID, Addr: addr}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// DumpLazy implements Dumper.
func (c *Client) DumpLazy(ctx context.Context, name, setID, pageServer string) (*imageset.Manifest, error) {
	var m imageset.Manifest
	if err := c.call(ctx, http.MethodPost, cpath(name, "dumplazy"), apiRequest{Set: setID, Addr: pageServer}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Send implements Sets.
func (c *Client) Send(ctx context.Context, setID, addr string) (SendResult, error) {
	var res SendResult
	err := c.call(ctx, http.MethodPost, "/v1/sets/"+setID+"/send", apiRequest{Addr: addr}, &res)
	return res, err
}

// Restore implements Restorer.
func (c *Client) Restore(ctx context.Context, setID string, opts RestoreOptions) (container.Ref, error) {
	var ref container.Ref
	err := c.call(ctx, http.MethodPost, "/v1/sets/"+setID+"/restore", apiRequest{Restore: opts}, &ref)
	return ref, err
}

// RemoveContainer implements Restorer.
func (c *Client) RemoveContainer(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/v1/containers/"+url.PathEscape(name), apiRequest{}, nil)
}

// DropSet implements Sets.
func (c *Client) DropSet(ctx context.Context, setID string) error {
	return c.call(ctx, http.MethodDelete, "/v1/sets/"+url.PathEscape(setID), apiRequest{}, nil)
}

// Sockets implements Sets.
func (c *Client) Sockets(ctx context.Context, setID, label string) (SetSockets, error) {
	var out SetSockets
	err := c.call(ctx, http.MethodPost, "/v1/sets/"+url.PathEscape(setID)+"/sockets", apiRequest{Label: label}, &out)
	return out, err
}

var _ DigestWaiter = (*Client)(nil)

// SetDigests implements DigestWaiter (a worker older than it answers 404: not found).
func (c *Client) SetDigests(ctx context.Context, setID string) (*imageset.Manifest, error) {
	var out imageset.Manifest
	if err := c.call(ctx, http.MethodPost, "/v1/sets/"+url.PathEscape(setID)+"/digests", apiRequest{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

var _ SetRechecker = (*Client)(nil)

// RecheckSockets implements SetRechecker (a worker older than it re-hashes).
func (c *Client) RecheckSockets(ctx context.Context, setID, label string) (SetSockets, error) {
	var out SetSockets
	err := c.call(ctx, http.MethodPost, "/v1/sets/"+url.PathEscape(setID)+"/sockets", apiRequest{Label: label, Recheck: true}, &out)
	return out, err
}

// Info implements Inspector.
func (c *Client) Info(ctx context.Context) (NodeInfo, error) {
	var ni NodeInfo
	err := c.call(ctx, http.MethodGet, "/v1/info", apiRequest{}, &ni)
	return ni, err
}
