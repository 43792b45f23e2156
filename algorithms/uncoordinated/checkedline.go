package uncoordinated

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Fix names a container whose chosen checkpoint must move one step back, and why
// (the violation that blames it).
type Fix struct {
	Container string
	Reason    string
}

// CheckFunc checks one combination of checkpoints, back[c] being how many checkpoints
// container c is behind its newest one (0: the newest). It returns the containers to
// move back (none: the combination is consistent). For the result to be the maximum
// consistent combination, a Fix must be necessary: every consistent combination at or
// below back must have the blamed container strictly older. With counters that never
// decrease along a container's history this holds for an orphan (blame the receiver)
// and for lost bytes (blame the sender).
type CheckFunc func(back map[string]int) ([]Fix, error)

// CheckedLine is a recovery line found by LineByCheck.
type CheckedLine struct {
	// Back is, per container, how many checkpoints it rolled back from its newest.
	Back map[string]int
	// Checks is how many combinations were checked.
	Checks int
	// Reasons lists, per container moved back, the violations that moved it.
	Reasons map[string][]string
}

// ErrNoLine is wrapped by LineByCheck's error when a container runs out of checkpoints.
var ErrNoLine = errors.New("uncoordinated: no consistent combination of the checkpoints")

// ExhaustedError says which container ran out of checkpoints: a consistent cut would
// need it older than its oldest checkpoint (its initial state).
type ExhaustedError struct {
	Container   string
	Checkpoints int
	Reasons     []string
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("%v: %s would have to go back past its oldest of %d checkpoint(s) (%s)",
		ErrNoLine, e.Container, e.Checkpoints, strings.Join(e.Reasons, "; "))
}

// Unwrap makes errors.Is(err, ErrNoLine) true.
func (e *ExhaustedError) Unwrap() error { return ErrNoLine }

// LineByCheck chooses a recovery line over real evidence: counts[c] is how many
// checkpoints container c has (newest first), check says which containers a
// combination forces back. It starts with everyone at its newest checkpoint and moves
// every blamed container one checkpoint back until check finds nothing; indices only
// move back, so it runs at most sum(counts)+1 checks. If a container is blamed at its
// oldest checkpoint it fails with an *ExhaustedError (wrapping ErrNoLine). An error
// from check is returned as is.
func LineByCheck(counts map[string]int, check CheckFunc) (CheckedLine, error) {
	l := CheckedLine{Back: make(map[string]int, len(counts)), Reasons: map[string][]string{}}
	for c, n := range counts {
		if n <= 0 {
			return l, &ExhaustedError{Container: c, Checkpoints: 0, Reasons: []string{"it has no checkpoint"}}
		}
		l.Back[c] = 0
	}
	for {
		l.Checks++
		fixes, err := check(cloneBack(l.Back))
		if err != nil {
			return l, err
		}
		if len(fixes) == 0 {
			return l, nil
		}
		why := map[string][]string{}
		for _, f := range fixes {
			if _, ok := counts[f.Container]; !ok {
				return l, fmt.Errorf("%s: recovery line: check blamed %q, which has no checkpoints in the set", Name, f.Container)
			}
			why[f.Container] = append(why[f.Container], f.Reason)
		}
		names := make([]string, 0, len(why))
		for c := range why {
			names = append(names, c)
		}
		sort.Strings(names)
		for _, c := range names {
			if l.Back[c]+1 >= counts[c] {
				return l, &ExhaustedError{Container: c, Checkpoints: counts[c], Reasons: why[c]}
			}
			l.Back[c]++
			l.Reasons[c] = append(l.Reasons[c], why[c]...)
		}
	}
}

func cloneBack(b map[string]int) map[string]int {
	out := make(map[string]int, len(b))
	for k, v := range b {
		out[k] = v
	}
	return out
}
