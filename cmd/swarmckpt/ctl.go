package main

import (
	"context"
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

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/natsbus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

// Exit codes of the user commands beyond main's (documented in docs/cli.md).
const (
	exitNotFound = 3 // stack or snapshot does not exist
	exitBusy     = 4 // the stack is being snapshotted already
	exitAborted  = 5 // the snapshot was aborted (and everything released)
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
	tr, err := natsbus.Connect(ctx, f.config(c, "swarmckpt-cli"))
	if err != nil {
		return nil, api.Client{}, err
	}
	return tr, api.Client{T: tr}, nil
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
	fmt.Fprintln(tw, "CONTAINER\tNODE\tFROZEN\tDUMP\tIMAGES")
	for _, c := range m.Containers {
		size := "-"
		if c.Images != nil {
			size = human(c.Images.Bytes())
		}
		fmt.Fprintf(tw, "%s\t%s\t%dms\t%dms\t%s\n", c.Key(), c.Node, c.FreezeMS, c.DumpMS, size)
	}
	tw.Flush()
	fmt.Fprintf(w, "snapshot %s of stack %s: %s, algorithm %s, %d containers, %s of images, total %dms\n",
		m.ID, m.Stack, m.State, m.Algorithm, len(m.Containers), human(m.Bytes()), m.TotalMS)
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

const snapshotUsage = `
Usage: swarmckpt snapshot <stack> [--algorithm NAME] [flags]

Takes a consistent snapshot of every container of a Docker Swarm stack. The containers
keep running (each is frozen only while it is dumped). Progress is shown per container;
the summary gives each container's freeze time and image size. Ctrl-C aborts the
snapshot and releases every container (exit code 130).

Exit codes: 0 committed, 1 failed, 2 bad usage, 3 no such stack, 4 the stack is being
snapshotted already, 5 aborted, 130 interrupted.

Examples:
  swarmckpt snapshot bank
  swarmckpt snapshot bank --algorithm blocking --output json
  swarmckpt snapshot echo --id echo-before-upgrade
`

func runSnapshot(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("snapshot", 3*time.Minute)
	algo := fs.String("algorithm", coordinator.DefaultAlgorithm, "checkpoint algorithm ("+algoNames()+")")
	id := fs.String("id", "", "id of the new snapshot: 1 to 128 letters, digits, '-' or '_', starting with a letter or digit (default STACK-DATE-TIME-RANDOM)")
	pos, err := f.parse(c, fs, snapshotUsage, args, 1, 1, "give exactly one stack name (swarmckpt snapshot <stack>)")
	if err != nil {
		return err
	}
	if err := badName(api.ValidStack(pos[0])); err != nil {
		return err
	}
	if *id != "" {
		if err := badName(api.ValidID(*id)); err != nil {
			return err
		}
	} else {
		*id = coordinator.NewID(pos[0], time.Now())
	}
	cl, disconnect, err := f.dial(ctx, c, *id)
	if err != nil {
		return err
	}
	defer disconnect()
	if f.output == "text" {
		fmt.Fprintf(c.stdout, "snapshot %s of stack %s (algorithm %s)\n", *id, pos[0], *algo)
	}
	type result struct {
		res *api.SnapshotResult
		err error
	}
	done := make(chan result, 1)
	gone := coordinatorGone(ctx, cl)
	go func() {
		rctx, cancel := context.WithTimeout(context.Background(), f.timeout)
		defer cancel()
		r, err := api.Call[api.SnapshotResult](rctx, cl, api.OpSnapshot, api.SnapshotRequest{ID: *id, Stack: pos[0], Algorithm: *algo, Timeout: f.timeout - 5*time.Second})
		done <- result{r, err}
	}()
	var r result
	select {
	case r = <-done:
	case why := <-gone:
		// A restarted coordinator decides the snapshot at once (presumed abort): wait a
		// little for that decision and report it.
		if m := decided(ctx, cl, *id, 20*time.Second); m != nil {
			r = result{res: &api.SnapshotResult{Snapshot: m}}
			if m.State == store.StateAborted {
				r.err = api.Errorf(api.CodeAborted, "snapshot %s aborted: %s (%s)", *id, m.Reason, why)
			}
			break
		}
		return fmt.Errorf("%s during snapshot %s: a restarted coordinator aborts it and the workers release its containers at their deadline; check with 'swarmckpt inspect %s'", why, *id, *id)
	case <-ctx.Done():
		fmt.Fprintf(c.stderr, "interrupted: aborting snapshot %s and releasing its containers...\n", *id)
		actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, aerr := api.Call[api.AbortResult](actx, cl, api.OpAbort, api.AbortRequest{ID: *id, Reason: "interrupted by the user (Ctrl-C)"})
		cancel()
		select {
		case r = <-done:
		case <-time.After(15 * time.Second):
		}
		if aerr != nil && !errors.Is(aerr, api.ErrNotFound) {
			return fmt.Errorf("interrupted; the abort request failed (%v): the coordinator aborts it at its deadline", aerr)
		}
		if r.res != nil && r.res.Snapshot != nil {
			return fmt.Errorf("interrupted: snapshot %s is %s", *id, r.res.Snapshot.State)
		}
		return fmt.Errorf("interrupted: snapshot %s aborted", *id)
	}
	if r.res != nil && r.res.Snapshot != nil {
		if f.output == "json" {
			if err := printJSON(c.stdout, r.res.Snapshot); err != nil {
				return err
			}
		} else {
			time.Sleep(50 * time.Millisecond) // let the last progress events print first
			printSummary(c.stdout, r.res.Snapshot)
		}
	}
	return apiExit(r.err)
}

// coordinatorGone watches the coordinator during a long request, so that the request
// does not wait for its own timeout when no answer can come: the channel says why, once
// the coordinator has not answered a status request for 6 s (it died or lost NATS), or
// answers as another process than when the request was sent (it restarted, for instance
// under a supervisor within a second, and the request died with the old process). Call
// it before sending the request.
func coordinatorGone(ctx context.Context, cl api.Client) <-chan string {
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
			case err == nil && !started.IsZero() && !st.Started.IsZero() && !st.Started.Equal(started):
				gone <- "the coordinator restarted (the request was lost with the process that had it)"
				return
			case err == nil:
				last = time.Now()
			case time.Since(last) > 6*time.Second:
				gone <- "the coordinator stopped answering (it died or lost NATS)"
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

func algoNames() string {
	var n []string
	for _, a := range availableAlgorithms() {
		n = append(n, a.Name())
	}
	return strings.Join(n, "|")
}

const lsUsage = `
Usage: swarmckpt ls [<stack>] [--output json]

Lists snapshots (of one stack, or all), oldest first, with their state.

Examples:
  swarmckpt ls
  swarmckpt ls bank --output json
`

func runLs(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("ls", 10*time.Second)
	pos, err := f.parse(c, fs, lsUsage, args, 0, 1, "give at most one stack name")
	if err != nil {
		return err
	}
	stackName := ""
	if len(pos) == 1 {
		stackName = pos[0]
		if err := badName(api.ValidStack(stackName)); err != nil {
			return err
		}
	}
	cl, disconnect, err := f.dial(ctx, c, "")
	if err != nil {
		return err
	}
	defer disconnect()
	rctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	res, err := api.Call[api.ListResult](rctx, cl, api.OpList, api.ListRequest{Stack: stackName})
	if err != nil {
		return apiExit(err)
	}
	if f.output == "json" {
		return printJSON(c.stdout, res.Snapshots)
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTACK\tSTATE\tALGORITHM\tCONTAINERS\tIMAGES\tCREATED\tCUT")
	for _, m := range res.Snapshots {
		cutS := "-"
		if m.Verdict != nil {
			switch {
			case m.Verdict.Error != "":
				cutS = "unchecked"
			case m.Verdict.Consistent:
				cutS = "consistent"
			default:
				cutS = "INCONSISTENT"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", m.ID, m.Stack, m.State, m.Algorithm, len(m.Containers),
			human(m.Bytes()), m.CreatedAt.Local().Format("2006-01-02 15:04:05"), cutS)
	}
	return tw.Flush()
}

const inspectUsage = `
Usage: swarmckpt inspect <snapshot> [--verify] [--output json]

Shows a snapshot: state, containers with node, addresses, freeze time and images.
--verify re-checks every image file's sha256 and runs the cut checker on the stored CRIU
images: for every TCP connection between two containers of the snapshot, bytes received
<= bytes sent in both directions, printed as per-connection evidence. Exit code 1 when
the cut is inconsistent or the images are corrupt.

Examples:
  swarmckpt inspect bank-20261122-021500-1a2b3c
  swarmckpt inspect bank-20261122-021500-1a2b3c --verify
`

func runInspect(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("inspect", time.Minute)
	verify := fs.Bool("verify", false, "verify checksums and the consistency of the cut")
	pos, err := f.parse(c, fs, inspectUsage, args, 1, 1, "give exactly one snapshot id (see 'swarmckpt ls')")
	if err != nil {
		return err
	}
	if err := badName(api.ValidID(pos[0])); err != nil {
		return err
	}
	cl, disconnect, err := f.dial(ctx, c, "")
	if err != nil {
		return err
	}
	defer disconnect()
	rctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	res, err := api.Call[api.InspectResult](rctx, cl, api.OpInspect, api.InspectRequest{ID: pos[0], Verify: *verify})
	if err != nil {
		return apiExit(err)
	}
	m := res.Snapshot
	if f.output == "json" {
		if err := printJSON(c.stdout, m); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "ID:         %s\nStack:      %s\nState:      %s\nAlgorithm:  %s\nEpoch:      %d\nCreated:    %s\n",
			m.ID, m.Stack, m.State, m.Algorithm, m.Epoch, m.CreatedAt.Local().Format(time.RFC3339))
		if m.Reason != "" {
			fmt.Fprintf(c.stdout, "Reason:     %s\n", m.Reason)
		}
		fmt.Fprintln(c.stdout)
		tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CONTAINER\tNODE\tCONTAINER ID\tIPS\tFROZEN\tIMAGES\tFILES\tDIR")
		for _, ct := range m.Containers {
			size, files, dir := "-", 0, "-"
			if ct.Images != nil {
				size, files, dir = human(ct.Images.Bytes()), len(ct.Images.Files), ct.Images.Dir
			}
			id := ct.ContainerID
			if len(id) > 12 {
				id = id[:12]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%dms\t%s\t%d\t%s\n", ct.Key(), ct.Node, id, strings.Join(ct.IPs, ","), ct.FreezeMS, size, files, dir)
		}
		tw.Flush()
		for _, r := range m.Restores {
			st := "ok"
			if !r.OK {
				st = "FAILED: " + r.Error
			}
			keys := make([]string, 0, len(r.Targets))
			for k, v := range r.Targets {
				keys = append(keys, k+"->"+v)
			}
			sort.Strings(keys)
			mode := ""
			if r.Mode != "" {
				mode = " --mode " + r.Mode
			}
			fmt.Fprintf(c.stdout, "restored%s %s: %s (%s)\n", mode, r.At.Local().Format(time.RFC3339), st, strings.Join(keys, ", "))
			if len(r.Addresses) > 0 {
				addrs := make([]string, 0, len(r.Addresses))
				for o, n := range r.Addresses {
					addrs = append(addrs, o+"->"+n)
				}
				sort.Strings(addrs)
				fmt.Fprintf(c.stdout, "  addresses: %s\n", strings.Join(addrs, ", "))
			}
		}
		for _, w := range m.Warnings {
			fmt.Fprintf(c.stdout, "warning: %s\n", w)
		}
		if v := m.Verdict; v != nil {
			fmt.Fprintln(c.stdout)
			if v.Error != "" {
				fmt.Fprintf(c.stdout, "cut check: could not run: %s\n", v.Error)
			} else {
				fmt.Fprintf(c.stdout, "cut check: %s\n", v.Summary)
				for _, l := range v.Lines {
					fmt.Fprintf(c.stdout, "  %s\n", l)
				}
			}
		}
	}
	if *verify && m.Verdict != nil && (m.Verdict.Error != "" || !m.Verdict.Consistent) {
		return fmt.Errorf("verification of %s failed", m.ID)
	}
	return nil
}

const rmUsage = `
Usage: swarmckpt rm <snapshot>...

Deletes snapshots from the store (a running snapshot must be aborted first).

Examples:
  swarmckpt rm bank-20261122-021500-1a2b3c
`

func runRm(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("rm", 10*time.Second)
	pos, err := f.parse(c, fs, rmUsage, args, 1, -1, "give at least one snapshot id (see 'swarmckpt ls')")
	if err != nil {
		return err
	}
	for _, id := range pos { // every id before the first is removed
		if err := badName(api.ValidID(id)); err != nil {
			return err
		}
	}
	cl, disconnect, err := f.dial(ctx, c, "")
	if err != nil {
		return err
	}
	defer disconnect()
	for _, id := range pos {
		rctx, cancel := context.WithTimeout(ctx, f.timeout)
		res, err := api.Call[api.RemoveResult](rctx, cl, api.OpRemove, api.RemoveRequest{ID: id})
		cancel()
		if err != nil {
			return apiExit(err)
		}
		fmt.Fprintf(c.stdout, "removed %s (%d image set(s) deleted on the nodes, every copy of each)\n", id, res.ImagesRemoved)
		for _, w := range res.Warnings {
			fmt.Fprintf(c.stdout, "  warning: %s\n", w)
		}
	}
	return nil
}

const restoreUsage = `
Usage: swarmckpt restore <snapshot> [--mode exact|swarm] [--node SERVICE.SLOT=NODE ...] [--on-original]
                         [--recovery-line | --force] [--discard-running]

Restores every container of a committed snapshot, all or nothing. Every node involved
is asked first whether the restore can run (live worker, image sets complete, images
present, names and addresses free, every image file's sha256 re-checked on its node):
if not, it is refused with nothing changed, naming container, node and fix. One
restore, migration, snapshot or rm of a stack at a time (else refused, exit 4).
In exact mode what still runs of the stack is checkpointed first (a blocking snapshot
whose containers are ended only once it committed; printed as "before"); if that
cannot be done the restore is refused with nothing changed. Then the stack's services
are scaled to 0 and their running tasks killed (no duplicates; the snapshot replaces
them). Image files are streamed to the target nodes and their sha256 verified before
restore. Connections between the restored containers are kept in both modes. If an
exact restore fails after the stop, the stack is put back from that checkpoint: every
container runs again on its node with its state ('swarmckpt restore BEFORE
--on-original' does the same by hand); only if that fails too are the services scaled
back to their replicas (started fresh from their images). CRIU's log stays on the
node as <set>.failed-restore.log.
--discard-running: skip the checkpoint of what runs (its state is lost; a failed
  restore starts the services fresh).
--on-original: every container not mapped with --node goes back to its own original
  node.

--mode exact (default): every container comes back as a standalone container on its
  original IP address and aliases: by default each on a node other than the one it was
  dumped on (round robin over nodes with a live worker); --node pins one. Swarm no
  longer supervises them, but swarmckpt still treats them as the stack: snapshot,
  migrate and restore find them on every node, and a later restore (either mode)
  removes them first.
--mode swarm: every container comes back as its service's own swarm task (docker
  service ps shows it Running; swarm restarts and reschedules it), on the node and new
  IP address swarm picks; the images are rewritten for the new addresses. --node is
  refused (swarm places tasks). See docs/restore.md.

A snapshot whose algorithm promises no consistent cut (uncoordinated) has its cut
checked first, over its images (each node re-hashes its sets and reads the TCP
sockets of the CRIU images): an inconsistent cut is refused with nothing changed,
naming the violating connections. Then either:
--recovery-line: restore the newest consistent combination of the stack's committed
  snapshots of the same algorithm up to <snapshot> instead: starting from <snapshot>
  for every container, the receiver of an orphan and the sender of lost bytes go back
  to their previous snapshot until the check finds nothing (refused if a container
  would go back past its oldest one). Prints, per container, the snapshot it came
  from and how many it rolled back. Exact mode only when a container goes back.
--force: restore the recorded cut anyway, unchecked (connections may hang, reset or
  lose bytes).
Snapshots of the other algorithms are consistent cuts and are restored unchecked.

Examples:
  swarmckpt restore bank-20261122-021500-1a2b3c
  swarmckpt restore bank-20261122-021500-1a2b3c --mode swarm
  swarmckpt restore bank-20261122-021500-1a2b3c --node bank_holder.1=lab-3 --node bank_holder.2=lab-1
  swarmckpt restore bank-20261122-021500-1a2b3c --recovery-line
`

type multiFlag map[string]string

func (m multiFlag) String() string { return "" }
func (m multiFlag) Set(v string) error {
	k, n, ok := strings.Cut(v, "=")
	if !ok || k == "" || n == "" {
		return fmt.Errorf("want SERVICE.SLOT=NODE, got %q", v)
	}
	m[k] = n
	return nil
}

func runRestore(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("restore", 10*time.Minute)
	targets := multiFlag{}
	fs.Var(targets, "node", "SERVICE.SLOT=NODE: restore that container on NODE (repeatable)")
	onOrig := fs.Bool("on-original", false, "restore every container not mapped with --node on its own original node")
	mode := fs.String("mode", api.ModeExact, "exact (standalone containers on their original IPs) or swarm (swarm's own tasks on new IPs)")
	line := fs.Bool("recovery-line", false, "uncoordinated snapshot: restore the newest consistent combination of the stack's snapshots up to this one")
	force := fs.Bool("force", false, "uncoordinated snapshot: restore its recorded cut without checking it")
	discard := fs.Bool("discard-running", false, "exact mode: do not checkpoint what runs of the stack first (its state is lost; a failed restore starts it fresh)")
	pos, err := f.parse(c, fs, restoreUsage, args, 1, 1, "give exactly one snapshot id (see 'swarmckpt ls')")
	if err != nil {
		return err
	}
	if err := badName(api.ValidID(pos[0]), api.ValidTargets(targets)); err != nil {
		return err
	}
	if *line && *force {
		return usagef("give --recovery-line (restore a consistent combination) or --force (restore the recorded cut unchecked), not both")
	}
	if *mode != api.ModeExact && *mode != api.ModeSwarm {
		return usagef("--mode must be exact or swarm, not %q", *mode)
	}
	if *mode == api.ModeSwarm && len(targets) > 0 {
		return usagef("--node cannot be used with --mode swarm: swarm places the tasks (use --mode exact to choose nodes)")
	}
	cl, disconnect, err := f.dial(ctx, c, pos[0])
	if err != nil {
		return err
	}
	defer disconnect()
	rctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	gone := coordinatorGone(rctx, cl)
	var res *api.RestoreResult
	done := make(chan error, 1)
	go func() {
		var err error
		res, err = api.Call[api.RestoreResult](rctx, cl, api.OpRestore, api.RestoreRequest{ID: pos[0], Targets: targets, OnOriginal: *onOrig, Mode: *mode,
			RecoveryLine: *line, Force: *force, DiscardRunning: *discard})
		done <- err
	}()
	select {
	case err = <-done:
	case why := <-gone:
		return fmt.Errorf("%s during the restore of %s: it did not finish; the stack's checkpoint taken first (if it committed) is listed by 'swarmckpt ls' and 'swarmckpt restore ID --on-original' puts it back", why, pos[0])
	}
	if err != nil {
		return apiExit(err)
	}
	if f.output == "json" {
		return printJSON(c.stdout, res)
	}
	keys := make([]string, 0, len(res.Targets))
	for k := range res.Targets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		from := ""
		if s, ok := res.From[k]; ok {
			from = fmt.Sprintf(", from %s, %d checkpoint(s) back", s, res.RolledBack[k])
		}
		fmt.Fprintf(c.stdout, "%s -> %s (container %s%s)\n", k, res.Targets[k], res.Containers[k], from)
	}
	if res.CutCheck != "" {
		fmt.Fprintf(c.stdout, "cut: %s\n", res.CutCheck)
	}
	if res.Mode == api.ModeSwarm {
		fmt.Fprintf(c.stdout, "as swarm tasks; address map: %s\n", mapString(res.Addresses))
		for _, cl := range res.Closed {
			fmt.Fprintf(c.stdout, "connection closed at restore: %s\n", cl)
		}
	}
	fmt.Fprintf(c.stdout, "restored %s in %dms\n", res.ID, res.TotalMS)
	if res.Before != "" {
		fmt.Fprintf(c.stdout, "before: what ran is kept as snapshot %s (undo: swarmckpt restore %s --on-original; or swarmckpt rm %s)\n", res.Before, res.Before, res.Before)
	}
	return nil
}

const migrateUsage = `
Usage: swarmckpt migrate <stack> --to NODE | --from NODE [--algorithm NAME] [--mode exact|swarm]

Moves a stack cold: a snapshot that stops the containers after their dump, then a
restore on the target (--to: every container on NODE; --from: every container of NODE
elsewhere). In exact mode the targets are chosen before the snapshot and each moving
container's images stream to its target while they are dumped (the dumping node keeps
its copy); the restore then finds them in place. The containers stay frozen and
network-locked from their dump until the snapshot committed and are ended only then:
a snapshot that aborts leaves every one running as before. --to a node without a
live worker is refused before anything is touched. If the restore fails, the
originals are restored where they were. --mode as for restore (default exact); with --mode
swarm the move is a placement constraint added to the stack's services
(node.hostname==NODE for --to, node.hostname!=NODE for --from) for the restore, and
removed from them once the restored tasks run (swarm does not move a task whose node
still satisfies the remaining constraints); with --to the images also stream to NODE
while they are dumped, and only NODE gets the sets. A stack restored or migrated in exact mode
(standalone containers) migrates again like a deployed one. An algorithm that
promises no consistent cut (uncoordinated) is refused: the containers stop after
their dump, so the cut must be restorable.

Examples:
  swarmckpt migrate echo --to lab-3
  swarmckpt migrate echo --from lab-2 --mode swarm
  swarmckpt migrate bank --from lab-2
`

func runMigrate(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("migrate", 10*time.Minute)
	to := fs.String("to", "", "move every container of the stack to this node")
	from := fs.String("from", "", "move every container off this node")
	algo := fs.String("algorithm", coordinator.DefaultAlgorithm, "checkpoint algorithm ("+algoNames()+")")
	mode := fs.String("mode", api.ModeExact, "restore mode: exact or swarm (see 'swarmckpt restore --help')")
	pos, err := f.parse(c, fs, migrateUsage, args, 1, 1, "give exactly one stack name (swarmckpt migrate <stack> --to NODE)")
	if err != nil {
		return err
	}
	if *mode != api.ModeExact && *mode != api.ModeSwarm {
		return usagef("--mode must be exact or swarm, not %q", *mode)
	}
	if (*to == "") == (*from == "") {
		return usagef("give exactly one of --to NODE or --from NODE")
	}
	if err := badName(api.ValidStack(pos[0]), validNodeFlag("--to", *to), validNodeFlag("--from", *from)); err != nil {
		return err
	}
	id := coordinator.NewID(pos[0], time.Now())
	cl, disconnect, err := f.dial(ctx, c, id)
	if err != nil {
		return err
	}
	defer disconnect()
	rctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	done := make(chan error, 1)
	var res *api.MigrateResult
	gone := coordinatorGone(ctx, cl)
	go func() {
		var err error
		res, err = api.Call[api.MigrateResult](rctx, cl, api.OpMigrate, api.MigrateRequest{ID: id, Stack: pos[0], To: *to, From: *from, Algorithm: *algo, Mode: *mode})
		done <- err
	}()
	select {
	case err = <-done:
	case why := <-gone:
		return fmt.Errorf("%s during migration %s: check with 'swarmckpt inspect %s'", why, id, id)
	case <-ctx.Done():
		actx, acancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _ = api.Call[api.AbortResult](actx, cl, api.OpAbort, api.AbortRequest{ID: id, Reason: "interrupted by the user (Ctrl-C)"})
		acancel()
		return fmt.Errorf("interrupted: migration %s aborted", id)
	}
	if f.output == "json" && res != nil {
		_ = printJSON(c.stdout, res)
	} else if res != nil && res.Snapshot != nil {
		printSummary(c.stdout, res.Snapshot)
		if res.Restore != nil {
			if res.Restore.Mode == api.ModeSwarm {
				fmt.Fprintf(c.stdout, "restored as swarm tasks on %s; address map: %s\n", mapString(res.Restore.Targets), mapString(res.Restore.Addresses))
			}
			fmt.Fprintf(c.stdout, "restored in %dms\n", res.Restore.TotalMS)
		}
	}
	return apiExit(err)
}

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

// validNodeFlag checks the node name given to flag, if any.
func validNodeFlag(flag, node string) error {
	if node == "" {
		return nil
	}
	if err := api.ValidNode(node); err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	return nil
}
