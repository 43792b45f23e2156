package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms/registry"
	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/natsauth"
	"github.com/swarmckpt/swarmckpt/controlplane/natsbus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// Exit codes of the user commands beyond main's (documented in docs/cli.md).
const (
	exitNotFound = 3 // stack or snapshot does not exist
	exitBusy     = 4 // the stack is being snapshotted already
	exitAborted  = 5 // the snapshot was aborted (its error says whether everything was released)
)

// ctlFlags are the flags every user command shares.
type ctlFlags struct {
	natsFlags
	output  string
	timeout time.Duration
}

func newCtlFlags(name string, timeout time.Duration) (*flag.FlagSet, *ctlFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f := &ctlFlags{}
	f.register(fs, true)
	fs.StringVar(&f.output, "output", "text", "output format: text or json")
	fs.DurationVar(&f.timeout, "timeout", timeout, "how long to wait for the coordinator")
	return fs, f
}

func (f *ctlFlags) check() error {
	if f.output != "text" && f.output != "json" {
		return usagef("--output must be text or json, not %q", f.output)
	}
	return nil
}

func (f *ctlFlags) connect(ctx context.Context, c *cli) (bus.Transport, api.Client, error) {
	var tr bus.Transport
	if c.transport != nil {
		tr = c.transport()
	} else {
		cfg, err := f.config(c, "swarmckpt-cli", natsauth.RoleCLI, "")
		if err != nil {
			return nil, api.Client{}, err
		}
		if tr, err = natsbus.Connect(ctx, cfg); err != nil {
			return nil, api.Client{}, err
		}
	}
	// A request safe to send twice (reads; a snapshot, by its request id) goes again
	// to the next leader when the one that had it died before answering.
	return tr, api.Client{T: tr, Failover: true, OnResend: func(op, why string) { fmt.Fprintf(c.stderr, "swarmckpt: %s\n", why) }}, nil
}

// newRequestID is a random id for one request (api.SnapshotRequest.RequestID).
func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// parse parses flags and positional arguments (flags may come after them), checks
// --output and that there are min..max positional arguments (max < 0: no limit);
// otherwise bad is the usage error.
func (f *ctlFlags) parse(c *cli, fs *flag.FlagSet, usage string, args []string, min, max int, bad string) ([]string, error) {
	pos, err := c.parseArgs(fs, usage, args)
	if err != nil {
		return nil, err
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		return nil, usagef("%s", bad)
	}
	return pos, nil
}

// parseStack is parse for a command that takes at most one argument, a stack name
// ("" when none), checked as the coordinator would (exit 2 otherwise); bad says what
// the command accepts.
func (f *ctlFlags) parseStack(c *cli, fs *flag.FlagSet, usage string, args []string, bad string) (string, error) {
	pos, err := f.parse(c, fs, usage, args, 0, 1, bad)
	if err != nil || len(pos) == 0 {
		return "", err
	}
	if err := badName(api.ValidStack(pos[0])); err != nil {
		return "", err
	}
	return pos[0], nil
}

// dial connects to the coordinator and, for text output with a non-empty progress id,
// prints that operation's live progress until closed. close undoes both.
func (f *ctlFlags) dial(ctx context.Context, c *cli, progress string) (cl api.Client, close func(), err error) {
	tr, cl, err := f.connect(ctx, c)
	if err != nil {
		return cl, nil, err
	}
	if f.output != "text" || progress == "" {
		return cl, func() { tr.Close() }, nil
	}
	stop, err := followProgress(tr, progress, c.stdout)
	if err != nil {
		tr.Close()
		return cl, nil, err
	}
	return cl, func() { stop(); tr.Close() }, nil
}

// call connects to the coordinator, sends it one op request within --timeout and
// returns its result; errors are mapped to exit codes (apiExit).
func call[R any](ctx context.Context, c *cli, f *ctlFlags, op string, req any) (*R, error) {
	cl, disconnect, err := f.dial(ctx, c, "")
	if err != nil {
		return nil, err
	}
	defer disconnect()
	rctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	res, err := api.Call[R](rctx, cl, op, req)
	if err != nil {
		return nil, apiExit(err)
	}
	return res, nil
}

