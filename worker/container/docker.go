package container

import (
	"context"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// Docker is the Inspector backed by a Docker engine's API.
type Docker struct {
	cli *client.Client
}

var _ Inspector = (*Docker)(nil)

// NewDocker returns an Inspector talking to the engine at cli.
func NewDocker(cli *client.Client) *Docker { return &Docker{cli: cli} }

// DialDocker connects to the Docker engine at host (e.g. unix:///var/run/docker.sock;
// empty means the environment's DOCKER_HOST or the default socket) and negotiates the
// API version, so a 28.x client works with a 20.10 engine.
func DialDocker(host string) (*client.Client, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("container: connect to docker at %q: %w", host, err)
	}
	return cli, nil
}

func (d *Docker) inspect(ctx context.Context, nameOrID string) (container.InspectResponse, error) {
	ci, err := d.cli.ContainerInspect(ctx, nameOrID)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return ci, fmt.Errorf("container %q: %w (check the name and that it runs on this node)", nameOrID, ErrNotFound)
		}
		return ci, fmt.Errorf("container %q: docker inspect: %w", nameOrID, err)
	}
	if ci.ContainerJSONBase == nil || ci.Config == nil {
		return ci, fmt.Errorf("container %q: docker inspect returned no state", nameOrID)
	}
	return ci, nil
}

// Resolve implements Inspector.
func (d *Docker) Resolve(ctx context.Context, nameOrID string) (Ref, error) {
	ci, err := d.inspect(ctx, nameOrID)
	if err != nil {
		return Ref{}, err
	}
	ref := Ref{ID: ci.ID, Name: strings.TrimPrefix(ci.Name, "/")}
	if ci.State == nil || !ci.State.Running || ci.State.Pid <= 0 {
		status := "unknown"
		if ci.State != nil {
			status = ci.State.Status
		}
		return ref, fmt.Errorf("container %s is %s: %w", ref, status, ErrNotRunning)
	}
	ref.Pid = ci.State.Pid
	return ref, nil
}

// Spec implements Inspector.
func (d *Docker) Spec(ctx context.Context, nameOrID string) (Spec, error) {
	ci, err := d.inspect(ctx, nameOrID)
	if err != nil {
		return Spec{}, err
	}
	return FromInspect(ci), nil
}
