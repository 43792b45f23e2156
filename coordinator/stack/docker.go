package stack

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// Docker resolves stacks through a swarm manager's Docker API.
type Docker struct {
	cli  *client.Client
	host string
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
	return Build(name, services, tasks, nodes)
}
