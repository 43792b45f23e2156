package nodeloss

import (
	"sort"
	"time"
)

// Swarm node states (swarm's NodeStatus.State) the tracker knows.
const (
	SwarmReady   = "ready"
	SwarmDown    = "down"
	SwarmUnknown = "unknown"
)

// Signals is what the coordinator observes of one node at one time.
type Signals struct {
	// Heartbeat: its agent's heartbeats arrive (the coordinator's liveness).
	Heartbeat bool
	// Member: its worker is a live member of the memberlist membership.
	Member bool
	// Swarm is the node's state as the swarm manager reports it ("ready", "down",
	// "unknown", "disconnected"; "" when the manager could not be asked).
	Swarm string
}

// down says whether every signal says the node is gone: no heartbeat, no member, and
// swarm says down. A swarm state that could not be read ("") is not down.
func (s Signals) down() bool { return !s.Heartbeat && !s.Member && s.Swarm == SwarmDown }

// back says whether the node's swarmckpt daemons are back (its worker and agent).
func (s Signals) back() bool { return s.Heartbeat || s.Member }

// State of one node in the Tracker.
type State int

// Node states (doc.go draws them).
const (
	Up State = iota
	Suspect
	Lost
)

func (s State) String() string {
	switch s {
	case Suspect:
		return "suspect"
	case Lost:
		return "lost"
	}
	return "up"
}

// Event is what one observation changed.
type Event int

// Events of Observe.
const (
	None Event = iota
	// BecameLost: the node is lost (every signal down for Confirm): restore its stacks.
	BecameLost
	// Returned: a lost node's worker or agent is back: fence it.
	Returned
)

// node is the tracker's record of one node.
type node struct {
	state     State
	downSince time.Time
	seenUp    bool
}

// Tracker decides, from observations, when a node is lost and when it returns.
// Not safe for concurrent use.
type Tracker struct {
	// Confirm is how long every signal must say down before the node is lost (the
	// observations in between must all say down). Default 0: at the first
	// observation with every signal down, after swarm already waited its heartbeat
	// period out.
	Confirm time.Duration
	// Grace is how long after the tracker's first observation a node it never saw up
	// may be declared lost (every signal down, then Confirm as for any node): a
	// coordinator that took over the lead, or started, after a node died has never
	// seen it up, and must still restore its stacks. Long enough for every live
	// agent's heartbeat and memberlist member to arrive first. 0: a node never seen up
	// is never declared lost.
	Grace time.Duration
	start time.Time
	nodes map[string]*node
}

// NewTracker returns a tracker with the given confirmation period.
func NewTracker(confirm time.Duration) *Tracker {
	return &Tracker{Confirm: confirm, nodes: map[string]*node{}}
}

// Observe feeds the signals of node n at now and returns what changed. A node never
// seen up (no heartbeat or member yet, and not ready in swarm) is declared lost only
// once Grace has passed since the first observation (never with Grace 0): right
// after the coordinator starts, a live node's heartbeat may not have arrived yet.
// Whether its stacks were dealt with already (by the leader that saw it go) is the
// caller's question (SeenUp says which case it is).
func (t *Tracker) Observe(n string, s Signals, now time.Time) Event {
	if t.start.IsZero() {
		t.start = now
	}
	r := t.nodes[n]
	if r == nil {
		r = &node{}
		t.nodes[n] = r
	}
	if s.back() || s.Swarm == SwarmReady {
		r.seenUp = true
	}
	switch r.state {
	case Up:
		if s.down() && (r.seenUp || t.Grace > 0 && now.Sub(t.start) >= t.Grace) {
			r.state, r.downSince = Suspect, now
			if t.Confirm <= 0 {
				r.state = Lost
				return BecameLost
			}
		}
	case Suspect:
		switch {
		case !s.down():
			r.state = Up
		case now.Sub(r.downSince) >= t.Confirm:
			r.state = Lost
			return BecameLost
		}
	case Lost:
		if s.back() {
			r.state = Up
			return Returned
		}
	}
	return None
}

// State is node n's state (Up for a node never observed).
func (t *Tracker) State(n string) State {
	if r := t.nodes[n]; r != nil {
		return r.state
	}
	return Up
}

// SeenUp says whether node n was ever observed up (a heartbeat, a member, or ready in
// swarm) by this tracker.
func (t *Tracker) SeenUp(n string) bool {
	r := t.nodes[n]
	return r != nil && r.seenUp
}

// LostNodes lists the nodes in state Lost, sorted.
func (t *Tracker) LostNodes() []string {
	var out []string
	for n, r := range t.nodes {
		if r.state == Lost {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
