package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dcontainer "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/netlock"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
)

// LabelRestoredFrom is set on restored containers: the source container ID.
const LabelRestoredFrom = "io.swarmckpt.restored-from"

// LabelSet is set on a restored container: the ID of the image set it was restored
// from, so that a repeated restore of that set into that name (a request whose answer
// was lost) can tell the container already there is its own (worker.Worker.Restore).
const LabelSet = "io.swarmckpt.set"

// LabelService is set on a restored swarm task's container: its service name (swarm's
// own labels are dropped, or swarm would think it owns the standalone container).
const LabelService = "io.swarmckpt.service"

// Docker is the real Restorer.
type Docker struct {
	Cli *client.Client
	// DataRoot is the node's Docker data-root (docker info DockerRootDir).
	DataRoot string
	Log      *slog.Logger
	// LazyArgs are extra options for post-copy's `criu lazy-pages` (TLS: dump.TLS.Args).
	LazyArgs []string

	keep keepers // network keepers shared by concurrent restores (keeper.go)
	want wanted  // addresses the running restores take: no keeper keeps one
}

var _ Restorer = (*Docker)(nil)

// Area returns <data-root>/swarmckpt/restore.
func (d *Docker) Area() string { return filepath.Join(d.DataRoot, ociwrap.AreaDir, ociwrap.RestoreDir) }

