package members

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Meta is what every member announces. It must encode to at most 512 bytes.
type Meta struct {
	Node        string   `json:"node"`
	Role        string   `json:"role"` // "coordinator" or "worker"
	WorkerAddr  string   `json:"worker_addr,omitempty"`
	CRIUVersion string   `json:"criu,omitempty"`
	Features    []string `json:"features,omitempty"`
}

// EventKind says what happened to a member.
type EventKind int

// Event kinds.
const (
	Join EventKind = iota + 1
	Leave
	Update
)

func (k EventKind) String() string {
	switch k {
	case Join:
		return "join"
	case Leave:
		return "leave"
	case Update:
		return "update"
	}
	return "event(" + strconv.Itoa(int(k)) + ")"
}

// Event is a membership change.
type Event struct {
	Kind EventKind
	Name string
	Meta Meta
}

// Config configures a member.
type Config struct {
	// Name is unique in the cluster (e.g. "worker/lab-1"). Required.
	Name string
	// Bind is host:port for gossip (UDP and TCP); port 0 picks a free one.
	// Ignored when Transport is set.
	Bind string
	// Join lists host:port of members to join; empty starts a new cluster.
	Join []string
	// Meta is announced to every member.
	Meta Meta
	// Key encrypts and authenticates all gossip (AES-GCM; 16, 24 or 32 bytes). A
	// member with another key, or none, cannot join; nil: unencrypted gossip
	// (--insecure-no-auth). LoadOrCreateKey makes and keeps one.
	Key []byte
	// Transport overrides the network (tests: memberlist.MockNetwork).
	Transport memberlist.NodeAwareTransport
	// Log; default slog.Default().
	Log *slog.Logger
}

// Cluster is this process's membership.
type Cluster struct {
	ml     *memberlist.Memberlist
	meta   []byte
	events chan Event
	mu     sync.Mutex
	closed bool
}

// ErrMetaTooLarge: Meta does not fit memberlist's node metadata.
var ErrMetaTooLarge = errors.New("members: metadata larger than 512 bytes")

// Start joins (or starts) the cluster.
func Start(cfg Config) (*Cluster, error) {
	if cfg.Name == "" {
		return nil, errors.New("members: Name is required")
	}
	meta, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, fmt.Errorf("members: encode meta: %w", err)
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w (%d bytes): shorten the feature list", ErrMetaTooLarge, len(meta))
	}
	lg := cfg.Log
	if lg == nil {
		lg = slog.Default()
	}
	c := &Cluster{meta: meta, events: make(chan Event, 256)}
	mc := memberlist.DefaultLocalConfig()
	mc.Name = cfg.Name
	mc.Delegate = delegate{c}
	if cfg.Key != nil {
		kr, err := memberlist.NewKeyring(nil, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("members: gossip key: %w (it must be 16, 24 or 32 bytes)", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	mc.Events = eventDelegate{c}
	mc.Logger = log.New(io.Discard, "", 0)
	if lg.Enabled(context.Background(), slog.LevelDebug) {
		mc.Logger = slog.NewLogLogger(lg.Handler(), slog.LevelDebug)
	}
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	} else {
		host, port, err := net.SplitHostPort(cfg.Bind)
		if err != nil {
			return nil, fmt.Errorf("members: bind address %q: %w", cfg.Bind, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("members: bind port %q: %w", port, err)
		}
		mc.BindAddr, mc.BindPort, mc.AdvertisePort = host, p, p
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("members: start gossip on %s: %w", cfg.Bind, err)
	}
	c.ml = ml
	if len(cfg.Join) > 0 {
		if _, err := ml.Join(cfg.Join); err != nil {
			_ = ml.Shutdown()
			return nil, fmt.Errorf("members: join %v: %w (is the coordinator's --gossip address right, and does this member have its key, <data-dir>/gossip.key?)", cfg.Join, err)
		}
	}
	return c, nil
}

// Addr is the address others join.
func (c *Cluster) Addr() string {
	n := c.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Events delivers membership changes (including this member's own join).
func (c *Cluster) Events() <-chan Event { return c.events }

// Members returns the live members' metadata, sorted by name.
func (c *Cluster) Members() map[string]Meta {
	out := map[string]Meta{}
	for _, n := range c.ml.Members() {
		var m Meta
		if json.Unmarshal(n.Meta, &m) == nil {
			out[n.Name] = m
		}
	}
	return out
}

// Names returns the live members' names, sorted.
func (c *Cluster) Names() []string {
	var out []string
	for n := range c.Members() {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Leave announces a graceful departure, then shuts down.
func (c *Cluster) Leave(timeout time.Duration) error {
	err := c.ml.Leave(timeout)
	return errors.Join(err, c.Shutdown())
}

// Shutdown stops gossiping without a goodbye (others detect it as a failure).
func (c *Cluster) Shutdown() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.ml.Shutdown()
}

func (c *Cluster) emit(k EventKind, n *memberlist.Node) {
	var m Meta
	_ = json.Unmarshal(n.Meta, &m)
	select {
	case c.events <- Event{Kind: k, Name: n.Name, Meta: m}:
	default: // a consumer that does not read loses events, never blocks gossip
	}
}

type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(limit int) []byte                  { return d.c.meta }
func (d delegate) NotifyMsg([]byte)                           {}
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d delegate) LocalState(join bool) []byte                { return nil }
func (d delegate) MergeRemoteState(buf []byte, join bool)     {}

type eventDelegate struct{ c *Cluster }

func (e eventDelegate) NotifyJoin(n *memberlist.Node)   { e.c.emit(Join, n) }
func (e eventDelegate) NotifyLeave(n *memberlist.Node)  { e.c.emit(Leave, n) }
func (e eventDelegate) NotifyUpdate(n *memberlist.Node) { e.c.emit(Update, n) }

// Superseded tells whether the member that left (a Leave event) has been replaced: a
// live member of another name has the same role and node. An agent killed and restarted
// joins under a new name (its incarnation) before memberlist declares the old one dead;
// that death must not fail a node whose current agent is alive.
func Superseded(live map[string]Meta, left Event) bool {
	for name, m := range live {
		if name != left.Name && m.Node == left.Meta.Node && m.Role == left.Meta.Role {
			return true
		}
	}
	return false
}
