// Command drain measures the race of issue #16 on a real lab: what happens between a
// plain `docker node update --availability drain NODE` and the moment swarm kills a
// task on NODE, and when the replacement task starts elsewhere. It is a benchmark, not
// a product path (docs/drain.md reads its output).
//
// The lab's default runtime must be benchmarks/drain/probe-runtime.sh (run.sh installs
// it), which logs every runtime call with its time to STATE/calls.log and, while
// STATE/hold holds N, holds each non-KILL `kill` for N seconds before passing it on.
//
// One case = one service of --image with 2 replicas, at most 1 per node, on a 3-node
// lab; each repetition drains a node that runs one of its tasks (the replacement can go
// only to the free node), waits until the replacement runs, and sets the node active
// again. A watcher on the manager's event stream (type=node) records when it saw the
// node update and when it had listed the node's tasks (what a watcher needs to act).
// Per repetition it prints, in ms from just before the NodeUpdate call:
//
//	BENCH drain case=C rep=I node=N update_call_ms=.. event_ms=.. watcher_tasks_ms=..
//	      kill_ms=.. kill9_ms=.. exit_ms=.. repl_create_ms=.. repl_running_ms=..
//	      [hold_s=.. hold_end_ms=.. inspect_during_hold=blocked|ok inspect_ms=..
//	       repl_during_hold=NODE/STATE/desired=STATE]
//
// kill_ms: the first kill call (stop signal) the runtime got for the task's container;
// kill9_ms: the SIGKILL call, if any; exit_ms: the runtime's delete of the old
// container (after its exit); repl_create_ms: the runtime's create (or restore) of the
// replacement on the other node; repl_running_ms: when the manager reported it running.
// After the repetitions, one summary line per metric (min, median, p95, max).
//
// Usage: go run ./benchmarks/drain --lab NAME --state DIR [--reps 20] [--grace 10s]
// [--network=true] [--hold 0] [--case NAME]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

type bench struct {
	lab      string
	state    string
	nodes    map[string]*client.Client // hostname -> engine
	ids      map[string]string         // node ID -> hostname
	manager  *client.Client
	mu       sync.Mutex
	seen     map[string][]watch // hostname -> the watcher's records, oldest first
	service  string
	hold     time.Duration
	ckpt     bool
	args     []string
	inspect  bool
	caseName string
}

type watch struct {
	event, listed time.Time
	avail         string
}

func main() {
	lab := flag.String("lab", "drb", "lab name (swarmckpt lab up --name)")
	n := flag.Int("nodes", 3, "number of lab nodes")
	state := flag.String("state", "/run/swarmckpt-drainbench", "probe runtime's state directory (calls.log, hold)")
	reps := flag.Int("reps", 20, "repetitions")
	grace := flag.Duration("grace", 10*time.Second, "the service's stop_grace_period")
	withNet := flag.Bool("network", true, "attach the service to an overlay network (as every stack service is)")
	hold := flag.Duration("hold", 0, "make the probe runtime hold every non-KILL kill this long")
	ckpt := flag.Bool("ckpt", false, "make the probe runtime checkpoint (runc checkpoint, exit) the container at its first non-KILL kill, then pass the kill on")
	args := flag.String("args", "--interval,100ms,--listen,:8080", "comma-separated arguments of the probe service's image")
	inspect := flag.Bool("inspect-during-hold", true, "during a hold, time a docker inspect of the held container")
	image := flag.String("image", "swarmckpt/counter:dev", "image of the probe service")
	caseName := flag.String("case", "", "case name in the BENCH lines (default: from the flags)")
	flag.Parse()
	if *caseName == "" {
		*caseName = fmt.Sprintf("grace=%s,network=%t,hold=%s,ckpt=%t", *grace, *withNet, *hold, *ckpt)
	}
	ctx := context.Background()
	b := &bench{lab: *lab, state: *state, nodes: map[string]*client.Client{}, ids: map[string]string{},
		seen: map[string][]watch{}, hold: *hold, ckpt: *ckpt, inspect: *inspect, caseName: *caseName, args: strings.Split(*args, ",")}
	if err := b.run(ctx, *n, *reps, *grace, *withNet, *image); err != nil {
		fmt.Fprintln(os.Stderr, "drain bench:", err)
		os.Exit(1)
	}
}

