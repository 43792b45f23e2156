package uncoordinated

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// chanState is one direction a->b at a moment: a's sent and acked, b's received.
type chanState struct{ sent, acked, received uint64 }

// run is a random execution over n containers: per container its checkpoints (newest
// first), each recording, per directed channel, the counters its end holds.
type run struct {
	n     int
	chans [][2]int
	// cps[c][i][ch] is the channel state at container c's i-th newest checkpoint.
	cps [][]map[int]chanState
}

func randomRun(r *rand.Rand) run {
	n := 2 + r.IntN(3)
	var chans [][2]int
	for a := 0; a < n; a++ {
		for b := 0; b < n; b++ {
			if a != b && r.IntN(3) > 0 {
				chans = append(chans, [2]int{a, b})
			}
		}
	}
	cur := make([]chanState, len(chans))
	cps := make([][]map[int]chanState, n)
	for step := 0; step < 40; step++ {
		switch k := r.IntN(4); {
		case k == 0 && len(chans) > 0: // send
			cur[r.IntN(len(chans))].sent += uint64(1 + r.IntN(5))
		case k == 1 && len(chans) > 0: // receive some of what is in flight
			c := &cur[r.IntN(len(chans))]
			c.received += uint64(r.IntN(int(c.sent-c.received) + 1))
		case k == 2 && len(chans) > 0: // acknowledge some of what arrived
			c := &cur[r.IntN(len(chans))]
			c.acked += uint64(r.IntN(int(c.received-c.acked) + 1))
		default: // a checkpoint of one container
			who := r.IntN(n)
			snap := map[int]chanState{}
			for i, ch := range chans {
				if ch[0] == who || ch[1] == who {
					snap[i] = cur[i]
				}
			}
			cps[who] = append([]map[int]chanState{snap}, cps[who]...) // newest first
		}
	}
	return run{n: n, chans: chans, cps: cps}
}

func name(c int) string { return fmt.Sprintf("c%d", c) }

// violations of a combination: orphan blames the receiver, lost the sender.
func (rn run) check(back map[string]int) []Fix {
	var out []Fix
	for i, ch := range rn.chans {
		a, b := ch[0], ch[1]
		sa := rn.cps[a][back[name(a)]][i]
		sb := rn.cps[b][back[name(b)]][i]
		switch {
		case sb.received > sa.sent:
			out = append(out, Fix{name(b), "orphan"})
		case sa.acked > sb.received:
			out = append(out, Fix{name(a), "lost"})
		}
	}
	return out
}

func TestLineByCheckMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	tried, found, rolled := 0, 0, 0
	for iter := 0; iter < 3000; iter++ {
		rn := randomRun(r)
		counts := map[string]int{}
		ok := true
		for c := 0; c < rn.n; c++ {
			if len(rn.cps[c]) == 0 || len(rn.cps[c]) > 5 {
				ok = false
			}
			counts[name(c)] = len(rn.cps[c])
		}
		if !ok {
			continue
		}
		tried++
		// Brute force: every combination; the consistent ones' component-wise
		// minimum of back (the newest) must be consistent and be the answer.
		var best map[string]int
		combo := make([]int, rn.n)
		for {
			back := map[string]int{}
			for c := range combo {
				back[name(c)] = combo[c]
			}
			if len(rn.check(back)) == 0 {
				if best == nil {
					best = back
				}
				for k, v := range back {
					best[k] = min(best[k], v)
				}
			}
			i := 0
			for ; i < rn.n; i++ {
				combo[i]++
				if combo[i] < counts[name(i)] {
					break
				}
				combo[i] = 0
			}
			if i == rn.n {
				break
			}
		}
		l, err := LineByCheck(counts, func(b map[string]int) ([]Fix, error) { return rn.check(b), nil })
		if best == nil {
			var ex *ExhaustedError
			if !errors.Is(err, ErrNoLine) || !errors.As(err, &ex) || ex.Container == "" {
				t.Fatalf("iter %d: no consistent combination exists, LineByCheck gave %+v %v", iter, l, err)
			}
			continue
		}
		found++
		if err != nil {
			t.Fatalf("iter %d: brute force found %v, LineByCheck failed: %v", iter, best, err)
		}
		if len(rn.check(best)) != 0 {
			t.Fatalf("iter %d: the component-wise newest of the consistent combinations %v is not consistent", iter, best)
		}
		for k, v := range best {
			if l.Back[k] != v {
				t.Fatalf("iter %d: LineByCheck %v, brute force %v", iter, l.Back, best)
			}
		}
		if l.Checks > 1 {
			rolled++
		}
		sum := 0
		for _, n := range counts {
			sum += n
		}
		if l.Checks > sum+1 {
			t.Fatalf("iter %d: %d checks for %d checkpoints", iter, l.Checks, sum)
		}
	}
	if tried < 300 || found < 100 || found == tried || rolled < 100 {
		t.Fatalf("weak sample: %d histories, %d with a line, %d of them rolled back", tried, found, rolled)
	}
	t.Logf("%d random histories, %d with a consistent combination (%d rolled back), %d without", tried, found, rolled, tried-found)
}

func TestLineByCheckRollsBackAndNamesExhausted(t *testing.T) {
	// a's newest checkpoint holds bytes b's newest never sent: a goes back one.
	calls := 0
	l, err := LineByCheck(map[string]int{"a": 3, "b": 2}, func(back map[string]int) ([]Fix, error) {
		calls++
		if back["a"] == 0 {
			return []Fix{{"a", "orphan b->a"}}, nil
		}
		return nil, nil
	})
	if err != nil || l.Back["a"] != 1 || l.Back["b"] != 0 || l.Checks != 2 || calls != 2 || l.Reasons["a"][0] != "orphan b->a" {
		t.Fatalf("line %+v %v", l, err)
	}
	// b is always blamed: it runs out after its 2 checkpoints.
	_, err = LineByCheck(map[string]int{"a": 3, "b": 2}, func(map[string]int) ([]Fix, error) {
		return []Fix{{"b", "lost b->a"}}, nil
	})
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Container != "b" || ex.Checkpoints != 2 || !errors.Is(err, ErrNoLine) {
		t.Fatalf("exhausted: %v", err)
	}
	boom := errors.New("node down")
	if _, err := LineByCheck(map[string]int{"a": 1}, func(map[string]int) ([]Fix, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("check error: %v", err)
	}
}
