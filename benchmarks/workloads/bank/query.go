package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// ErrAudit is returned by the query when the audit found a problem (exit code 1).
var ErrAudit = errors.New("audit failed")

type queryConfig struct {
	Holders []string      // host:port of each holder's HTTP server
	Service string        // or: DNS name resolving to every holder
	Port    string        // HTTP port with Service
	Count   int           // expected holders; 0 = what the holders say
	Initial int64         // expected initial balance; -1 = what the holders say
	Settle  time.Duration // how long to wait for in-flight money to drain
	NoPause bool          // read once without pausing (figures may be inconsistent)
	JSON    bool          // print the Report as JSON
	// Connected also requires every holder to be connected to all count-1 peers (a
	// snapshot taken while the mesh is still forming catches connections that one
	// end has and the other has not accepted yet).
	Connected bool
	// lookup resolves Service (net.DefaultResolver.LookupHost when nil).
	lookup func(ctx context.Context, host string) ([]string, error)
}

var httpc = &http.Client{Timeout: 3 * time.Second}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	if v == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// each calls f for every holder address in parallel and joins the errors.
func each(addrs []string, f func(addr string) error) error {
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() { errs[i] = f(a) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// addrs returns the holders' addresses. With Service and Count, the name is looked up
// again (every 250 ms, up to Settle) until it resolves to Count addresses: right after
// a restore, swarm's DNS on a node can lag behind the tasks of other nodes for seconds
// (docs/restore.md), and an audit of part of the holders would report the others as
// not answering. waited is how long that took; a name still short of Count after
// Settle is audited as it is (the missing holders are reported).
func (q queryConfig) addrs(ctx context.Context) (out []string, waited time.Duration, err error) {
	if q.Service == "" {
		return q.Holders, 0, nil
	}
	lookup := q.lookup
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	start := time.Now()
	var ips []string
	err = retry(ctx, start.Add(q.Settle), nil, q.Service, func() error {
		var lerr error
		if ips, lerr = lookup(ctx, q.Service); lerr != nil {
			return lerr
		}
		if q.Count > 0 && len(ips) < q.Count {
			return errTooFew
		}
		return nil
	})
	if ctx.Err() != nil {
		return nil, time.Since(start), ctx.Err()
	}
	if err != nil && !errors.Is(err, errTooFew) {
		return nil, time.Since(start), fmt.Errorf("resolving holders %q: %w (run the query on the stack's network)", q.Service, err)
	}
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip, q.Port))
	}
	return out, time.Since(start), nil
}

// errTooFew: the service name resolved to fewer holders than --count (yet).
var errTooFew = errors.New("fewer addresses than holders")

func readStates(ctx context.Context, addrs []string, until time.Time, late *lateness) ([]State, error) {
	states := make([]State, len(addrs))
	err := each(addrs, func(a string) error {
		i := indexOf(addrs, a)
		return retry(ctx, until, late, a, func() error { return getJSON(ctx, "http://"+a+"/state", &states[i]) })
	})
	return states, err
}

// lateness records the longest a holder took to answer at all (retry).
type lateness struct {
	mu   sync.Mutex
	max  time.Duration
	addr string
}