func (b *bench) run(ctx context.Context, n, reps int, grace time.Duration, withNet bool, image string) error {
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%s-%d", b.lab, i)
		c, err := client.NewClientWithOpts(client.WithHost("unix:///run/swarmckpt/"+b.lab+"/"+name+"/docker.sock"), client.WithAPIVersionNegotiation())
		if err != nil {
			return err
		}
		b.nodes[name] = c
	}
	b.manager = b.nodes[b.lab+"-1"]
	list, err := b.manager.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return fmt.Errorf("node list (is lab %s up?): %w", b.lab, err)
	}
	for _, nd := range list {
		b.ids[nd.ID] = nd.Description.Hostname
		if nd.Spec.Availability != swarm.NodeAvailabilityActive {
			if err := b.setAvail(ctx, nd.Description.Hostname, swarm.NodeAvailabilityActive); err != nil {
				return err
			}
		}
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go b.watch(wctx)

	if b.ckpt {
		b.hold = time.Nanosecond // the hold lasts as long as the checkpoint
		if err := os.WriteFile(filepath.Join(b.state, "hold"), []byte("ckpt"), 0o644); err != nil {
			return err
		}
	} else if b.hold > 0 {
		if err := os.WriteFile(filepath.Join(b.state, "hold"), []byte(strconv.FormatFloat(b.hold.Seconds(), 'f', 3, 64)), 0o644); err != nil {
			return err
		}
	}
	defer os.Remove(filepath.Join(b.state, "hold"))

	b.service = "drainprobe"
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: b.service},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: image, Args: b.args, StopGracePeriod: &grace},
			Placement:     &swarm.Placement{MaxReplicas: 1},
		},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: ptr(uint64(2))}},
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}
	if withNet {
		netName := fmt.Sprintf("drainprobe-net-%d", os.Getpid())
		nr, err := b.manager.NetworkCreate(ctx, netName, network.CreateOptions{Driver: "overlay", Attachable: true})
		if err != nil {
			return fmt.Errorf("network create: %w", err)
		}
		defer func() {
			// after the service's containers are gone (the deferred service removal runs first)
			deadline := time.Now().Add(30 * time.Second)
			for b.manager.NetworkRemove(context.Background(), nr.ID) != nil && time.Now().Before(deadline) {
				time.Sleep(300 * time.Millisecond)
			}
		}()
		spec.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: netName}}
	}
	sr, err := b.manager.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{QueryRegistry: false})
	if err != nil {
		return fmt.Errorf("service create: %w", err)
	}
	defer func() {
		_ = os.Remove(filepath.Join(b.state, "hold")) // the removal's stops are not held
		_ = b.manager.ServiceRemove(context.Background(), sr.ID)
		// Wait until its containers are gone on every node (before the hold file goes
		// and the next case writes its own), so that the network can go too.
		deadline := time.Now().Add(grace + b.hold + 30*time.Second)
		for time.Now().Before(deadline) && b.containersLeft(context.Background(), sr.ID) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}()
	if _, err := b.waitRunning(ctx, 2, "", 90*time.Second); err != nil {
		return err
	}

	metrics := map[string][]float64{}
	order := []string{"update_call_ms", "event_ms", "watcher_tasks_ms", "kill_ms", "kill9_ms", "exit_ms", "repl_create_ms", "repl_running_ms", "hold_end_ms", "inspect_ms"}
	for rep := 1; rep <= reps; rep++ {
		line, vals, err := b.rep(ctx, rep, grace)
		if err != nil {
			return fmt.Errorf("rep %d: %w", rep, err)
		}
		fmt.Println(line)
		for k, v := range vals {
			metrics[k] = append(metrics[k], v)
		}
	}
	for _, k := range order {
		v := metrics[k]
		if len(v) == 0 {
			continue
		}
		slices.Sort(v)
		fmt.Printf("BENCH drain-summary case=%s metric=%s n=%d min=%.0f median=%.0f p95=%.0f max=%.0f\n",
			b.caseName, k, len(v), v[0], pct(v, 0.5), pct(v, 0.95), v[len(v)-1])
	}
	return nil
}

