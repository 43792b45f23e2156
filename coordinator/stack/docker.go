package stack

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// Docker resolves stacks through a swarm manager's Docker API.
type Docker struct {
	cli  *client.Client
	host string
	// standalone, when set, finds the containers exact-mode restores created (on the
	// workers: the manager's API does not see them). SetStandalone.
	standalone StandaloneFunc
}

var _ Resolver = (*Docker)(nil)

// NewDocker connects to the Docker API at host (e.g. unix:///run/swarmckpt/lab/lab-1/docker.sock;
// "" uses DOCKER_HOST or the default socket), negotiating the API version.
func NewDocker(host string) (*Docker, error) {
	opts := []client.Opt{client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	} else {
		opts = append(opts, client.FromEnv)
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("stack: docker client for %q: %w", host, err)
	}
	return &Docker{cli: cli, host: host}, nil
}

// Close releases the client.
func (d *Docker) Close() error { return d.cli.Close() }

// Client exposes the Docker client (for restore steering).
func (d *Docker) Client() *client.Client { return d.cli }

// Resolve implements Resolver.
func (d *Docker) Resolve(ctx context.Context, name string) (*Stack, error) {
	f := filters.NewArgs(filters.Arg("label", NamespaceLabel+"="+name))
	services, err := d.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("stack %q: list services on %s: %w (is --docker a swarm manager's socket?)", name, d.host, err)
	}
	var tasks []swarm.Task
	if len(services) > 0 {
		tf := filters.NewArgs(filters.Arg("desired-state", "running"))
		for _, s := range services {
			tf.Add("service", s.ID)
		}
		tasks, err = d.cli.TaskList(ctx, swarm.TaskListOptions{Filters: tf})
		if err != nil {
			return nil, fmt.Errorf("stack %q: list tasks: %w", name, err)
		}
	}
	nodes, err := d.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("stack %q: list nodes: %w", name, err)
	}
	var standalone []Container
	if d.standalone != nil && len(services) > 0 {
		if standalone, err = d.standalone(ctx, name); err != nil {
			return nil, fmt.Errorf("stack %q: find the containers restored for it: %w", name, err)
		}
	}
	return BuildWith(name, services, tasks, nodes, standalone)
}

// SetStandalone makes Resolve count the standalone containers f finds (restored by
// exact-mode restores) as the stack's containers (BuildWith). Set it before use.
func (d *Docker) SetStandalone(f StandaloneFunc) { d.standalone = f }

// StopStack scales every replicated service of the stack to 0 and waits until none of
// their tasks runs, so that a restore can take over the tasks' addresses without the
// swarm running duplicates. Global services are left alone (reported in the error).
func (d *Docker) StopStack(ctx context.Context, name string) error {
	_, err := d.StopServices(ctx, name, nil)
	return err
}

// StopServices is StopStack returning the replicas each service had before (by
// service name, services already at 0 left out), so that ScaleServices can put them
// back when what follows fails. kill, when set, is called once swarm ordered the
// services' tasks to shut down, with the containers of those still running, by node
// hostname: the caller may kill them at once (a restore brings back the snapshot, not
// these processes) instead of waiting out their stop grace period. Nothing is changed
// when a service is global. On error, prior lists the services already scaled to 0.
func (d *Docker) StopServices(ctx context.Context, name string, kill func(ctx context.Context, byNode map[string][]string)) (prior map[string]uint64, err error) {
	f := filters.NewArgs(filters.Arg("label", NamespaceLabel+"="+name))
	services, err := d.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("stack %q: list services: %w", name, err)
	}
	if len(services) == 0 {
		return nil, nil
	}
	tf := filters.NewArgs()
	for _, s := range services {
		tf.Add("service", s.ID)
		if s.Spec.Mode.Replicated == nil {
			return nil, fmt.Errorf("stack %q: service %s is global: remove it (docker service rm) before restoring", name, s.Spec.Name)
		}
	}
	prior = map[string]uint64{}
	for _, s := range services {
		r := s.Spec.Mode.Replicated.Replicas
		if r != nil && *r == 0 {
			continue
		}
		spec := s.Spec
		zero := uint64(0)
		spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &zero}
		if _, err := d.cli.ServiceUpdate(ctx, s.ID, s.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
			return prior, fmt.Errorf("stack %q: scale service %s to 0: %w", name, s.Spec.Name, err)
		}
		prior[s.Spec.Name] = 1
		if r != nil {
			prior[s.Spec.Name] = *r
		}
	}
	if kill != nil {
		// Killed only once swarm shuts them down: a task killed before the orchestrator
		// applied the scale-down would count as failed and be replaced (restart policy).
		if running, err := d.shutdownOrdered(ctx, services, tf); err == nil && len(running) > 0 {
			kill(ctx, running)
		}
	}
	return prior, d.waitStopped(ctx, name, tf)
}