// Restore implements Restorer.
func (d *Docker) Restore(ctx context.Context, v imageset.Verified, opts Options) (ref container.Ref, err error) {
	if !v.Valid() {
		return ref, ErrUnverified
	}
	m := v.Manifest()
	spec := m.Spec
	name := opts.Name
	if name == "" {
		name = spec.Name
	}
	what := fmt.Sprintf("restore of container %s (was %.12s) from %s", name, m.ContainerID, v.Dir())
	addrs := map[string]string{}
	for _, n := range spec.Networks {
		if pinnable(n.Name) {
			addrs[n.Name] = n.IPv4
		}
	}
	defer d.want.add(addrs)()
	t0 := time.Now()
	if err := d.precheck(ctx, spec, name); err != nil {
		return ref, fmt.Errorf("%s: %w", what, err)
	}
	var took phaseTimes
	took.precheck = time.Since(t0)
	tHold := time.Now()
	release := d.holdNetworks(ctx, spec, name)
	// A keeper (this restore's, or any on this node) may have been given one of the
	// addresses this container takes: one freed by a container stopped or removed
	// meanwhile (fault seed 1234). It is replaced before the create.
	d.freeFromKeepers(ctx, spec, name)
	took.hold = time.Since(tHold)
	defer func() {
		release()
		d.keep.endPrepared(name, nil) // Prepare's hold, if it made one, ends with the restore
	}()
	var id, placed string
	for attempt := 1; ; attempt++ {
		var retry bool
		id, placed, retry, err = d.attempt(ctx, v, spec, name, opts, &took)
		if err == nil {
			break
		}
		if !retry || attempt >= maxAttempts || ctx.Err() != nil {
			return ref, fmt.Errorf("%s: %w", what, err)
		}
		// A keeper started meanwhile may hold the address: replaced. A container of
		// this node that is no keeper holding it is not waited for (each attempt
		// would wait out the manager's 20 s again): refused at once.
		d.freeFromKeepers(ctx, spec, name)
		if cerr := d.checkAddresses(ctx, spec); cerr != nil {
			return ref, fmt.Errorf("%s: %w (after: %w)", what, cerr, err)
		}
		// The runtime never ran and everything was rolled back: a network that vanished
		// from this node between create and start (a swarm worker drops an attachable
		// overlay when its last task leaves) is looked up again by name.
		if d.Log != nil {
			d.Log.Warn("network attachment failed before the runtime ran; creating the container again", "container", name, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return ref, fmt.Errorf("%s: %w", what, err)
		case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
		}
	}
	tStarted := time.Now()
	defer func() {
		if err == nil {
			return
		}
		rmErr := d.Cli.ContainerRemove(context.WithoutCancel(ctx), id, dcontainer.RemoveOptions{Force: true})
		var mvErr error
		if _, serr := os.Stat(placed); serr == nil {
			_ = os.Remove(filepath.Join(placed, ociwrap.LockFile))
			_ = os.Remove(filepath.Join(placed, ociwrap.RootfsAppliedFile))
			mvErr = unplace(v, placed, opts.Keep)
		}
		err = errors.Join(err, rmErr, mvErr)
	}()
	if _, serr := os.Stat(placed); serr == nil {
		// Started, but not by the wrapper: a fresh start instead of a restore.
		return ref, fmt.Errorf("%s: %w: container started fresh without consuming %s; the node's runtime is not swarmckpt-runtime (use Options.Runtime)", what, ErrRestore, placed)
	}
	ci, err := d.Cli.ContainerInspect(ctx, id)
	if err != nil || ci.State == nil || !ci.State.Running {
		return ref, fmt.Errorf("%s: not running after restore: %w", what, err)
	}
	// The consumed set (moved by the wrapper) is no longer needed: the snapshot's
	// durable copy lives elsewhere (with Options.Keep this was a hard-linked copy of it:
	// removing it removes links). Remove it so restores do not fill the disk — in the
	// background: the container already runs, and deleting 1 GiB of images takes ~0.5 s
	// (CollectRestored catches what a worker exiting meanwhile leaves).
	var criu criuTimes
	if done, _ := filepath.Glob(filepath.Join(filepath.Dir(d.Area()), ociwrap.RestoredDir, ociwrap.ForContainer(id)+".*")); len(done) > 0 {
		if f, err := os.Open(filepath.Join(done[0], "work", "restore.log")); err == nil {
			criu, _ = readCRIUTimes(f)
			f.Close()
		}
		go func() {
			for _, p := range done {
				_ = os.RemoveAll(p)
			}
		}()
	}
	if d.Log != nil {
		d.Log.Info("container restored", "container", name, "id", id, "from", m.ContainerID,
			"check_create_start_s", tStarted.Sub(t0).Seconds(), "precheck_s", took.precheck.Seconds(),
			"keeper_wait_s", took.hold.Seconds(), "create_s", took.create.Seconds(), "setup_s", took.setup.Seconds(), "start_s", took.start.Seconds(),
			"criu_restore_s", criu.Total.Seconds(), "criu_pages_s", criu.Pages.Seconds(), "criu_hooks_s", criu.Hooks.Seconds(), "locked", opts.NetworkLock)
	}
	return container.Ref{ID: id, Name: name, Pid: ci.State.Pid}, nil
}

// phaseTimes are the durations of a restore's steps, logged with its outcome: hold is
// the wait for the network keepers (none when Prepare started them early enough),
// setup the steps between docker create and docker start (further networks, the set
// placed, rootfs changes, the lock script, post-copy's lazy-pages daemon).
type phaseTimes struct{ precheck, hold, create, setup, start time.Duration }

// maxAttempts bounds create+start attempts that failed before the runtime ran.
const maxAttempts = 4

// attempt creates the container, places the set for it and starts it. On error
// everything is rolled back (container removed, set back at v.Dir()); retry tells
// whether the failure happened before the runtime ran for a reason a new attempt may
// not meet (the network attachment).
func (d *Docker) attempt(ctx context.Context, v imageset.Verified, spec container.Spec, name string, opts Options, took *phaseTimes) (id, placed string, retry bool, err error) {
	m := v.Manifest()
	cfg, hc, nc := d.config(spec, m.ContainerID, opts)
	cfg.Labels[LabelSet] = filepath.Base(v.Dir())
	t := time.Now()
	created, err := d.Cli.ContainerCreate(ctx, cfg, hc, nc, nil, name)
	took.create = time.Since(t)
	if err != nil {
		return "", "", netGone(err), fmt.Errorf("docker create: %w", err)
	}
	id = created.ID
	placed = filepath.Join(d.Area(), ociwrap.ForContainer(id))
	consumed := false
	defer func() {
		if err == nil {
			return
		}
		// Roll back: no half-restored container, the set back where it was.
		rctx := context.WithoutCancel(ctx)
		rmErr := d.Cli.ContainerRemove(rctx, id, dcontainer.RemoveOptions{Force: true})
		var mvErr error
		if _, serr := os.Stat(placed); serr == nil {
			err = keepFailedLog(err, placed, v.Dir(), id) // before the set goes back
			_ = os.Remove(filepath.Join(placed, ociwrap.ErrorFile))
			_ = os.Remove(filepath.Join(placed, ociwrap.LockFile))
			_ = os.Remove(filepath.Join(placed, ociwrap.RootfsAppliedFile)) // it went with the container
			mvErr = unplace(v, placed, opts.Keep)
		}
		retry = retry && !consumed && mvErr == nil
		err = errors.Join(err, rmErr, mvErr)
	}()
	if opts.Created != nil {
		if err := opts.Created(container.Ref{ID: id, Name: name}); err != nil {
			return id, placed, false, err
		}
	}
	for _, n := range spec.Networks[min(1, len(spec.Networks)):] {
		if err := d.Cli.NetworkConnect(ctx, n.Name, id, endpoint(n, spec, opts.Aliases[n.Name])); err != nil {
			return id, placed, netGone(err), fmt.Errorf("connect to network %s: %w", n.Name, err)
		}
	}
	if err := os.MkdirAll(d.Area(), imageset.DirMode); err != nil {
		return id, placed, false, err
	}
	if err := place(v, placed, opts.Keep); err != nil {
		return id, placed, false, fmt.Errorf("place set (the set must be on the data-root's filesystem): %w", err)
	}
	if err := d.applyRootfs(ctx, v, id, placed); err != nil {
		return id, placed, false, err
	}
	if opts.NetworkLock {
		// The runtime installs this nft script in the container's network namespace
		// before CRIU restores its sockets (ociwrap.LockFile).
		script := netlock.Script(netlock.State{All: true})
		if err := os.WriteFile(filepath.Join(placed, ociwrap.LockFile), []byte(script), imageset.FileMode); err != nil {
			return id, placed, false, err
		}
	}
	if m.LazyPages != "" {
		daemon, derr := startLazyDaemon(placed, m.LazyPages, d.LazyArgs)
		if derr != nil {
			return id, placed, false, derr
		}
		defer func() {
			if err != nil {
				_ = daemon.Process.Kill()
			}
		}()
	}
	took.setup = time.Since(t) - took.create
	t = time.Now()
	err = d.Cli.ContainerStart(ctx, id, dcontainer.StartOptions{})
	took.start = time.Since(t)
	if err == nil {
		return id, placed, false, nil
	}
	if b, rerr := os.ReadFile(filepath.Join(placed, ociwrap.ErrorFile)); rerr == nil {
		return id, placed, false, fmt.Errorf("%w: %s", ErrRestore, strings.TrimSpace(string(b)))
	}
	if _, serr := os.Stat(placed); serr == nil {
		return id, placed, netGone(err), fmt.Errorf("%w: docker start failed and the runtime did not consume the set (it failed before the runtime ran, or the runtime is not swarmckpt-runtime): %w", ErrRestore, err)
	}
	// Restored, then the processes exited at once: say what they printed.
	consumed = true
	return id, placed, false, fmt.Errorf("%w: the restored processes exited right away (%w); last output: %s", ErrRestore, err, d.logTail(context.WithoutCancel(ctx), id))
}

// place puts set v where the runtime wrapper finds it for the container: the set
// itself, or with keep a hard-linked copy of it (the set stays; nothing rewrites an
// image in place: CRIU's restore only reads them and writes its log and stats as new
// files, TaskOptions.Keep relies on the same).
// A pre-copy set's chain of pre-dumps is linked where it is placed (the set itself
// holds regular files only: imageset.LinkParents).
func place(v imageset.Verified, placed string, keep bool) error {
	if !keep {
		if err := os.Rename(v.Dir(), placed); err != nil {
			return err
		}
	} else if err := linkTree(v.Dir(), placed); err != nil {
		return errors.Join(err, os.RemoveAll(placed))
	}
	if n := v.Manifest().PreDumps; n > 0 {
		if err := imageset.LinkParents(imageset.ImagesPath(placed), n); err != nil {
			return errors.Join(err, unplace(v, placed, keep))
		}
	}
	return nil
}

// unplace undoes place after a failed restore: the set goes back (its pre-dump
// chain unlinked again), or its copy goes.
func unplace(v imageset.Verified, placed string, keep bool) error {
	if keep {
		return os.RemoveAll(placed)
	}
	if n := v.Manifest().PreDumps; n > 0 {
		if err := imageset.UnlinkParents(imageset.ImagesPath(placed), n); err != nil {
			return err
		}
	}
	return os.Rename(placed, v.Dir())
}

// netGone tells whether a Docker error is a network attachment failing on this node
// (network unknown here, or its attachment timing out): worth a new create and start.
func netGone(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "attaching to network failed") ||
		(strings.Contains(s, "network ") && strings.Contains(s, "not found"))
}