func (b *bench) rep(ctx context.Context, rep int, grace time.Duration) (string, map[string]float64, error) {
	running, err := b.waitRunning(ctx, 2, "", 90*time.Second)
	if err != nil {
		return "", nil, err
	}
	slices.SortFunc(running, func(x, y swarm.Task) int { return strings.Compare(b.ids[x.NodeID], b.ids[y.NodeID]) })
	victim := running[rep%len(running)]
	host := b.ids[victim.NodeID]
	cid := victim.Status.ContainerStatus.ContainerID
	logPath := filepath.Join(b.state, "calls.log")
	st, err := os.Stat(logPath)
	if err != nil {
		return "", nil, err
	}
	offset := st.Size()

	nd, _, err := b.manager.NodeInspectWithRaw(ctx, victim.NodeID)
	if err != nil {
		return "", nil, err
	}
	spec := nd.Spec
	spec.Availability = swarm.NodeAvailabilityDrain
	t0 := time.Now()
	if err := b.manager.NodeUpdate(ctx, nd.ID, nd.Version, spec); err != nil {
		return "", nil, err
	}
	t1 := time.Now()
	ms := func(t time.Time) float64 { return float64(t.Sub(t0).Microseconds()) / 1000 }
	vals := map[string]float64{"update_call_ms": ms(t1)}

	// The runtime's calls for the old container, the hold, and an inspect during it.
	var kill, kill9, exit, holdEnd time.Time
	inspectNote, replNote, ckptRC := "", "", ""
	deadline := time.Now().Add(grace + b.hold + 90*time.Second)
	for exit.IsZero() && time.Now().Before(deadline) {
		for _, c := range readCalls(logPath, offset) {
			if !strings.Contains(c.args, cid) {
				continue
			}
			switch {
			case c.cmd == "kill" && strings.HasSuffix(c.args, " 9") && kill9.IsZero():
				kill9 = c.at
			case c.cmd == "kill" && kill.IsZero():
				kill = c.at
			case c.cmd == "hold-end" && holdEnd.IsZero():
				holdEnd = c.at
			case c.cmd == "ckpt-rc" && ckptRC == "":
				ckptRC = strings.Fields(c.args)[0]
			case c.cmd == "delete" && exit.IsZero():
				exit = c.at
			}
		}
		if b.hold > 0 && !kill.IsZero() && holdEnd.IsZero() && replNote == "" {
			// Where is the replacement while the stop is held? (scheduled already?)
			ts, _ := b.manager.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", b.service))})
			for _, t := range ts {
				if t.Slot == victim.Slot && t.ID != victim.ID && t.DesiredState != swarm.TaskStateShutdown {
					replNote = fmt.Sprintf("%s/%s/desired=%s", b.ids[t.NodeID], t.Status.State, t.DesiredState)
				}
			}
			if replNote == "" {
				replNote = "none"
			}
		}
		if b.hold > 0 && b.inspect && !kill.IsZero() && holdEnd.IsZero() && inspectNote == "" {
			ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
			s := time.Now()
			_, ierr := b.nodes[host].ContainerInspect(ictx, cid)
			cancel()
			vals["inspect_ms"] = float64(time.Since(s).Microseconds()) / 1000
			inspectNote = "ok"
			if errors.Is(ierr, context.DeadlineExceeded) || (ierr != nil && strings.Contains(ierr.Error(), "deadline")) {
				inspectNote = "blocked"
			} else if ierr != nil {
				inspectNote = "error:" + strings.ReplaceAll(ierr.Error(), " ", "_")
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if exit.IsZero() {
		return "", nil, fmt.Errorf("container %.12s on %s: no runtime delete within the deadline", cid, host)
	}
	// The replacement on another node.
	running, err = b.waitRunning(ctx, 2, victim.NodeID, 2*time.Minute)
	if err != nil {
		return "", nil, err
	}
	var repl swarm.Task
	for _, t := range running {
		if t.Slot == victim.Slot {
			repl = t
		}
	}
	var replCreate time.Time
	for _, c := range readCalls(logPath, offset) {
		if (c.cmd == "create" || c.cmd == "restore") && strings.Contains(c.args, repl.Status.ContainerStatus.ContainerID) && replCreate.IsZero() {
			replCreate = c.at
		}
	}
	replRunning := repl.Status.Timestamp
	w := b.seenFor(host, t0)

	vals["event_ms"] = ms(w.event)
	vals["watcher_tasks_ms"] = ms(w.listed)
	vals["kill_ms"] = ms(kill)
	vals["exit_ms"] = ms(exit)
	vals["repl_create_ms"] = ms(replCreate)
	vals["repl_running_ms"] = ms(replRunning)
	line := fmt.Sprintf("BENCH drain case=%s rep=%d node=%s update_call_ms=%.0f event_ms=%.0f watcher_tasks_ms=%.0f kill_ms=%.0f",
		b.caseName, rep, host, vals["update_call_ms"], vals["event_ms"], vals["watcher_tasks_ms"], vals["kill_ms"])
	if !kill9.IsZero() {
		vals["kill9_ms"] = ms(kill9)
		line += fmt.Sprintf(" kill9_ms=%.0f", vals["kill9_ms"])
	} else {
		line += " kill9_ms=-"
	}
	line += fmt.Sprintf(" exit_ms=%.0f repl_create_ms=%.0f repl_running_ms=%.0f", vals["exit_ms"], vals["repl_create_ms"], vals["repl_running_ms"])
	if b.hold > 0 {
		vals["hold_end_ms"] = ms(holdEnd)
		line += fmt.Sprintf(" hold_s=%.1f hold_end_ms=%.0f inspect_during_hold=%s inspect_ms=%.0f repl_during_hold=%s", b.hold.Seconds(), vals["hold_end_ms"], inspectNote, vals["inspect_ms"], replNote)
	}
	if b.ckpt {
		line += " ckpt_rc=" + ckptRC
	}
	if replCreate.IsZero() || kill.IsZero() || w.event.IsZero() {
		return "", nil, fmt.Errorf("incomplete record: %s", line)
	}
	if err := b.setAvail(ctx, host, swarm.NodeAvailabilityActive); err != nil {
		return "", nil, err
	}
	return line, vals, nil
}

// watch is the design-B watcher: the manager's node events; on each, it lists the
// node's tasks (what it must know before it can migrate them).
func (b *bench) watch(ctx context.Context) {
	msgs, errs := b.manager.Events(ctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", "node"))})
	for {
		select {
		case m := <-msgs:
			at := time.Now()
			host := b.ids[m.Actor.ID]
			if m.Action != events.ActionUpdate || host == "" {
				continue
			}
			_, _ = b.manager.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("node", m.Actor.ID))})
			b.mu.Lock()
			b.seen[host] = append(b.seen[host], watch{event: at, listed: time.Now(), avail: m.Actor.Attributes["availability.new"]})
			b.mu.Unlock()
		case err := <-errs:
			if ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "drain bench: event stream:", err)
			}
			return
		}
	}
}

