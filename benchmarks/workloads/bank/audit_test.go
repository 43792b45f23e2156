package main

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// msg is a transfer on a simulated FIFO channel.
type msg struct {
	from, to int
	seq      uint64
	amount   int64
}

// sim is K ledgers connected by FIFO channels, the pure model of the running bank.
type sim struct {
	t       *testing.T
	ledgers []*Ledger // index id-1
	queue   []msg
}

func newSim(t *testing.T, k int, initial int64) *sim {
	s := &sim{t: t}
	for id := 1; id <= k; id++ {
		l, err := NewLedger(id, k, initial)
		if err != nil {
			t.Fatal(err)
		}
		s.ledgers = append(s.ledgers, l)
	}
	return s
}

func (s *sim) send(from, to int, amount int64) {
	seq, err := s.ledgers[from-1].Debit(to, amount)
	if err != nil {
		s.t.Fatalf("debit %d->%d %d: %v", from, to, amount, err)
	}
	s.queue = append(s.queue, msg{from, to, seq, amount})
}

// deliver delivers the oldest queued message.
func (s *sim) deliver() {
	m := s.queue[0]
	s.queue = s.queue[1:]
	cum, ok, err := s.ledgers[m.to-1].Credit(m.from, m.seq, m.amount)
	if err != nil || !ok {
		s.t.Fatalf("credit %+v: ok=%v err=%v", m, ok, err)
	}
	if err := s.ledgers[m.from-1].Ack(m.to, cum); err != nil {
		s.t.Fatalf("ack %+v: %v", m, err)
	}
}

func (s *sim) states() []State {
	var out []State
	for _, l := range s.ledgers {
		out = append(out, l.State())
	}
	return out
}

func (s *sim) queued() int64 {
	var sum int64
	for _, m := range s.queue {
		sum += m.amount
	}
	return sum
}

func TestAuditCountsMoneyInChannels(t *testing.T) {
	const k, initial = 4, 100
	s := newSim(t, k, initial)
	rng := rand.New(rand.NewPCG(1, 2))
	for step := 0; step < 2000; step++ {
		from := 1 + rng.IntN(k)
		to := 1 + rng.IntN(k)
		if to != from && s.ledgers[from-1].Balance() > 0 && rng.IntN(3) > 0 {
			s.send(from, to, 1+rng.Int64N(s.ledgers[from-1].Balance()))
		} else if len(s.queue) > 0 {
			s.deliver()
		}
		r := Audit(s.states(), k, initial, false)
		if !r.OK() {
			t.Fatalf("step %d: consistent states reported problems: %v", step, r.Problems)
		}
		if r.SumInFlight != s.queued() {
			t.Fatalf("step %d: SumInFlight %d != money queued on channels %d", step, r.SumInFlight, s.queued())
		}
		if r.Total != k*initial {
			t.Fatalf("step %d: total %d, want %d", step, r.Total, k*initial)
		}
	}
	for len(s.queue) > 0 {
		s.deliver()
	}
	r := Audit(s.states(), k, initial, true)
	if !r.OK() || r.SumInFlight != 0 || r.SumBalances != k*initial {
		t.Fatalf("drained: ok=%v in flight %d balances %d problems %v", r.OK(), r.SumInFlight, r.SumBalances, r.Problems)
	}
	for _, st := range s.states() {
		if st.InFlight != 0 {
			t.Fatalf("holder %d reports unacked %d after everything was delivered and acked", st.ID, st.InFlight)
		}
	}
}

func TestAuditDetectsOrphanMessage(t *testing.T) {
	s := newSim(t, 3, 100)
	before := s.ledgers[0].State() // holder 1 recorded before sending
	s.send(1, 2, 30)
	s.deliver()
	states := s.states()
	states[0] = before // inconsistent cut: 2 has received what 1 never sent
	r := Audit(states, 3, 100, false)
	if r.OK() {
		t.Fatal("an orphan message was not reported")
	}
	if !hasProblem(r, "1->2") || !hasProblem(r, "created") {
		t.Fatalf("problems %v do not name channel 1->2 and created money", r.Problems)
	}
	if r.SumBalances != 330 || r.SumInFlight != -30 {
		t.Fatalf("balances %d in flight %d, want 330 and -30 (30 created)", r.SumBalances, r.SumInFlight)
	}
}

