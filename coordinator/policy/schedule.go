package policy

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser accepts `@every DURATION`, the @hourly-style descriptors and 5-field cron
// expressions (minute hour day-of-month month day-of-week).
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// MinEvery is the shortest `@every` period accepted.
const MinEvery = time.Second

// Schedule is a parsed swarmckpt.schedule.
type Schedule struct {
	spec string
	s    cron.Schedule
}

// ParseSchedule parses spec: "@every 5m", "@hourly" or a 5-field cron expression
// such as "*/10 * * * *".
func ParseSchedule(spec string) (Schedule, error) {
	s, err := parser.Parse(spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("not a schedule (%v): use \"@every 5m\" or a 5-field cron expression such as \"*/10 * * * *\"", err)
	}
	if d, ok := strings.CutPrefix(spec, "@every "); ok {
		// cron rounds shorter periods up to a second without a word: refuse them.
		if p, err := time.ParseDuration(strings.TrimSpace(d)); err == nil && p < MinEvery {
			return Schedule{}, fmt.Errorf("not a schedule: @every period %s is under %s: use a longer one", p, MinEvery)
		}
	}
	return Schedule{spec: spec, s: s}, nil
}

// Spec is the schedule as written.
func (s Schedule) Spec() string { return s.spec }

// Next is the first run strictly after t.
func (s Schedule) Next(t time.Time) time.Time { return s.s.Next(t) }

// Action is what Due decides.
type Action int

// Actions.
const (
	Wait Action = iota // nothing is due
	Run                // take a scheduled snapshot now
	Skip               // a run was due while the previous one still runs: skip it
)

func (a Action) String() string {
	switch a {
	case Run:
		return "run"
	case Skip:
		return "skip"
	}
	return "wait"
}

// Timing is the stored schedule position of a stack.
type Timing struct {
	// Spec is the schedule Next was computed from ("" before the first pass).
	Spec string
	// Next is the next due time (zero before the first pass).
	Next time.Time
}

// Decision is Due's answer.
type Decision struct {
	Action Action
	// Next is the timing to store (whatever the action).
	Next Timing
	// Missed counts the due times at or before now beyond the first (runs a stopped
	// coordinator missed); they collapse into this one run.
	Missed int
}

// maxMissed bounds the count of missed runs (it is only reported).
const maxMissed = 10000

// Due decides what a stack's schedule asks for at now, given the stored timing and
// whether a scheduled run of the stack still goes on. A new or changed schedule
// starts counting from now; runs missed while nobody looked (a coordinator restart)
// run once, not once each; a due run while the previous one still goes is skipped,
// never stacked.
func Due(s Schedule, t Timing, now time.Time, running bool) Decision {
	if t.Spec != s.spec || t.Next.IsZero() {
		return Decision{Action: Wait, Next: Timing{Spec: s.spec, Next: s.Next(now)}}
	}
	if now.Before(t.Next) {
		return Decision{Action: Wait, Next: t}
	}
	missed := 0
	for n := s.Next(t.Next); !n.After(now) && missed < maxMissed; n = s.Next(n) {
		missed++
	}
	d := Decision{Action: Run, Next: Timing{Spec: s.spec, Next: s.Next(now)}, Missed: missed}
	if running {
		d.Action = Skip
	}
	return d
}