// precheck refuses early what docker start would refuse late.
func (d *Docker) precheck(ctx context.Context, spec container.Spec, name string) error {
	if _, err := d.Cli.ImageInspect(ctx, spec.Image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("%w: %s (load it on the target node: docker save %s | docker -H <node> load)", ErrNoImage, spec.Image, spec.Image)
		}
		return fmt.Errorf("inspect image %s: %w", spec.Image, err)
	}
	if _, err := d.Cli.ContainerInspect(ctx, name); err == nil {
		return fmt.Errorf("%w: %s (remove it first)", ErrNameTaken, name)
	}
	return d.checkAddresses(ctx, spec)
}

// checkAddresses refuses an address of spec that a container on this node holds, but
// a network keeper (freeFromKeepers gives those up).
func (d *Docker) checkAddresses(ctx context.Context, spec container.Spec) error {
	for _, n := range spec.Networks {
		if n.IPv4 == "" || !pinnable(n.Name) {
			continue
		}
		ni, err := d.Cli.NetworkInspect(ctx, n.Name, network.InspectOptions{})
		if cerrdefs.IsNotFound(err) {
			// A swarm worker learns attachable overlays only when a container joins
			// them: docker create decides (and names the network if it is missing).
			continue
		}
		if err != nil {
			return fmt.Errorf("network %s on this node: %w", n.Name, err)
		}
		for cid, ep := range ni.Containers {
			if strings.HasPrefix(ep.IPv4Address, n.IPv4+"/") && !isKeeper(ep.Name) {
				return fmt.Errorf("%w: %s on network %s is held by %s (%.12s)", ErrIPTaken, n.IPv4, n.Name, ep.Name, cid)
			}
		}
	}
	return nil
}