func TestAuditDetectsLostMessage(t *testing.T) {
	s := newSim(t, 3, 100)
	s.send(3, 1, 40)
	s.send(2, 1, 5)
	s.queue = s.queue[1:] // 3->1 vanishes from the channel
	s.deliver()
	if r := Audit(s.states(), 3, 100, false); !r.OK() {
		t.Fatalf("before draining, money in a channel is legitimate: %v", r.Problems)
	}
	r := Audit(s.states(), 3, 100, true)
	if r.OK() || !hasProblem(r, "3->1") || !hasProblem(r, "destroyed") {
		t.Fatalf("lost message not reported after drain: %v", r.Problems)
	}
}

func TestAuditDetectsRestartedHolderAndMissing(t *testing.T) {
	s := newSim(t, 3, 100)
	s.send(2, 3, 50)
	s.deliver()
	s.send(3, 1, 20)
	s.deliver()
	fresh, _ := NewLedger(3, 3, 100) // holder 3 restarted from scratch
	states := s.states()
	states[2] = fresh.State()
	r := Audit(states, 3, 100, false)
	if r.OK() {
		t.Fatal("a holder restarted from scratch went unnoticed")
	}
	r = Audit(s.states()[:2], 3, 100, false)
	if r.OK() || !hasProblem(r, "holder 3 did not answer") {
		t.Fatalf("missing holder not reported: %v", r.Problems)
	}
	dup := append(s.states(), s.states()[0])
	if r := Audit(dup, 3, 100, false); r.OK() || !hasProblem(r, "twice") {
		t.Fatalf("duplicate holder not reported: %v", r.Problems)
	}
}

func TestLedgerRejectsBadInput(t *testing.T) {
	l, _ := NewLedger(1, 3, 10)
	if _, err := l.Debit(2, 11); !errors.Is(err, ErrInsufficient) {
		t.Errorf("overdraft: %v, want ErrInsufficient", err)
	}
	if _, err := l.Debit(1, 1); !errors.Is(err, ErrBadPeer) {
		t.Errorf("transfer to self: %v, want ErrBadPeer", err)
	}
	if _, err := l.Debit(4, 1); !errors.Is(err, ErrBadPeer) {
		t.Errorf("transfer to unknown: %v, want ErrBadPeer", err)
	}
	if err := l.Ack(2, 1); !errors.Is(err, ErrOverAck) {
		t.Errorf("ack of unsent money: %v, want ErrOverAck", err)
	}
	if _, ok, _ := l.Credit(2, 2, 5); ok {
		t.Error("credit with seq 2 before seq 1 was accepted as in sequence")
	}
	if _, ok, _ := l.Credit(2, 3, 1); !ok {
		t.Error("after resynchronising on seq 2, seq 3 was not accepted as in sequence")
	}
	if _, ok, _ := l.Credit(2, 1, 1); ok {
		t.Error("a repeated old seq was accepted as in sequence")
	}
	if st := l.State(); st.SeqAnomalies != 2 || st.Balance != 17 {
		t.Errorf("state after out-of-sequence credit: anomalies %d balance %d, want 2 and 17", st.SeqAnomalies, st.Balance)
	}
	if _, err := NewLedger(0, 3, 1); !errors.Is(err, ErrBadPeer) {
		t.Errorf("NewLedger id 0: %v, want ErrBadPeer", err)
	}
}

func hasProblem(r Report, sub string) bool {
	for _, p := range r.Problems {
		if strings.Contains(p, sub) {
			return true
		}
	}
	return false
}

// TestNotMeshed: query --connected names every holder short of a peer and every
// holder that did not answer.
func TestNotMeshed(t *testing.T) {
	full := []State{
		{ID: 1, ConnectedPeers: []int{2, 3}}, {ID: 2, ConnectedPeers: []int{1, 3}}, {ID: 3, ConnectedPeers: []int{1, 2}},
	}
	if m := notMeshed(full, 3); len(m) != 0 {
		t.Fatalf("full mesh reported as %v", m)
	}
	forming := []State{{ID: 1, ConnectedPeers: []int{2, 3}}, {ID: 3, ConnectedPeers: []int{1}}}
	m := notMeshed(forming, 3)
	if len(m) != 2 || !strings.Contains(m[0], "holder 3 is connected to [1]") || !strings.Contains(m[1], "holder 2 did not answer") {
		t.Fatalf("forming mesh: %v", m)
	}
}