// shutdownOrdered polls until no task of the services in tf is desired running any
// more and returns the containers of the tasks still running, by node hostname.
func (d *Docker) shutdownOrdered(ctx context.Context, services []swarm.Service, tf filters.Args) (map[string][]string, error) {
	for {
		tasks, err := d.cli.TaskList(ctx, swarm.TaskListOptions{Filters: tf})
		if err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		ordered := true
		for _, t := range tasks {
			ordered = ordered && t.DesiredState != swarm.TaskStateRunning
		}
		if ordered {
			return d.runningContainers(ctx, services, tasks)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runningContainers lists the containers of the running tasks by node hostname.
func (d *Docker) runningContainers(ctx context.Context, services []swarm.Service, tasks []swarm.Task) (map[string][]string, error) {
	nodes, err := d.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out := map[string][]string{}
	for _, t := range BuildTasks(services, tasks, nodes) {
		// Running whatever its desired state: a task swarm is already stopping (an
		// earlier scale-down) may still be in its stop grace period.
		if (t.State == string(swarm.TaskStateRunning) || t.State == string(swarm.TaskStateStarting)) && t.ContainerID != "" && t.Node != "" {
			out[t.Node] = append(out[t.Node], t.ContainerID)
		}
	}
	return out, nil
}

// waitStopped polls until none of the tasks of the services in tf runs (stillRunning).
func (d *Docker) waitStopped(ctx context.Context, name string, tf filters.Args) error {
	for {
		tasks, err := d.cli.TaskList(ctx, swarm.TaskListOptions{Filters: tf})
		if err != nil {
			return fmt.Errorf("stack %q: list tasks: %w", name, err)
		}
		if nodes, err := d.cli.NodeList(ctx, swarm.NodeListOptions{}); err == nil {
			tasks = onLiveNodes(tasks, nodes) // nodestates.go: a lost node's tasks never report stopped
		}
		running := stillRunning(tasks)
		if len(running) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stack %q: %d task(s) still running after scaling to 0 (%s): %w", name, len(running), strings.Join(running, ", "), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stillRunning describes the tasks a stop still waits for: those with a container
// that runs or is being started, and those not started yet that swarm still wants
// running. A task not started yet whose desired state is no longer running never
// gets a container (seen under load: a replacement task of a migrated container stuck
// in "preparing" on its network attachment kept a stop waiting for a minute).
func stillRunning(tasks []swarm.Task) []string {
	var out []string
	for _, t := range tasks {
		switch t.Status.State {
		case swarm.TaskStateRunning, swarm.TaskStateStarting:
		case swarm.TaskStateNew, swarm.TaskStatePending, swarm.TaskStateAllocated, swarm.TaskStateAssigned,
			swarm.TaskStateAccepted, swarm.TaskStatePreparing, swarm.TaskStateReady:
			if t.DesiredState != swarm.TaskStateRunning {
				continue
			}
		default:
			continue
		}
		out = append(out, fmt.Sprintf("task %.12s %s, desired %s", t.ID, t.Status.State, t.DesiredState))
	}
	return out
}
