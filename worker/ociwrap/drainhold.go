package ociwrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The drain hold (docs/drain.md, decision "A"): swarm stops a task on a draining node
// through the runtime's `kill`. For a container the worker armed, the wrapper holds that
// kill until the worker has decided (and, for a drain, checkpointed the container with
// exit), then passes the kill on to runc as asked. The files live in
// <data-root>/swarmckpt/drain/ (DrainDir), written with rename so that a reader never sees
// half a file:
//
//	arm-<ID>      written by the worker: JSON Arm (the hold budget). Its absence is the
//	              common case and costs the wrapper one stat.
//	stop-<ID>     written by the wrapper when it starts holding: JSON StopRequest (the
//	              signal, runc's root and the bundle, so that the worker can find the
//	              container with `runc state` while dockerd's lock blocks docker inspect).
//	verdict-<ID>  written by the worker: JSON Verdict.
//
// A KILL is never held (docker kill, dockerd's escalation after the grace period).
const (
	// DrainDir is <data-root>/swarmckpt/drain.
	DrainDir = "drain"
	// MaxHold caps every hold: swarm starts the replacement 60 s after the drain whether
	// or not the old task stopped, and the first kill comes ~3.1 s after the drain.
	MaxHold = 50 * time.Second
	// verdictPoll is how often a held kill looks for the verdict file.
	verdictPoll = 20 * time.Millisecond
)

// ArmFile, StopFile and VerdictFile name the drain files of container id.
func ArmFile(id string) string     { return "arm-" + id }
func StopFile(id string) string    { return "stop-" + id }
func VerdictFile(id string) string { return "verdict-" + id }

// Arm is the content of arm-<ID>.
type Arm struct {
	// BudgetMS is the longest hold in milliseconds: the worker writes min(50 s,
	// stop_grace_period) minus a margin. The wrapper caps it at MaxHold again.
	BudgetMS int64 `json:"budgetMs"`
	// Policy is the stack's on-drain policy ("migrate"); informative for the wrapper.
	Policy string `json:"policy,omitempty"`
	// GraceMS is the task's stop_grace_period in milliseconds (0: unknown). After a
	// hold that ate into it, the wrapper SIGKILLs the container when it ends, counted
	// from the first kill (DecideAfterHold), as swarm would have.
	GraceMS int64 `json:"graceMs,omitempty"`
}

// Budget is the hold budget, capped at MaxHold; zero or negative means "do not hold".
func (a Arm) Budget() time.Duration {
	d := time.Duration(a.BudgetMS) * time.Millisecond
	return min(d, MaxHold)
}

// StopRequest is the content of stop-<ID>, written when a hold starts.
type StopRequest struct {
	ID     string `json:"id"`
	Signal string `json:"signal"`
	// Root is runc's --root; Bundle the container's bundle (the wrapper's working
	// directory: containerd's shim runs the runtime there).
	Root   string `json:"root,omitempty"`
	Bundle string `json:"bundle,omitempty"`
	// Deadline is when the wrapper gives up waiting (RFC 3339, UTC).
	Deadline time.Time `json:"deadline"`
	// GraceMS is the armed stop_grace_period (Arm.GraceMS).
	GraceMS int64 `json:"graceMs,omitempty"`
}

// Verdict outcomes.
const (
	// VerdictRelease: not a drain (or the checkpoint failed): pass the kill on now.
	VerdictRelease = "release"
	// VerdictCheckpointed: the worker dumped the container with exit; the kill is
	// passed on and runc answers "container not running", which dockerd takes as the
	// exit (measured, docs/drain.md).
	VerdictCheckpointed = "checkpointed"
)

// Verdict is the content of verdict-<ID>.
type Verdict struct {
	Outcome string `json:"outcome"`
	// Reason says why (logged into runc's --log by the wrapper).
	Reason string `json:"reason,omitempty"`
}

// KillAction is what the wrapper does with a kill.
type KillAction int

const (
	// KillPass passes the kill to runc at once (not armed, KILL, no budget).
	KillPass KillAction = iota
	// KillHold writes the stop request and waits for a verdict until the deadline.
	KillHold
)

// DecideKill is the pure decision for one kill: hold only a non-KILL signal of an armed
// container with a positive budget.
func DecideKill(armed bool, arm Arm, signal string) KillAction {
	if !armed || isKill(signal) || arm.Budget() <= 0 {
		return KillPass
	}
	return KillHold
}

