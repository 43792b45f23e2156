package migrate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// script is a pre-dumper that writes written[k] bytes in round k, each round taking
// secs[k] seconds of a fake clock, and records the rounds asked for.
type script struct {
	written []int64
	secs    []float64
	failAt  int // round that fails (-1: none)
	asked   []int
	clock   time.Time
}

func (s *script) now() time.Time { return s.clock }

func (s *script) preDump(_ context.Context, k int) (int64, error) {
	s.asked = append(s.asked, k)
	if k == s.failAt {
		return 0, errors.New("criu: boom")
	}
	if k >= len(s.written) {
		return 0, errors.New("asked for more rounds than scripted")
	}
	s.clock = s.clock.Add(time.Duration(s.secs[k] * float64(time.Second)))
	return s.written[k], nil
}

// TestRunPreCopy: the loop asks for rounds 0, 1, ... in order (each chained onto the
// one before) while the policy says so, and stops where NextRound does, with its
// reason; durations come from the clock.
func TestRunPreCopy(t *testing.T) {
	const M = 1 << 20
	p := DefaultPreCopyPolicy()
	for _, c := range []struct {
		name    string
		written []int64
		secs    []float64
		rounds  int
		why     string
	}{
		{"UnderThreshold", []int64{1024 * M, 100 * M, 8 * M}, []float64{1, 0.1, 0.01}, 3, "threshold"},
		{"NotConverging", []int64{1024 * M, 512 * M, 500 * M}, []float64{1, 0.5, 0.5}, 3, "not converging"},
		{"RateConverged", []int64{1024 * M, 200 * M}, []float64{1, 0.95}, 2, "dirty rate converged"},
		{"MaxIters", []int64{1024 * M, 512 * M, 256 * M, 128 * M, 64 * M, 32 * M}, []float64{4, 2, 1, 0.5, 0.25, 0.1}, 5, "reached 5"},
		{"IdleContainer", []int64{64 * M, 0}, []float64{0.1, 0.01}, 2, "threshold"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &script{written: c.written, secs: c.secs, failAt: -1, clock: time.Unix(0, 0)}
			rounds, why, err := RunPreCopy(context.Background(), p, s.preDump, s.now)
			if err != nil || len(rounds) != c.rounds || !strings.Contains(why, c.why) {
				t.Fatalf("rounds %v (%q), %v; want %d rounds (%q)", rounds, why, err, c.rounds, c.why)
			}
			for k, r := range rounds {
				if s.asked[k] != k || r.Bytes != c.written[k] || r.Seconds != c.secs[k] {
					t.Fatalf("round %d: asked %v, %+v; want bytes %d in %.2f s", k, s.asked, r, c.written[k], c.secs[k])
				}
			}
			if len(s.asked) != c.rounds {
				t.Fatalf("asked for rounds %v, ran %d", s.asked, c.rounds)
			}
		})
	}
}

func TestRunPreCopyFails(t *testing.T) {
	const M = 1 << 20
	s := &script{written: []int64{1024 * M, 512 * M, 256 * M}, secs: []float64{1, 0.5, 0.25}, failAt: 1, clock: time.Unix(0, 0)}
	rounds, _, err := RunPreCopy(context.Background(), DefaultPreCopyPolicy(), s.preDump, s.now)
	if !errors.Is(err, ErrPreDump) || !strings.Contains(err.Error(), "round 1: criu: boom") || len(rounds) != 1 {
		t.Fatalf("rounds %v, %v; want round 0 kept and ErrPreDump at round 1", rounds, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s = &script{written: []int64{1024 * M}, secs: []float64{1}, failAt: -1}
	if _, _, err := RunPreCopy(ctx, DefaultPreCopyPolicy(), s.preDump, s.now); !errors.Is(err, context.Canceled) || len(s.asked) != 0 {
		t.Fatalf("cancelled: %v, asked %v", err, s.asked)
	}
	if _, _, err := RunPreCopy(context.Background(), PreCopyPolicy{}, s.preDump, s.now); err == nil {
		t.Fatal("ran with a zero policy")
	}
}
