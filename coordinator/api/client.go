package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

// Client calls the coordinator over a bus.
type Client struct {
	T bus.Transport
	// Failover makes Call send a request again to the next leader when the leader it
	// went to died (or restarted) before answering it, for the requests that are safe
	// to send twice (Resendable): while it waits for the answer it asks for the status
	// every FailoverPoll and resends once another coordinator process leads.
	Failover bool
	// OnResend, when set, is told each time Call resends (why: which leader died and
	// which leads now).
	OnResend func(op, why string)
}

// Resendable is a request that may be sent again to a new leader when the leader it
// went to died before answering (Client.Failover): reads, and requests the new leader
// recognises by their request id (it reports the outcome of the one the dead leader
// had begun, or runs it once).
type Resendable interface{ Resendable() bool }

// Resendable: a snapshot request with a RequestID (the new leader finds the snapshot
// the dead leader had begun by its id and request id, and reports its outcome).
func (r SnapshotRequest) Resendable() bool { return r.RequestID != "" }

// Resendable: listing reads only.
func (ListRequest) Resendable() bool { return true }

// Resendable: inspecting reads (--verify stores the same verdict again).
func (InspectRequest) Resendable() bool { return true }

// Resendable: reads only.
func (PolicyRequest) Resendable() bool { return true }

// Resendable: reads only.
func (HeldRequest) Resendable() bool { return true }

// FailoverPoll is how often Call (Client.Failover) asks who leads while it waits.
const FailoverPoll = time.Second

// MaxResends bounds how often one Call resends its request (one per leader change).
const MaxResends = 3

// Call sends req to op and decodes the reply into a *T.
func Call[T any](ctx context.Context, c Client, op string, req any) (*T, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("api: encode %s request: %w", op, err)
	}
	var out []byte
	if r, ok := req.(Resendable); ok && c.Failover && r.Resendable() {
		out, err = failover(ctx, c, op, b)
	} else {
		out, err = request(ctx, c.T, Subject(op), b)
	}
	if err != nil {
		if errors.Is(err, bus.ErrNoResponders) {
			return nil, fmt.Errorf("no coordinator answers on the control plane (none runs, or none leads yet: a standby leads within seconds of a leader's death): start one with 'swarmckpt coordinator', or retry (%w)", err)
		}
		return nil, fmt.Errorf("api: %s: %w", op, err)
	}
	var r Reply[T]
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("api: decode %s reply: %w", op, err)
	}
	if r.Error != nil {
		return r.Result, r.Error
	}
	if r.Result == nil {
		return nil, fmt.Errorf("api: %s: empty reply", op)
	}
	return r.Result, nil
}

// Serve answers op with h on t.
func Serve[Req, Res any](t bus.Transport, op string, h func(ctx context.Context, req *Req) (*Res, error)) (bus.Subscription, error) {
	return t.Subscribe(Subject(op), func(m *bus.Msg) {
		if !m.IsRequest() {
			return
		}
		go func() {
			var req Req
			var r Reply[Res]
			if err := json.Unmarshal(m.Data, &req); err != nil {
				r.Error = Errorf(CodeBadRequest, "decode %s request: %v", op, err)
			} else {
				res, err := h(context.Background(), &req)
				r.Result = res
				if err != nil {
					var ae *Error
					if !errors.As(err, &ae) {
						ae = &Error{Code: CodeFailed, Message: err.Error()}
					}
					r.Error = ae
				}
			}
			b, _ := json.Marshal(r)
			_ = m.Respond(b)
		}()
	})
}

// FailoverWait is how long Call keeps resending a request that nobody answers (no
// responders: it was not delivered, so resending is safe): between a leader's death
// and a standby's takeover no coordinator serves the API (the election's lease,
// etcdstore.DefaultLeaderTTL, plus the standby's start). Within ctx's deadline.
const FailoverWait = 8 * time.Second

func request(ctx context.Context, t bus.Transport, subject string, b []byte) ([]byte, error) {
	deadline := time.Now().Add(FailoverWait)
	for {
		out, err := t.Request(ctx, subject, b)
		if !errors.Is(err, bus.ErrNoResponders) || time.Now().After(deadline) {
			return out, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// leader identifies the coordinator process that leads: its name and start time.
type leader struct {
	name    string
	started time.Time
}

// same says whether l and o are one process.
func (l leader) same(o leader) bool { return l.name == o.name && l.started.Equal(o.started) }

func (l leader) String() string {
	return fmt.Sprintf("%s (started %s)", l.name, l.started.UTC().Format(time.RFC3339))
}

// whoLeads asks the status; ok is false when nobody answered within a second.
func whoLeads(ctx context.Context, c Client) (leader, bool) {
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	out, err := request(sctx, c.T, Subject(OpStatus), []byte("{}"))
	if err != nil {
		return leader{}, false
	}
	var r Reply[StatusResult]
	if json.Unmarshal(out, &r) != nil || r.Result == nil || r.Result.Started.IsZero() {
		return leader{}, false
	}
	return leader{r.Result.Coordinator, r.Result.Started}, true
}

// failover sends a resendable request and waits for its answer; when another
// coordinator process leads before it came (the leader that had the request died or
// restarted: its answer will never come), it sends the request again to the new one,
// at most MaxResends times.
func failover(ctx context.Context, c Client, op string, b []byte) ([]byte, error) {
	was, known := whoLeads(ctx, c)
	for resends := 0; ; resends++ {
		type answer struct {
			out []byte
			err error
		}
		rctx, cancel := context.WithCancel(ctx)
		got := make(chan answer, 1)
		go func() {
			out, err := request(rctx, c.T, Subject(op), b)
			got <- answer{out, err}
		}()
		changed := make(chan [2]leader, 1) // the leader that had the request, the new one
		go func(was leader, known bool) {
			t := time.NewTicker(FailoverPoll)
			defer t.Stop()
			for {
				select {
				case <-rctx.Done():
					return
				case <-t.C:
				}
				now, ok := whoLeads(rctx, c)
				switch {
				case !ok:
				case !known:
					was, known = now, true // the first answer: the leader since the request
				case !now.same(was) && resends < MaxResends:
					changed <- [2]leader{was, now}
					return
				}
			}
		}(was, known)
		select {
		case a := <-got:
			cancel()
			return a.out, a.err
		case ch := <-changed:
			cancel()
			if c.OnResend != nil {
				c.OnResend(op, fmt.Sprintf("the leader %s ended before answering; %s leads now: sending the %s request again", ch[0], ch[1], op))
			}
			was, known = ch[1], true
		}
	}
}
