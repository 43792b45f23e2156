package uncoordinated

import (
	"fmt"

	"github.com/swarmckpt/swarmckpt/protocol"
)

// Line is a recovery line: for each container the checkpoint to restore.
type Line struct {
	// Index is the position in the container's history; -1 means its initial state
	// (no usable checkpoint: the container restarts from scratch).
	Index map[string]int
	// RolledBack is how many checkpoints each container had to skip back from its
	// latest one (the domino effect); len(history) when it fell to the initial state.
	RolledBack map[string]int
	// Total is the sum of RolledBack; Max its largest entry.
	Total, Max int
}

// Snapshot returns the snapshot id of container id's checkpoint on the line, "" for its
// initial state.
func (l Line) Snapshot(h History, id string) string {
	i := l.Index[id]
	if i < 0 {
		return ""
	}
	return h[id][i].Snapshot
}

func counter(cp []Checkpoint, i int, peer string) protocol.ConnCounter {
	if i < 0 {
		return protocol.ConnCounter{Peer: peer}
	}
	for _, c := range cp[i].Conns {
		if c.Peer == peer {
			return c
		}
	}
	return protocol.ConnCounter{Peer: peer}
}

// RecoveryLine returns the latest consistent combination of checkpoints of the
// containers cs given their history: for every channel a->b, bytes b received from a
// in b's checkpoint <= bytes a sent to b in a's checkpoint. Counters of one connection
// must not decrease along a container's history. It runs in
// O((sum of rollbacks + containers) * degree * history) time.
func RecoveryLine(cs []protocol.Container, h History) (Line, error) {
	// By position in cs (a million containers in the simulator): peers, histories and
	// the line's index, looked up by id once.
	pos := make(map[string]int, len(cs))
	hist := make([][]Checkpoint, len(cs))
	idx := make([]int, len(cs))
	for i, c := range cs {
		if _, dup := pos[c.ID]; dup {
			return Line{}, fmt.Errorf("%s: recovery line: container %q listed twice", Name, c.ID)
		}
		pos[c.ID] = i
		hist[i] = h[c.ID]
		idx[i] = len(hist[i]) - 1
	}
	peers := make([][]int, len(cs))
	for i, c := range cs {
		peers[i] = make([]int, len(c.Peers))
		for k, p := range c.Peers {
			j, ok := pos[p]
			if !ok {
				return Line{}, fmt.Errorf("%s: recovery line: container %q has peer %q outside the set", Name, c.ID, p)
			}
			peers[i][k] = j
		}
	}
	work := make([]int, 0, len(cs))
	queued := make([]bool, len(cs))
	for i := range cs {
		work = append(work, i)
		queued[i] = true
	}
	for len(work) > 0 {
		b := work[len(work)-1]
		work = work[:len(work)-1]
		queued[b] = false
		// Check every incoming channel a->b; roll b back until all hold.
		moved := false
		for _, a := range peers[b] {
			sent := counter(hist[a], idx[a], cs[b].ID).Sent
			for idx[b] >= 0 && counter(hist[b], idx[b], cs[a].ID).Received > sent {
				idx[b]--
				moved = true
			}
		}
		if moved {
			// b now sent less: its peers' receipts may be orphans. b itself needs no
			// re-check: rolling back only lowers its received counters.
			for _, p := range peers[b] {
				if !queued[p] {
					queued[p] = true
					work = append(work, p)
				}
			}
		}
	}
	l := Line{Index: make(map[string]int, len(cs)), RolledBack: make(map[string]int, len(cs))}
	for i, c := range cs {
		r := len(hist[i]) - 1 - idx[i]
		l.Index[c.ID] = idx[i]
		l.RolledBack[c.ID] = r
		l.Total += r
		l.Max = max(l.Max, r)
	}
	return l, nil
}
