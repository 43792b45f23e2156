package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Network is an in-memory message network. Each Connect returns a Transport that
// behaves like a client connection to one NATS server: publishes reach every
// matching subscription of every connection, requests take the first reply.
type Network struct {
	mu   sync.Mutex
	subs map[*memSub]struct{}
}

// NewNetwork returns an empty in-memory network.
func NewNetwork() *Network { return &Network{subs: map[*memSub]struct{}{}} }

// Connect returns a new connection to the network.
func (n *Network) Connect() *Memory { return &Memory{net: n, own: map[*memSub]struct{}{}} }

// Memory is one connection to a Network. It implements Transport.
type Memory struct {
	net    *Network
	mu     sync.Mutex
	own    map[*memSub]struct{}
	closed bool
}

var _ Transport = (*Memory)(nil)

type memSub struct {
	pattern string
	h       Handler
	owner   *Memory
	mu      sync.Mutex
	queue   []*Msg
	wake    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func (s *memSub) loop() {
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		for {
			s.mu.Lock()
			if len(s.queue) == 0 {
				s.mu.Unlock()
				break
			}
			m := s.queue[0]
			s.queue = s.queue[1:]
			s.mu.Unlock()
			select {
			case <-s.done:
				return
			default:
			}
			s.h(m)
		}
	}
}

func (s *memSub) deliver(m *Msg) {
	s.mu.Lock()
	s.queue = append(s.queue, m)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *memSub) Unsubscribe() error {
	s.once.Do(func() {
		s.owner.net.mu.Lock()
		delete(s.owner.net.subs, s)
		s.owner.net.mu.Unlock()
		s.owner.mu.Lock()
		delete(s.owner.own, s)
		s.owner.mu.Unlock()
		close(s.done)
	})
	return nil
}

func (c *Memory) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Subscribe implements Transport.
func (c *Memory) Subscribe(subject string, h Handler) (Subscription, error) {
	if err := ValidSubject(subject, true); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	s := &memSub{pattern: subject, h: h, owner: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.own[s] = struct{}{}
	c.mu.Unlock()
	c.net.mu.Lock()
	c.net.subs[s] = struct{}{}
	c.net.mu.Unlock()
	go s.loop()
	return s, nil
}

func (n *Network) matching(subject string) []*memSub {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*memSub
	for s := range n.subs {
		if Match(s.pattern, subject) {
			out = append(out, s)
		}
	}
	return out
}

// Publish implements Transport.
func (c *Memory) Publish(ctx context.Context, subject string, data []byte) error {
	if err := ValidSubject(subject, false); err != nil {
		return err
	}
	if c.isClosed() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, s := range c.net.matching(subject) {
		s.deliver(&Msg{Subject: subject, Data: append([]byte(nil), data...)})
	}
	return nil
}

// Request implements Transport.
func (c *Memory) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	if err := ValidSubject(subject, false); err != nil {
		return nil, err
	}
	if c.isClosed() {
		return nil, ErrClosed
	}
	subs := c.net.matching(subject)
	if len(subs) == 0 {
		return nil, fmt.Errorf("%w %q", ErrNoResponders, subject)
	}
	replies := make(chan []byte, len(subs))
	reply := func(b []byte) error {
		select {
		case replies <- append([]byte(nil), b...):
		default:
		}
		return nil
	}
	for _, s := range subs {
		s.deliver(&Msg{Subject: subject, Data: append([]byte(nil), data...), reply: reply})
	}
	select {
	case b := <-replies:
		return b, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %q", ErrTimeout, subject)
		}
		return nil, ctx.Err()
	}
}

// Close implements Transport: it ends every subscription of this connection.
func (c *Memory) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	subs := make([]*memSub, 0, len(c.own))
	for s := range c.own {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
	return nil
}
