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
}

// Call sends req to op and decodes the reply into a *T.
func Call[T any](ctx context.Context, c Client, op string, req any) (*T, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("api: encode %s request: %w", op, err)
	}
	out, err := request(ctx, c.T, Subject(op), b)
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
