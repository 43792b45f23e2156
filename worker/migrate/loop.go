package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// PreDumpFunc runs pre-dump round k (0-based) of one container while it runs,
// chained onto round k-1 (the first copies every page), and returns the bytes of
// memory pages it wrote: the pages dirtied since round k-1.
type PreDumpFunc func(ctx context.Context, k int) (int64, error)

// ErrPreDump: a pre-dump round failed; the container runs on as before.
var ErrPreDump = errors.New("migrate: pre-dump failed")

// RunPreCopy runs the pre-copy loop: pre-dump rounds while NextRound(p, rounds) says
// PreDump, timing each with now (time.Now in production, a fake clock in tests). It
// returns the rounds run and the policy's reason to stop: the caller's final dump
// (frozen) then writes only the pages dirtied since the last round, chained onto it.
// A failed round ends the loop with ErrPreDump and the rounds before it.
func RunPreCopy(ctx context.Context, p PreCopyPolicy, preDump PreDumpFunc, now func() time.Time) ([]Round, string, error) {
	if err := p.Validate(); err != nil {
		return nil, "", err
	}
	var rounds []Round
	for {
		step, why := NextRound(p, rounds)
		if step == FinalDump {
			return rounds, why, nil
		}
		if err := ctx.Err(); err != nil {
			return rounds, "", fmt.Errorf("%w: round %d: %w", ErrPreDump, len(rounds), err)
		}
		t0 := now()
		n, err := preDump(ctx, len(rounds))
		if err != nil {
			return rounds, "", fmt.Errorf("%w: round %d: %w", ErrPreDump, len(rounds), err)
		}
		rounds = append(rounds, Round{Bytes: n, Seconds: now().Sub(t0).Seconds()})
	}
}
