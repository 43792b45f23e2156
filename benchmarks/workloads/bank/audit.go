package main

import (
	"fmt"
	"sort"
)

// Channel is the accounting of one directed channel From -> To.
type Channel struct {
	From     int   `json:"from"`
	To       int   `json:"to"`
	Sent     int64 `json:"sent"`      // From's sent_total_per_peer[To]
	Received int64 `json:"received"`  // To's received_total_per_peer[From]
	InFlight int64 `json:"in_flight"` // Sent - Received; < 0 means money was created
}

// Report is the result of auditing the states of all holders.
type Report struct {
	Holders     []State   `json:"holders"`
	Channels    []Channel `json:"channels"`
	SumBalances int64     `json:"sum_balances"`
	SumInFlight int64     `json:"sum_in_flight"`
	Total       int64     `json:"total"`    // SumBalances + SumInFlight
	Expected    int64     `json:"expected"` // count * initial
	Problems    []string  `json:"problems,omitempty"`
}

// OK reports whether the audit found no problem.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Audit checks the states of a bank of count holders with the given initial balance.
// It computes every channel's in-flight money as sent_A_to_B - received_B_from_A and
// reports a problem when: a holder is missing, duplicated or disagrees on count/initial;
// a channel carries negative money (created); a balance is negative; the total differs
// from count*initial; or, with drained, money is still in flight (destroyed when the
// caller has paused sending and given the channels time to drain). States must be read
// while sending is paused for the channel figures to be meaningful (see doc.go).
func Audit(states []State, count int, initial int64, drained bool) Report {
	r := Report{Expected: int64(count) * initial}
	byID := map[int]State{}
	for _, s := range states {
		if _, dup := byID[s.ID]; dup {
			r.Problems = append(r.Problems, fmt.Sprintf("holder %d answered twice (two containers with one id?)", s.ID))
			continue
		}
		byID[s.ID] = s
		if s.Count != count || s.Initial != initial {
			r.Problems = append(r.Problems, fmt.Sprintf("holder %d has count=%d initial=%d, want %d and %d",
				s.ID, s.Count, s.Initial, count, initial))
		}
		if s.ID < 1 || s.ID > count {
			r.Problems = append(r.Problems, fmt.Sprintf("holder id %d out of range 1..%d", s.ID, count))
		}
	}
	for _, id := range sortedKeys(byID) {
		s := byID[id]
		r.Holders = append(r.Holders, s)
		r.SumBalances += s.Balance
		if s.Balance < 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("holder %d has negative balance %d", id, s.Balance))
		}
		if s.SeqAnomalies > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("holder %d received %d transfers out of sequence (lost or repeated)", id, s.SeqAnomalies))
		}
	}
	for id := 1; id <= count; id++ {
		if _, ok := byID[id]; !ok {
			r.Problems = append(r.Problems, fmt.Sprintf("holder %d did not answer", id))
		}
	}
	for _, a := range sortedKeys(byID) {
		for _, b := range sortedKeys(byID) {
			if a == b {
				continue
			}
			ch := Channel{From: a, To: b, Sent: byID[a].SentTotalPerPeer[b], Received: byID[b].ReceivedTotalPerPeer[a]}
			ch.InFlight = ch.Sent - ch.Received
			r.Channels = append(r.Channels, ch)
			r.SumInFlight += ch.InFlight
			switch {
			case ch.InFlight < 0:
				r.Problems = append(r.Problems, fmt.Sprintf("channel %d->%d: %d received but only %d sent: %d created (orphan message)",
					a, b, ch.Received, ch.Sent, -ch.InFlight))
			case ch.InFlight > 0 && drained:
				r.Problems = append(r.Problems, fmt.Sprintf("channel %d->%d: %d still in flight after draining: destroyed (lost message)",
					a, b, ch.InFlight))
			}
		}
	}
	sort.Slice(r.Channels, func(i, j int) bool {
		if r.Channels[i].From != r.Channels[j].From {
			return r.Channels[i].From < r.Channels[j].From
		}
		return r.Channels[i].To < r.Channels[j].To
	})
	r.Total = r.SumBalances + r.SumInFlight
	if r.Total != r.Expected {
		r.Problems = append(r.Problems, fmt.Sprintf("total %d (balances %d + in flight %d) != expected %d = %d x %d",
			r.Total, r.SumBalances, r.SumInFlight, r.Expected, count, initial))
	}
	return r
}
