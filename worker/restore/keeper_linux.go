package restore

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dcontainer "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
)

const (
	// keeperLife bounds a keeper's life when nobody removes it (the worker was killed,
	// or a prepared restore never came): its process exits and Docker removes the
	// container (AutoRemove).
	keeperLife = 5 * time.Minute
	// preparedLife is how long Prepare's hold on a keeper lasts when neither a restore
	// of the container nor a release (Unprepare) ends it: the coordinator that
	// prepared it was killed, or its operation was refused (a partial migration's
	// sources hold theirs for the whole migration, seconds to a minute here).
	preparedLife = 4 * time.Minute
	// keeperBin is where the runtime binary is mounted in a keeper container.
	keeperBin = "/.swarmckpt-hold"
)

// Prepare starts, in the background, the keepers of the swarm networks the containers
// of c restored on this node will join with their addresses, before the stack is
// stopped: the node then keeps those networks through the stop, and the restore finds
// its keepers running (they cost ~2.5 s each to start here, on the restore's path
// otherwise). The restore of each container, a release (Unprepare), or preparedLife
// ends the hold. The returned channel is closed once every keeper Prepare started runs
// (or could not be started): a caller that waits for it before freezing anything keeps
// their start off the downtime. A partial migration also prepares the nodes its
// containers leave (their names as restored there): a rollback's put-back then finds
// their networks kept.
func (d *Docker) Prepare(ctx context.Context, c Check) (ready <-chan struct{}) {
	// Every address of the operation (all its containers', on any node) is given up
	// by this node's keepers first, and none started for wantedLife may keep one: a
	// keeper here holding the address of a container restored on another node would
	// hold it against that restore (seen on the lab: 4 x 20 s, then undone).
	d.freeAddresses(ctx, c.Addresses)
	d.wantFor(c.Addresses, wantedLife)
	var wg sync.WaitGroup
	for _, cc := range c.Containers {
		var nets []string
		for _, a := range c.Addresses {
			if a.Key == cc.Key {
				for _, n := range a.Networks {
					if !slices.Contains(nets, n) {
						nets = append(nets, n)
					}
				}
			}
		}
		if len(nets) == 0 || cc.Image == "" {
			continue
		}
		// Registered before its keepers start: a release (Unprepare) or restore that
		// ends it meanwhile releases them as soon as they run.
		h := d.keep.prepare(cc.Name, preparedLife)
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		wg.Add(1)
		go func() {
			defer cancel()
			defer wg.Done()
			h.set(d.holdNets(bg, cc.Image, nets, cc.Name))
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// Unprepare ends, at once, Prepare's holds on the keepers of the containers of c (by
// name): the operation that prepared them is over (a partial migration committed or
// rolled back). A keeper no restore holds either stops. A name without a hold is
// skipped.
func (d *Docker) Unprepare(_ context.Context, c Check) {
	var ended []string
	for _, cc := range c.Containers {
		if d.keep.endPrepared(cc.Name, nil) {
			ended = append(ended, cc.Name)
		}
	}
	if d.Log != nil && len(ended) > 0 {
		d.Log.Info("prepared network keepers released", "containers", ended)
	}
}

// holdNetworks starts (or shares) a keeper container on every swarm network the
// restored container joins with a fixed address, and returns the release of all of
// them. A keeper that cannot be started is logged and the restore goes on without it.
func (d *Docker) holdNetworks(ctx context.Context, spec container.Spec, name string) (release func()) {
	var nets []string
	for _, n := range spec.Networks {
		if n.IPv4 != "" {
			nets = append(nets, n.Name)
		}
	}
	return d.holdNets(ctx, spec.Image, nets, name)
}

// holdNets holds a keeper on each of nets that is a swarm network (see holdNetworks;
// bridge, host and none are never one).
func (d *Docker) holdNets(ctx context.Context, image string, nets []string, name string) (release func()) {
	var releases []func()
	for _, netName := range nets {
		if !pinnable(netName) {
			continue
		}
		ni, err := d.Cli.NetworkInspect(ctx, netName, network.InspectOptions{})
		if err == nil && ni.Scope != "swarm" || err != nil && !cerrdefs.IsNotFound(err) {
			// A local network is never removed under us; not found on this node is a
			// swarm network a worker node learns when a container joins it.
			continue
		}
		t0 := time.Now()
		releases = append(releases, d.keep.hold(ctx, netName, func() (string, error) {
			id, err := d.startKeeper(ctx, netName, image)
			if d.Log != nil {
				if err != nil {
					d.Log.Warn("no network keeper: restoring without one", "container", name, "network", netName, "err", err)
				} else {
					d.Log.Info("network keeper started", "container", name, "network", netName, "keeper", id[:12], "seconds", time.Since(t0).Seconds())
				}
			}
			return id, err
		}, func(id string) {
			go func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				_ = d.Cli.ContainerRemove(rctx, id, dcontainer.RemoveOptions{Force: true})
			}()
		}))
	}
	return func() {
		for _, r := range releases {
			r()
		}
	}
}

// keeperPrefix begins the name of every network keeper container (startKeeper).
const keeperPrefix = "swarmckpt-keep-"

// isKeeper tells a network keeper's container by its name.
func isKeeper(name string) bool {
	return strings.HasPrefix(strings.TrimPrefix(name, "/"), keeperPrefix)
}

// wantedLife is how long Prepare's addresses count as wanted (wanted): its restore,
// or its put-back, comes within it.
const wantedLife = 2 * time.Minute

// wantFor has addrs count as wanted for d (keepers started meanwhile do not keep one).
func (d *Docker) wantFor(addrs []CheckAddress, dur time.Duration) {
	for _, a := range addrs {
		nets := a.Networks
		if len(nets) == 0 {
			nets = []string{""}
		}
		m := map[string]string{}
		for _, n := range nets {
			m[n] = a.IP
		}
		time.AfterFunc(dur, d.want.add(m))
	}
}

// freeAddresses has this node's keepers give up every address of addrs (each on its
// networks, or on any network when none is said): freeFromKeepers for the
// containers of another node, or of the operation as a whole.
func (d *Docker) freeAddresses(ctx context.Context, addrs []CheckAddress) {
	if len(addrs) == 0 {
		return
	}
	list, err := d.Cli.ContainerList(ctx, dcontainer.ListOptions{})
	if err != nil {
		return
	}
	for _, h := range list {
		if h.Labels[LabelKeeper] == "" || h.NetworkSettings == nil {
			continue
		}
		for netName, es := range h.NetworkSettings.Networks {
			for _, a := range addrs {
				if es == nil || es.IPAddress != a.IP || len(a.Networks) > 0 && !slices.Contains(a.Networks, netName) {
					continue
				}
				image := h.Image
				d.evictKeeper(ctx, netName, h.ID, strings.TrimPrefix(firstName(h.Names), "/"), image, a.IP, "")
			}
		}
	}
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

// freeFromKeepers gives up every address of spec (its fixed IPv4 addresses) that a
// network keeper on this node holds. A keeper has no fixed address: the manager gives
// it any free one, and one started after a container's stop or removal (a put-back
// after a rollback's removal, a restore whose keepers started late, a keeper left by
// an earlier attempt) can be given that container's exact address; the restore's
// create then waits out the manager's 20 s on every attempt ("attaching to network
// failed"; the manager: "Address already in use"), for as long as the keeper lives
// (fault seed 1234). This node's keeper of the network is replaced first (a new one
// started while the old still runs, so the network stays and the new one gets
// another address), then the old one removed; a keeper no restore here holds (left
// by an earlier worker process) is removed. Best effort: logged.
func (d *Docker) freeFromKeepers(ctx context.Context, spec container.Spec, name string) {
	for _, n := range spec.Networks {
		if n.IPv4 == "" || !pinnable(n.Name) {
			continue
		}
		ni, err := d.Cli.NetworkInspect(ctx, n.Name, network.InspectOptions{})
		if err != nil {
			continue
		}
		for cid, ep := range ni.Containers {
			if !strings.HasPrefix(ep.IPv4Address, n.IPv4+"/") || !isKeeper(ep.Name) {
				continue
			}
			d.evictKeeper(ctx, n.Name, cid, ep.Name, spec.Image, n.IPv4, name)
		}
	}
}

// evictKeeper replaces keeper cid (name) of network netName, which holds address ip
// a restore takes (of container restored, when on this node): this node's keeper of
// the network is replaced by a new one (image), then cid is removed.
func (d *Docker) evictKeeper(ctx context.Context, netName, cid, name, image, ip, restored string) {
	rerr := d.keep.replace(netName, cid, func() (string, error) { return d.startKeeper(ctx, netName, image) })
	err := d.Cli.ContainerRemove(context.WithoutCancel(ctx), cid, dcontainer.RemoveOptions{Force: true})
	if err != nil && cerrdefs.IsNotFound(err) {
		err = nil
	}
	if d.Log != nil {
		d.Log.Warn("network keeper held an address a restore takes: replaced", "container", restored,
			"network", netName, "address", ip, "keeper", name, "id", cid[:min(12, len(cid))], "err", errors.Join(rerr, err))
	}
}

// startKeeper runs a keeper container on network: the restored container's image (it
// is on this node) running only the node runtime's own static binary in its hold mode
// (ociwrap.HoldArg), with a dynamic address. A start failing on the network attachment
// (the race the keeper is for) is tried again with a new container: its leaked
// attachment holds a dynamic address nobody restores.
func (d *Docker) startKeeper(ctx context.Context, netName, image string) (string, error) {
	bin, err := d.holdBinary(ctx)
	if err != nil {
		return "", err
	}
	cfg := &dcontainer.Config{
		Image:      image,
		Entrypoint: []string{keeperBin},
		Cmd:        []string{ociwrap.HoldArg, keeperLife.String()},
		Labels:     map[string]string{LabelKeeper: netName},
	}
	hc := &dcontainer.HostConfig{
		AutoRemove:  true,
		NetworkMode: dcontainer.NetworkMode(netName),
		Binds:       []string{bin + ":" + keeperBin + ":ro"},
	}
	// Keepers given an address a restore here takes (wanted): kept running until one
	// that is not runs (so that the next cannot be given the same address), then
	// removed; after wantedTries the last one is kept (freeFromKeepers replaces it).
	var wrong []string
	defer func() {
		for _, id := range wrong {
			_ = d.Cli.ContainerRemove(context.WithoutCancel(ctx), id, dcontainer.RemoveOptions{Force: true})
		}
	}()
	for attempt := 1; ; attempt++ {
		suffix := make([]byte, 4)
		_, _ = rand.Read(suffix)
		c, err := d.Cli.ContainerCreate(ctx, cfg, hc, nil, nil, keeperPrefix+netName+"-"+hex.EncodeToString(suffix))
		if err != nil {
			return "", fmt.Errorf("create network keeper: %w", err)
		}
		err = d.Cli.ContainerStart(ctx, c.ID, dcontainer.StartOptions{})
		if err == nil {
			ip := d.addressOn(ctx, c.ID, netName)
			if d.want.has(netName, ip) && len(wrong) < wantedTries-1 && ctx.Err() == nil {
				if d.Log != nil {
					d.Log.Warn("network keeper was given an address a restore here takes: starting another", "network", netName, "address", ip, "keeper", c.ID[:12])
				}
				wrong = append(wrong, c.ID)
				attempt--
				continue
			}
			return c.ID, nil
		}
		_ = d.Cli.ContainerRemove(context.WithoutCancel(ctx), c.ID, dcontainer.RemoveOptions{Force: true})
		if !netGone(err) || attempt >= 3 || ctx.Err() != nil {
			return "", fmt.Errorf("start network keeper: %w", err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
		}
	}
}

// wantedTries bounds the keepers startKeeper starts to get one without an address a
// restore on the node takes.
const wantedTries = 3

// addressOn returns container id's IPv4 address on network netName ("" if unknown).
func (d *Docker) addressOn(ctx context.Context, id, netName string) string {
	ci, err := d.Cli.ContainerInspect(ctx, id)
	if err != nil || ci.NetworkSettings == nil {
		return ""
	}
	if es := ci.NetworkSettings.Networks[netName]; es != nil {
		return es.IPAddress
	}
	return ""
}

// holdBinary is the host path of swarmckpt-runtime as this node's Docker knows it (a
// static binary: it runs in any image).
func (d *Docker) holdBinary(ctx context.Context) (string, error) {
	info, err := d.Cli.Info(ctx)
	if err != nil {
		return "", err
	}
	path := ""
	if rt, ok := info.Runtimes[info.DefaultRuntime]; ok && filepath.Base(rt.Path) == "swarmckpt-runtime" {
		path = rt.Path
	}
	for _, rt := range info.Runtimes {
		if path == "" && filepath.Base(rt.Path) == "swarmckpt-runtime" && filepath.IsAbs(rt.Path) {
			path = rt.Path
		}
	}
	if path == "" {
		return "", fmt.Errorf("no swarmckpt-runtime among this node's Docker runtimes (install it: docs/restore.md, Install)")
	}
	// It runs inside images of any kind (FROM scratch included): a binary that needs
	// a dynamic loader would exit at once and keep nothing.
	if err := requireStatic(path); err != nil {
		return "", err
	}
	return path, nil
}

// requireStatic refuses an ELF executable with a program interpreter (dynamically
// linked): build it with CGO_ENABLED=0 (make build does).
func requireStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("network keeper binary %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("network keeper binary %s is dynamically linked: it cannot run inside the restored container's image; build it statically (CGO_ENABLED=0 go build ./cmd/swarmckpt-runtime, as make build does)", path)
		}
	}
	return nil
}