// Connect puts container id back on network n.Name with its address and aliases
// there (docker network connect --ip --alias): the rollback of a held post-copy
// source that Disconnect took off it.
func (d *Docker) Connect(ctx context.Context, id string, n container.Network) error {
	if err := d.Cli.NetworkConnect(ctx, n.Name, id, endpoint(n, container.Spec{}, nil)); err != nil {
		return fmt.Errorf("connect %.12s to network %s (address %q): %w", id, n.Name, n.IPv4, err)
	}
	return nil
}

// pinnable: Docker accepts --ip only on user-defined networks.
func pinnable(net string) bool { return net != "bridge" && net != "host" && net != "none" }

func endpoint(n container.Network, spec container.Spec, extra []string) *network.EndpointSettings {
	es := &network.EndpointSettings{Aliases: slices.Clone(n.Aliases)}
	for _, a := range extra {
		if !slices.Contains(es.Aliases, a) {
			es.Aliases = append(es.Aliases, a)
		}
	}
	if pinnable(n.Name) && (n.IPv4 != "" || n.IPv6 != "") {
		es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: n.IPv4, IPv6Address: n.IPv6}
	}
	if spec.Service != "" && pinnable(n.Name) {
		for _, a := range serviceAliases(spec.Service, extra) {
			if !slices.Contains(es.Aliases, a) {
				es.Aliases = append(es.Aliases, a)
			}
		}
	}
	return es
}

// tasksPrefix: swarm's DNS answers tasks.<service> and tasks.<service alias> with the
// address of every task of the service, whatever its endpoint mode (the names
// clients use to find all tasks, e.g. cluster peers).
const tasksPrefix = "tasks."

// serviceAliases are the names swarm's DNS answers with a task's address that a
// container standing in for the task must carry as network aliases: the service's
// name and tasks.<name>, and tasks.<alias> for each of the task's service aliases
// (extra: the compose short name such as holder; the bare ones are added as given).
// Without the tasks.* ones, after a partial migration tasks.<name> answers only the
// staying tasks, and after a whole-stack exact restore (the service at 0 replicas)
// not at all: the embedded DNS forwards the query, which times out on a network
// without an outside resolver (seen on the lab, docs/restore.md "Aliases").
// Aliases already starting with tasks. (a restored container restored again brings
// its own) get no second prefix.
func serviceAliases(service string, extra []string) []string {
	out := []string{service}
	for _, a := range append([]string{service}, extra...) {
		if a != "" && !strings.HasPrefix(a, tasksPrefix) && !slices.Contains(out, tasksPrefix+a) {
			out = append(out, tasksPrefix+a)
		}
	}
	return out
}

func (d *Docker) config(spec container.Spec, from string, opts Options) (*dcontainer.Config, *dcontainer.HostConfig, *network.NetworkingConfig) {
	labels := map[string]string{}
	for k, v := range spec.Labels {
		// Swarm's own labels would make swarm think it owns this standalone container.
		if !strings.HasPrefix(k, "com.docker.swarm.") {
			labels[k] = v
		}
	}
	labels[LabelRestoredFrom] = from
	if spec.Service != "" {
		labels[LabelService] = spec.Service
	}
	// Every recorded setting (command, env, mounts, init, ports, limits, capabilities,
	// ulimits, sysctls, ...): the restored processes find the container they left.
	cfg, hc := spec.CreateConfig()
	cfg.Labels = labels
	hc.Runtime = opts.Runtime
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{}}
	if len(spec.Networks) > 0 {
		n := spec.Networks[0]
		hc.NetworkMode = dcontainer.NetworkMode(n.Name)
		nc.EndpointsConfig[n.Name] = endpoint(n, spec, opts.Aliases[n.Name])
	}
	return cfg, hc, nc
}

