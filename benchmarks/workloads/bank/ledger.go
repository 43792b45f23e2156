package main

import (
	"errors"
	"fmt"
	"sort"
)

// Errors of the ledger.
var (
	ErrInsufficient = errors.New("bank: insufficient balance")
	ErrBadPeer      = errors.New("bank: bad peer id")
	ErrOverAck      = errors.New("bank: peer acknowledged more than was sent")
)

// State is what a holder serves on GET /state. Per-peer maps are keyed by peer id.
type State struct {
	ID       int   `json:"id"`
	Count    int   `json:"count"`
	Initial  int64 `json:"initial"`
	Balance  int64 `json:"balance"`
	InFlight int64 `json:"in_flight"` // sent by this holder, not yet acked by peers

	SentTotalPerPeer     map[int]int64 `json:"sent_total_per_peer"`
	ReceivedTotalPerPeer map[int]int64 `json:"received_total_per_peer"`
	AckedTotalPerPeer    map[int]int64 `json:"acked_total_per_peer"`

	TransfersSent     uint64 `json:"transfers_sent"`
	TransfersReceived uint64 `json:"transfers_received"`
	SeqAnomalies      uint64 `json:"seq_anomalies"` // received transfers out of sequence
	AckAnomalies      uint64 `json:"ack_anomalies"` // acks for more than was sent

	// Filled by the holder, not the ledger.
	ConnectedPeers []int  `json:"connected_peers"`
	Reconnects     uint64 `json:"reconnects"`
	Disconnects    uint64 `json:"disconnects"`
	Paused         bool   `json:"paused"`
	Instance       string `json:"instance"`
}

// Ledger is one holder's accounting; pure, not safe for concurrent use.
type Ledger struct {
	id, count int
	initial   int64
	balance   int64
	sent      map[int]int64
	received  map[int]int64
	acked     map[int]int64
	sendSeq   map[int]uint64
	recvSeq   map[int]uint64
	nSent     uint64
	nRecv     uint64
	seqBad    uint64
	ackBad    uint64
}

// NewLedger returns the ledger of holder id (1..count) with the initial balance.
func NewLedger(id, count int, initial int64) (*Ledger, error) {
	if count < 2 || id < 1 || id > count || initial < 0 {
		return nil, fmt.Errorf("%w: id %d of count %d (want 1 <= id <= count, count >= 2), initial %d",
			ErrBadPeer, id, count, initial)
	}
	return &Ledger{id: id, count: count, initial: initial, balance: initial,
		sent: map[int]int64{}, received: map[int]int64{}, acked: map[int]int64{},
		sendSeq: map[int]uint64{}, recvSeq: map[int]uint64{}}, nil
}

func (l *Ledger) checkPeer(peer int) error {
	if peer < 1 || peer > l.count || peer == l.id {
		return fmt.Errorf("%w: %d (holder %d of %d)", ErrBadPeer, peer, l.id, l.count)
	}
	return nil
}

// Balance is the current balance.
func (l *Ledger) Balance() int64 { return l.balance }

// Debit takes amount out of the balance for a transfer to peer and returns the transfer's
// sequence number on that channel. The money is then in flight until the peer credits it.
func (l *Ledger) Debit(peer int, amount int64) (uint64, error) {
	if err := l.checkPeer(peer); err != nil {
		return 0, err
	}
	if amount <= 0 || amount > l.balance {
		return 0, fmt.Errorf("%w: %d to %d with balance %d", ErrInsufficient, amount, peer, l.balance)
	}
	l.balance -= amount
	l.sent[peer] += amount
	l.sendSeq[peer]++
	l.nSent++
	return l.sendSeq[peer], nil
}

// Credit adds a transfer received from peer and returns the cumulative amount received
// from peer (what the ack carries). ok is false when seq is not the next expected one
// (a lost or repeated transfer); the money is credited anyway, the anomaly counted, and
// the expectation moves on from seq.
func (l *Ledger) Credit(peer int, seq uint64, amount int64) (cum int64, ok bool, err error) {
	if err := l.checkPeer(peer); err != nil {
		return 0, false, err
	}
	ok = seq == l.recvSeq[peer]+1
	if !ok {
		l.seqBad++
	}
	l.recvSeq[peer] = seq // resynchronise: one anomaly per discontinuity
	l.balance += amount
	l.received[peer] += amount
	l.nRecv++
	return l.received[peer], ok, nil
}

// Ack records that peer has received cum in total from this holder.
func (l *Ledger) Ack(peer int, cum int64) error {
	if err := l.checkPeer(peer); err != nil {
		return err
	}
	if cum > l.sent[peer] {
		l.ackBad++
		return fmt.Errorf("%w: peer %d acked %d, sent %d", ErrOverAck, peer, cum, l.sent[peer])
	}
	if cum > l.acked[peer] {
		l.acked[peer] = cum
	}
	return nil
}

// State returns a copy of the accounting (holder fields left zero).
func (l *Ledger) State() State {
	s := State{ID: l.id, Count: l.count, Initial: l.initial, Balance: l.balance,
		SentTotalPerPeer: map[int]int64{}, ReceivedTotalPerPeer: map[int]int64{},
		AckedTotalPerPeer: map[int]int64{}, TransfersSent: l.nSent, TransfersReceived: l.nRecv,
		SeqAnomalies: l.seqBad, AckAnomalies: l.ackBad}
	for p := 1; p <= l.count; p++ {
		if p == l.id {
			continue
		}
		s.SentTotalPerPeer[p] = l.sent[p]
		s.ReceivedTotalPerPeer[p] = l.received[p]
		s.AckedTotalPerPeer[p] = l.acked[p]
		s.InFlight += l.sent[p] - l.acked[p]
	}
	return s
}

// sortedKeys returns the keys of m in increasing order.
func sortedKeys[V any](m map[int]V) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}
