package bus

import (
	"context"
	"errors"
)

// Sentinel errors every Transport returns (wrapped) so callers can tell the cases apart.
var (
	// ErrNoResponders: nobody subscribes to the subject of a request (for a node's
	// command subject: that node has no live worker).
	ErrNoResponders = errors.New("bus: no responders on subject")
	// ErrTimeout: the request's deadline passed before a reply arrived.
	ErrTimeout = errors.New("bus: request deadline exceeded")
	// ErrClosed: the transport was closed.
	ErrClosed = errors.New("bus: transport closed")
	// ErrBadSubject: the subject is empty or malformed.
	ErrBadSubject = errors.New("bus: bad subject")
)

// Msg is a message delivered to a subscription handler.
type Msg struct {
	Subject string
	Data    []byte
	// reply sends a response to a request; nil for plain publishes.
	reply func(data []byte) error
}

// NewMsg builds a Msg; reply may be nil. For Transport implementations.
func NewMsg(subject string, data []byte, reply func([]byte) error) *Msg {
	return &Msg{Subject: subject, Data: data, reply: reply}
}

// IsRequest reports whether the sender waits for a reply.
func (m *Msg) IsRequest() bool { return m.reply != nil }

// Respond answers a request. It is an error to respond to a plain publish.
func (m *Msg) Respond(data []byte) error {
	if m.reply == nil {
		return errors.New("bus: respond to a message that is not a request")
	}
	return m.reply(data)
}

// Handler handles one message. Handlers of one subscription run one at a time, in
// the order the messages were published by one sender.
type Handler func(m *Msg)

// Subscription is an active subscription.
type Subscription interface {
	// Unsubscribe stops delivery; messages already being handled finish.
	Unsubscribe() error
}

// Transport sends and receives control messages.
type Transport interface {
	// Publish sends data to every subscriber of subject, without waiting for anyone.
	Publish(ctx context.Context, subject string, data []byte) error
	// Subscribe calls h for each message on subject (wildcards allowed).
	Subscribe(subject string, h Handler) (Subscription, error)
	// Request sends data to one subscriber of subject and waits for its reply until
	// ctx's deadline. Errors wrap ErrNoResponders, ErrTimeout or ErrClosed.
	Request(ctx context.Context, subject string, data []byte) ([]byte, error)
	// Close releases the transport; later calls fail with ErrClosed.
	Close() error
}