// apiExit maps coordinator errors to exit codes.
func apiExit(err error) error {
	if err == nil {
		return nil
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Code {
	case api.CodeBadRequest:
		return &usageError{msg: ae.Message}
	case api.CodeNotFound:
		return &exitCodeError{code: exitNotFound, err: err}
	case api.CodeBusy:
		return &exitCodeError{code: exitBusy, err: err}
	case api.CodeAborted:
		return &exitCodeError{code: exitAborted, err: err}
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// progress prints a long operation's events as they arrive.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	tty  bool
	t0   time.Time
	seen int
}

func (p *progress) handle(m *bus.Msg) {
	var e api.Event
	if err := json.Unmarshal(m.Data, &e); err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen++
	what := e.Phase
	if e.Container != "" {
		what = fmt.Sprintf("%-24s %-10s %s", e.Container, e.Node, e.Phase)
	}
	extra := ""
	if e.Bytes > 0 {
		extra += " " + human(e.Bytes)
	}
	if e.MS > 0 {
		extra += fmt.Sprintf(" %dms", e.MS)
	}
	if e.Message != "" {
		extra += "  " + e.Message
	}
	fmt.Fprintf(p.w, "[%6.2fs] %s%s\n", time.Since(p.t0).Seconds(), what, extra)
}

func followProgress(tr bus.Transport, id string, w io.Writer) (func(), error) {
	p := &progress{w: w, tty: isTerminal(w), t0: time.Now()}
	sub, err := tr.Subscribe(api.ProgressSubject(id), p.handle)
	if err != nil {
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

func printSummary(w io.Writer, m *store.Manifest) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	hdr, copies := "", func(store.Container) string { return "" }
	if m.Replicas > 1 {
		hdr, copies = "\tCOPIES", func(c store.Container) string { return "\t" + copiesOf(c) }
	}
	fmt.Fprintln(tw, "CONTAINER\tNODE\tFROZEN\tDUMP\tIMAGES"+hdr)
	for _, c := range m.Containers {
		size := "-"
		if c.Images != nil {
			size = human(c.Images.Bytes())
		}
		fmt.Fprintf(tw, "%s\t%s\t%dms\t%dms\t%s%s\n", c.Key(), c.Node, c.FreezeMS, c.DumpMS, size, copies(c))
	}
	tw.Flush()
	fmt.Fprintf(w, "snapshot %s of stack %s: %s, algorithm %s, %d containers, %s of images, total %dms\n",
		m.ID, m.Stack, m.State, m.Algorithm, len(m.Containers), human(m.Bytes()), m.TotalMS)
	printCarriedVolumes(w, m) // volumes.go
	if m.Reason != "" {
		fmt.Fprintf(w, "reason: %s\n", m.Reason)
	}
	if v := m.Verdict; v != nil {
		if v.Error != "" {
			fmt.Fprintf(w, "cut check: not run: %s\n", v.Error)
		} else {
			fmt.Fprintf(w, "cut check: %s\n", v.Summary)
		}
	}
	for _, wn := range m.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wn)
	}
}

// copiesOf lists the nodes holding copies of c's image set ("-": none), a copy that
// failed its last check marked "(BAD)".
func copiesOf(c store.Container) string {
	if len(c.Copies) == 0 {
		return "-"
	}
	var out []string
	for _, cp := range c.Copies {
		if cp.Error != "" {
			out = append(out, cp.Node+"(BAD)")
		} else {
			out = append(out, cp.Node)
		}
	}
	return strings.Join(out, ",")
}

// coordinatorGone watches the coordinator during a long request, so that the request
// does not wait for its own timeout when no answer can come: the channel says why, once
// no coordinator has answered a status request for silence (it died or lost NATS, or
// this CLI did), or, when restarts is set, one answers as another process than when the
// request was sent (it restarted, for instance under a supervisor within a second, or
// a standby leads now, and the request died with the old process; a request that
// api.Client.Failover sends again is watched without restarts). Call it before
// sending the request.
func coordinatorGone(ctx context.Context, cl api.Client, silence time.Duration, restarts bool) <-chan string {
	gone := make(chan string, 1)
	status := func() (*api.StatusResult, error) {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return api.Call[api.StatusResult](sctx, cl, api.OpStatus, api.StatusRequest{})
	}
	var started time.Time
	if st, err := status(); err == nil {
		started = st.Started
	}
	go func() {
		last := time.Now()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			st, err := status()
			switch {
			case restarts && err == nil && !started.IsZero() && !st.Started.IsZero() && !st.Started.Equal(started):
				gone <- "the coordinator restarted, or another one leads now: the request was lost with the process that had it"
				return
			case err == nil:
				last = time.Now()
			case time.Since(last) > silence:
				gone <- fmt.Sprintf("no coordinator answered for %s (none leads, or NATS is unreachable, from here or from the coordinator: %v)", silence, err)
				return
			}
		}
	}()
	return gone
}

// decided polls snapshot id's manifest for up to wait and returns it once committed or
// aborted; nil if it is not decided by then (or cannot be read).
func decided(ctx context.Context, cl api.Client, id string, wait time.Duration) *store.Manifest {
	deadline := time.Now().Add(wait)
	for {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		res, err := api.Call[api.InspectResult](ictx, cl, api.OpInspect, api.InspectRequest{ID: id})
		cancel()
		if err == nil && res.Snapshot != nil && res.Snapshot.State.Final() {
			return res.Snapshot
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func algoNames() string { return strings.Join(registry.Names(), "|") }

// mapString prints a map sorted by key: "a->b, c->d".
func mapString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"->"+m[k])
	}
	return strings.Join(parts, ", ")
}