// minEscalateHold: a hold shorter than this leaves the stop to dockerd's own grace
// timer (the stop then takes the hold plus stop_grace_period, within noise).
const minEscalateHold = time.Second

// AfterHold is what the wrapper does once a hold ended (DecideAfterHold).
type AfterHold struct {
	// Escalate: pass the original signal on as a child process, then SIGKILL the
	// container if it still runs KillAfter later (the rest of its grace period).
	// Otherwise the kill is passed on (exec) and dockerd's grace timer applies.
	Escalate  bool
	KillAfter time.Duration
}

// DecideAfterHold is the pure decision after a hold of length held of a container
// whose stop_grace_period is grace (0: unknown), with verdict v (nil: the hold timed
// out). dockerd starts its grace timer only when the held kill returns, so after a
// hold that ate into the grace period the wrapper itself keeps swarm's promise: the
// stop signal now, SIGKILL when the grace period, counted from the first kill, ends.
// A checkpointed container is already gone; a short hold changes nothing.
func DecideAfterHold(v *Verdict, grace, held time.Duration) AfterHold {
	if v != nil && v.Outcome == VerdictCheckpointed {
		return AfterHold{}
	}
	if grace <= 0 || held < minEscalateHold {
		return AfterHold{}
	}
	return AfterHold{Escalate: true, KillAfter: max(grace-held, 0)}
}

// HoldOutcome names how a hold ended, for the log: the verdict's outcome, or "timeout".
func HoldOutcome(v *Verdict) string {
	if v == nil {
		return "timeout"
	}
	return v.Outcome
}

func isKill(sig string) bool {
	s := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(sig), "SIG"))
	return s == "9" || s == "KILL"
}

// parseKill reads `kill [--all|-a] ID [SIGNAL]` (runc's default signal is SIGTERM).
func parseKill(args []string) (id, signal string) {
	var pos []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		pos = append(pos, a)
	}
	switch len(pos) {
	case 1:
		return pos[0], "SIGTERM"
	case 2:
		return pos[0], pos[1]
	}
	return "", ""
}

// ReadArm reads arm-<ID> in dir; ok is false when the container is not armed (one stat
// when it is not).
func ReadArm(dir, id string) (Arm, bool, error) {
	p := filepath.Join(dir, ArmFile(id))
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return Arm{}, false, nil
	}
	if err != nil {
		return Arm{}, false, fmt.Errorf("ociwrap: read %s: %w", p, err)
	}
	var a Arm
	if err := json.Unmarshal(b, &a); err != nil {
		return Arm{}, false, fmt.Errorf("ociwrap: %s: %w", p, err)
	}
	return a, true, nil
}

// ReadVerdict reads verdict-<ID> in dir; nil when there is none yet.
func ReadVerdict(dir, id string) (*Verdict, error) {
	p := filepath.Join(dir, VerdictFile(id))
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ociwrap: read %s: %w", p, err)
	}
	var v Verdict
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("ociwrap: %s: %w", p, err)
	}
	return &v, nil
}