// PlaceForTask moves v into the restore area as the images of the next task of swarm
// service slot, for the replacement task swarm starts on this node. It returns the
// placed set; the runtime wrapper consumes it.
func (d *Docker) PlaceForTask(v imageset.Verified, service string, slot int) (imageset.Verified, error) {
	if !v.Valid() {
		return v, ErrUnverified
	}
	if err := os.MkdirAll(d.Area(), imageset.DirMode); err != nil {
		return v, fmt.Errorf("restore: place %s: %w", v, err)
	}
	dst := filepath.Join(d.Area(), ociwrap.ForTask(service, slot))
	if err := os.Rename(v.Dir(), dst); err != nil {
		return v, fmt.Errorf("restore: place %s for %s slot %d: %w", v, service, slot, err)
	}
	return v.Moved(dst), nil
}

// startLazyDaemon starts `criu lazy-pages` for a post-copy restore of the set placed at
// dir: it fetches pages from the source's page server at hostport and serves the
// restored processes' page faults; CRIU's restore finds it through the socket in
// dir/work. It runs in the worker's (host) network namespace, so the source's page
// server on loopback is reachable, and exits when every page was transferred.
func startLazyDaemon(dir, hostport string, extra []string) (*exec.Cmd, error) {
	host, port, ok := strings.Cut(hostport, ":")
	if !ok {
		return nil, fmt.Errorf("%w: bad page server address %q", ErrRestore, hostport)
	}
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, imageset.DirMode); err != nil {
		return nil, err
	}
	cmd := exec.Command("criu", append([]string{"lazy-pages", "--page-server", "--address", host, "--port", port,
		"--images-dir", filepath.Join(dir, "images"), "--work-dir", work, "-v4", "-o", "lazy-pages.log"}, extra...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: start criu lazy-pages: %w", ErrRestore, err)
	}
	go func() { _ = cmd.Wait() }()
	sock := filepath.Join(work, "lazy-pages.socket")
	for i := 0; i < 400; i++ {
		if _, err := os.Stat(sock); err == nil {
			if err := os.WriteFile(filepath.Join(dir, ociwrap.LazyFile), []byte(hostport+"\n"), imageset.FileMode); err != nil {
				_ = cmd.Process.Kill()
				return nil, err
			}
			return cmd, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return nil, fmt.Errorf("%w: criu lazy-pages did not listen on %s within 2 s (log %s)", ErrRestore, sock, filepath.Join(work, "lazy-pages.log"))
}

func (d *Docker) logTail(ctx context.Context, id string) string {
	rc, err := d.Cli.ContainerLogs(ctx, id, dcontainer.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "5"})
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 4096))
	// Strip the 8-byte stream headers of multiplexed logs.
	var out []string
	for len(b) >= 8 {
		n := int(b[4])<<24 | int(b[5])<<16 | int(b[6])<<8 | int(b[7])
		if 8+n > len(b) {
			break
		}
		out = append(out, strings.TrimSpace(string(b[8:8+n])))
		b = b[8+n:]
	}
	return strings.Join(out, " | ")
}

// CollectRestored removes consumed sets (left by the runtime wrapper for swarm tasks in
// <data-root>/swarmckpt/restored) older than age. It returns how many it removed.
func (d *Docker) CollectRestored(age time.Duration) (int, error) {
	dir := filepath.Join(filepath.Dir(d.Area()), ociwrap.RestoredDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("restore: collect %s: %w", dir, err)
	}
	n := 0
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < age {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err == nil {
			n++
		}
	}
	return n, nil
}

// Remove implements Restorer.
func (d *Docker) Remove(ctx context.Context, c string) error {
	err := d.Cli.ContainerRemove(ctx, c, dcontainer.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("restore: remove container %s: %w", c, err)
	}
	return nil
}

// Disconnect takes container id off network (docker network disconnect -f): a held
// post-copy source gives up its address while it serves its pages.
func (d *Docker) Disconnect(ctx context.Context, id, network string) error {
	if err := d.Cli.NetworkDisconnect(ctx, network, id, true); err != nil {
		return fmt.Errorf("disconnect %.12s from network %s: %w", id, network, err)
	}
	return nil
}