// retry calls f until it succeeds or until passes, every 250 ms, and records in late
// how long addr took when it needed more than one try. Right after a restore a new
// container on one node (the query's) can reach the tasks of other nodes only once
// swarm's overlay has learnt their addresses, seconds later; a holder that does not
// answer by until is an error.
func retry(ctx context.Context, until time.Time, late *lateness, addr string, f func() error) error {
	start := time.Now()
	for tries := 1; ; tries++ {
		err := f()
		if err == nil {
			if tries > 1 && late != nil {
				late.mu.Lock()
				if d := time.Since(start); d > late.max {
					late.max, late.addr = d, addr
				}
				late.mu.Unlock()
			}
			return nil
		}
		if !time.Now().Before(until) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// runQuery pauses sending on every holder (receiving and acking go on), waits up to
// Settle for the channels to drain, audits, resumes, prints, and returns ErrAudit
// wrapped when the audit failed.
func runQuery(ctx context.Context, out io.Writer, q queryConfig) error {
	addrs, waited, err := q.addrs(ctx)
	if err != nil {
		return err
	}
	if waited >= time.Second {
		fmt.Fprintf(out, "note: %q resolved to %d of %d holders after %.1fs\n", q.Service, len(addrs), q.Count, waited.Seconds())
	}
	if len(addrs) == 0 {
		return errors.New("no holders: give --holders host:8080,... or --service NAME")
	}
	lease := q.Settle + 15*time.Second // holders resume by themselves if we die
	if !q.NoPause {
		defer func() {
			if err := each(addrs, func(a string) error { return getJSON(context.Background(), "http://"+a+"/resume", nil) }); err != nil {
				fmt.Fprintln(out, "warning: resume failed:", err)
			}
		}()
	}
	var late lateness
	if !q.NoPause {
		reach := time.Now().Add(q.Settle)
		if err := each(addrs, func(a string) error {
			return retry(ctx, reach, &late, a, func() error { return getJSON(ctx, "http://"+a+"/pause?for="+lease.String(), nil) })
		}); err != nil {
			return fmt.Errorf("pausing holders: %w", err)
		}
	}
	// The channels get the whole of Settle to drain from the moment all are paused.
	deadline := time.Now().Add(q.Settle)
	defer func() {
		if late.max >= time.Second {
			fmt.Fprintf(out, "note: holder %s answered only after %.1fs\n", late.addr, late.max.Seconds())
		}
	}()
	var rep Report
	for {
		states, err := readStates(ctx, addrs, deadline, &late)
		if err != nil {
			return fmt.Errorf("reading holder states: %w", err)
		}
		count, initial := q.Count, q.Initial
		if count == 0 && len(states) > 0 {
			count = states[0].Count
		}
		if initial < 0 && len(states) > 0 {
			initial = states[0].Initial
		}
		settled := q.NoPause || time.Now().After(deadline)
		rep = Audit(states, count, initial, !q.NoPause && settled)
		if settled || (rep.SumInFlight == 0 && !hasNegative(rep)) {
			if !q.NoPause && !settled {
				rep = Audit(states, count, initial, true)
			}
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if q.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printReport(out, rep)
	}
	if !rep.OK() {
		return fmt.Errorf("%w: %d problem(s), listed above", ErrAudit, len(rep.Problems))
	}
	if q.Connected {
		count := q.Count
		if count == 0 && len(rep.Holders) > 0 {
			count = rep.Holders[0].Count
		}
		if missing := notMeshed(rep.Holders, count); len(missing) > 0 {
			return fmt.Errorf("%w: not every holder is connected to every peer yet: %s", ErrAudit, strings.Join(missing, "; "))
		}
	}
	return nil
}

// notMeshed names the holders among states that are not connected to all count-1
// peers, and the holders missing from states altogether.
func notMeshed(states []State, count int) []string {
	var out []string
	seen := map[int]bool{}
	for _, s := range states {
		seen[s.ID] = true
		if len(s.ConnectedPeers) != count-1 {
			out = append(out, fmt.Sprintf("holder %d is connected to %v, want all %d peers", s.ID, s.ConnectedPeers, count-1))
		}
	}
	for id := 1; id <= count; id++ {
		if !seen[id] {
			out = append(out, fmt.Sprintf("holder %d did not answer", id))
		}
	}
	return out
}

func hasNegative(r Report) bool {
	for _, c := range r.Channels {
		if c.InFlight < 0 {
			return true
		}
	}
	return false
}

func printReport(out io.Writer, r Report) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOLDER\tBALANCE\tUNACKED\tSENT\tRECEIVED\tPEERS\tRECONNECTS\tINSTANCE")
	for _, s := range r.Holders {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%v\t%d\t%s\n", s.ID, s.Balance, s.InFlight, s.TransfersSent,
			s.TransfersReceived, s.ConnectedPeers, s.Reconnects, s.Instance)
	}
	tw.Flush()
	fmt.Fprintln(out)
	fmt.Fprintln(tw, "CHANNEL\tSENT\tRECEIVED\tIN_FLIGHT")
	for _, c := range r.Channels {
		fmt.Fprintf(tw, "%d->%d\t%d\t%d\t%d\n", c.From, c.To, c.Sent, c.Received, c.InFlight)
	}
	tw.Flush()
	verdict := "OK"
	if !r.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(out, "\nsum(balances)=%d in_flight=%d total=%d expected=%d %s\n",
		r.SumBalances, r.SumInFlight, r.Total, r.Expected, verdict)
	for _, p := range r.Problems {
		fmt.Fprintln(out, "PROBLEM:", p)
	}
}