// WriteJSONFile writes v to dir/name atomically (temporary file, rename).
func WriteJSONFile(dir, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// WaitVerdict polls dir for verdict-<ID> until one appears (returned) or deadline
// passes (nil, nil).
func WaitVerdict(dir, id string, deadline time.Time, now func() time.Time) (*Verdict, error) {
	for {
		v, err := ReadVerdict(dir, id)
		if v != nil || err != nil {
			return v, err
		}
		left := deadline.Sub(now())
		if left <= 0 {
			return nil, nil
		}
		time.Sleep(min(left, verdictPoll))
	}
}

// BeginHold is the wrapper's side of a kill of container id with signal sig, given the
// node's drain directory dir: when the container is armed and the signal may be held
// (DecideKill), it writes the stop request (deadline: now + the armed budget) and
// returns it with hold true. An unarmed container costs one stat.
func BeginHold(dir, id, sig, root, bundle string, now time.Time) (StopRequest, bool, error) {
	arm, armed, err := ReadArm(dir, id)
	if err != nil {
		return StopRequest{}, false, err
	}
	if DecideKill(armed, arm, sig) == KillPass {
		return StopRequest{}, false, nil
	}
	req := StopRequest{ID: id, Signal: sig, Root: root, Bundle: bundle, Deadline: now.Add(arm.Budget()).UTC(), GraceMS: arm.GraceMS}
	if err := WriteJSONFile(dir, StopFile(id), req); err != nil {
		return StopRequest{}, false, fmt.Errorf("write stop request: %w", err)
	}
	return req, true, nil
}

// kill handles `runc kill`: it holds the kill of an armed container (see DrainDir), then
// passes it on. Any failure to read the drain files passes the kill on at once: the hold
// must never turn a stop into a hang.
func (w *Wrapper) kill(inv Invocation, args []string) int {
	id, sig := parseKill(inv.Args)
	if id == "" || strings.ContainsRune(id, '/') {
		return w.passThrough(args)
	}
	bundle, err := os.Getwd()
	if err != nil {
		return w.passThrough(args)
	}
	dataRoot, err := DataRoot(bundle, id)
	if err != nil || dataRoot == "" {
		return w.passThrough(args)
	}
	dir := filepath.Join(dataRoot, AreaDir, DrainDir)
	start := w.Now()
	req, hold, err := BeginHold(dir, id, sig, inv.Root, bundle, start)
	if err != nil {
		w.log(inv, "warning", "drain hold skipped: "+err.Error())
		return w.passThrough(args)
	}
	if !hold {
		return w.passThrough(args)
	}
	w.log(inv, "info", fmt.Sprintf("holding kill %s of %s for the swarmckpt worker until %s", sig, id, req.Deadline.Format(time.RFC3339Nano)))
	v, err := w.waitVerdict(dir, id, req.Deadline)
	msg := fmt.Sprintf("kill %s of %s held %.3fs: %s", sig, id, w.Now().Sub(start).Seconds(), HoldOutcome(v))
	if v != nil && v.Reason != "" {
		msg += " (" + v.Reason + ")"
	}
	if err != nil {
		msg += "; " + err.Error()
	}
	w.log(inv, "info", msg)
	// The stop request first: a worker that lists held stops never sees this one
	// again without its verdict.
	_ = os.Remove(filepath.Join(dir, StopFile(id)))
	_ = os.Remove(filepath.Join(dir, VerdictFile(id)))
	a := DecideAfterHold(v, time.Duration(req.GraceMS)*time.Millisecond, w.Now().Sub(start))
	if !a.Escalate {
		return w.passThrough(args)
	}
	return w.escalate(inv, args, id, sig, a.KillAfter)
}

// escalate passes the held kill on as a child, then SIGKILLs the container if it
// still runs after killAfter: the stop never takes longer than stop_grace_period.
func (w *Wrapper) escalate(inv Invocation, args []string, id, sig string, killAfter time.Duration) int {
	_, code, err := w.run(args)
	if err != nil {
		w.log(inv, "warning", fmt.Sprintf("kill %s of %s: %v; passing it on", sig, id, err))
		return w.passThrough(args)
	}
	end := w.Now().Add(killAfter)
	for w.Now().Before(end) {
		if !w.running(inv, id) {
			return code
		}
		time.Sleep(min(end.Sub(w.Now()), 50*time.Millisecond))
	}
	if !w.running(inv, id) {
		return code
	}
	w.log(inv, "warning", fmt.Sprintf("%s still runs at the end of its stop_grace_period after a held kill %s: SIGKILL, as swarm would", id, sig))
	if _, kcode, err := w.run(append(slices.Clone(inv.Global), "kill", id, "KILL")); err != nil || kcode != 0 {
		w.log(inv, "warning", fmt.Sprintf("SIGKILL of %s: exit %d %v (dockerd kills it at its own grace period)", id, kcode, err))
	}
	return code
}

// running reports whether runc says container id runs (or is paused or created).
func (w *Wrapper) running(inv Invocation, id string) bool {
	out, code, err := w.run(append(slices.Clone(inv.Global), "state", id))
	if err != nil || code != 0 {
		return false
	}
	var st struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(out, &st) != nil {
		return false
	}
	return st.Status != "" && st.Status != "stopped"
}

// run runs runc with args as a child: its stdout and exit code.
func (w *Wrapper) run(args []string) ([]byte, int, error) {
	if w.Run != nil {
		return w.Run(w.Runc, args)
	}
	cmd := exec.Command(w.Runc, args...)
	cmd.Stderr = w.Stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out, ee.ExitCode(), nil
	}
	if err != nil {
		return nil, 0, err
	}
	return out, 0, nil
}

func (w *Wrapper) waitVerdict(dir, id string, deadline time.Time) (*Verdict, error) {
	if w.WaitVerdict != nil {
		return w.WaitVerdict(dir, id, deadline)
	}
	return WaitVerdict(dir, id, deadline, w.Now)
}