// seenFor is the watcher's first record of host after the given time.
func (b *bench) seenFor(host string, after time.Time) watch {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		ws := b.seen[host]
		b.mu.Unlock()
		for _, w := range ws {
			if w.event.After(after) {
				return w
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return watch{}
}

func (b *bench) setAvail(ctx context.Context, host string, a swarm.NodeAvailability) error {
	for id, h := range b.ids {
		if h != host {
			continue
		}
		nd, _, err := b.manager.NodeInspectWithRaw(ctx, id)
		if err != nil {
			return err
		}
		spec := nd.Spec
		spec.Availability = a
		return b.manager.NodeUpdate(ctx, id, nd.Version, spec)
	}
	return fmt.Errorf("no node %s", host)
}

// containersLeft counts the containers of service id on all nodes.
func (b *bench) containersLeft(ctx context.Context, id string) int {
	n := 0
	for _, c := range b.nodes {
		cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.id="+id))})
		if err != nil {
			return 1
		}
		n += len(cs)
	}
	return n
}

func (b *bench) tasks(ctx context.Context) ([]swarm.Task, error) {
	return b.manager.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", b.service), filters.Arg("desired-state", "running"))})
}

// waitRunning waits until want tasks of the service run, none on notNode.
func (b *bench) waitRunning(ctx context.Context, want int, notNode string, limit time.Duration) ([]swarm.Task, error) {
	deadline := time.Now().Add(limit)
	for {
		ts, err := b.tasks(ctx)
		if err != nil {
			return nil, err
		}
		var run []swarm.Task
		for _, t := range ts {
			if t.Status.State == swarm.TaskStateRunning && t.NodeID != notNode && t.Status.ContainerStatus != nil {
				run = append(run, t)
			}
		}
		if len(run) == want {
			return run, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("service %s: %d of %d tasks running after %s", b.service, len(run), want, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type call struct {
	at        time.Time
	cmd, args string
}

// readCalls parses the probe runtime's log from offset: "<time> <pid> <cmd> <args>".
func readCalls(path string, offset int64) []call {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		return nil
	}
	var out []call
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) < 4 {
			continue
		}
		sec, err := strconv.ParseFloat(parts[0], 64)
		if err != nil {
			continue
		}
		whole, frac := math.Modf(sec)
		out = append(out, call{at: time.Unix(int64(whole), int64(frac*1e9)), cmd: parts[2], args: parts[3]})
	}
	return out
}

func pct(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ptr[T any](v T) *T { return &v }
