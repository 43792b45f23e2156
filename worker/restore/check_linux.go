package restore

import (
	"context"
	"fmt"
	"slices"

	cerrdefs "github.com/containerd/errdefs"
	dcontainer "github.com/docker/docker/api/types/container"

	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Check lists what a restore needs of this node's Docker engine, asked before anything
// is stopped (the coordinator's pre-flight).
type Check struct {
	// Stack whose swarm task containers are stopped before the restore: addresses
	// they hold do not count as taken.
	Stack string `json:"stack,omitempty"`
	// Containers to be restored here.
	Containers []CheckContainer `json:"containers,omitempty"`
	// Addresses the restored containers take.
	Addresses []CheckAddress `json:"addresses,omitempty"`
}

// CheckContainer is a container to be restored here: SERVICE.SLOT, its name and
// image (the wire contract's pre-flight container).
type CheckContainer = node.PreflightContainer

// CheckAddress is an address taken on one of Networks (any network when empty).
type CheckAddress = node.PreflightAddress

// Labels swarm and docker stack put on a stack's task containers.
const (
	labelStack = "com.docker.stack.namespace"
	labelTask  = "com.docker.swarm.task.id"
)

// Check answers c for this node: one line per problem, naming the container, this
// node (node) and the fix. It changes nothing.
func (d *Docker) Check(ctx context.Context, node string, c Check) ([]string, error) {
	var problems []string
	for _, ct := range c.Containers {
		if ct.Image != "" {
			if _, err := d.Cli.ImageInspect(ctx, ct.Image); cerrdefs.IsNotFound(err) {
				problems = append(problems, fmt.Sprintf("%s: image %s is not on node %s: load it there (docker save %s | docker -H <%s> load), or restore %s elsewhere (--node %s=NODE)",
					ct.Key, ct.Image, node, ct.Image, node, ct.Key, ct.Key))
			} else if err != nil {
				return nil, fmt.Errorf("inspect image %s on node %s: %w", ct.Image, node, err)
			}
		}
		for _, vol := range ct.Volumes {
			p, err := d.checkVolume(ctx, node, ct.Key, vol)
			if err != nil {
				return nil, err
			}
			problems = append(problems, p...)
		}
		if ct.Name != "" {
			ci, err := d.Cli.ContainerInspect(ctx, ct.Name)
			switch {
			case cerrdefs.IsNotFound(err):
			case err != nil:
				return nil, fmt.Errorf("inspect container %s on node %s: %w", ct.Name, node, err)
			case ci.Config != nil && ofStack(c.Stack, ci.Config.Labels):
				// An earlier exact restore of the stack: removed before the restore.
			default:
				problems = append(problems, fmt.Sprintf("%s: a container named %s (%.12s) already exists on node %s (left by an earlier restore?): remove it (docker rm -f %s)",
					ct.Key, ct.Name, ci.ID, node, ct.Name))
			}
		}
	}
	if len(c.Addresses) == 0 {
		return problems, nil
	}
	list, err := d.Cli.ContainerList(ctx, dcontainer.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list containers on node %s: %w", node, err)
	}
	for _, a := range c.Addresses {
		for _, h := range list {
			if c.Stack != "" && h.Labels[labelStack] == c.Stack && h.Labels[labelTask] != "" {
				continue // a task of the stack: stopped before the restore
			}
			if ofStack(c.Stack, h.Labels) {
				continue // an earlier exact restore of the stack: removed before the restore
			}
			if h.Labels[LabelKeeper] != "" {
				continue // a network keeper: the restore replaces one holding its address
			}
			if h.NetworkSettings == nil {
				continue
			}
			for net, es := range h.NetworkSettings.Networks {
				if es == nil || es.IPAddress != a.IP || (len(a.Networks) > 0 && !slices.Contains(a.Networks, net)) {
					continue
				}
				name := h.ID
				if len(h.Names) > 0 {
					name = h.Names[0][1:]
				}
				why := "it is not a task of stack " + c.Stack + ", so stopping the stack does not free it"
				if c.Stack == "" {
					why = "it keeps running during the restore"
				}
				problems = append(problems, fmt.Sprintf("%s: its address %s on network %s is held by container %s (%.12s) on node %s (%s): remove that container (docker rm -f %s) or free the address",
					a.Key, a.IP, net, name, h.ID, node, why, name))
			}
		}
	}
	return problems, nil
}

// ofStack tells whether labels are those of a container an exact-mode restore created
// for a service of stack (Standalone): the coordinator removes those before it restores
// the stack again, so their names and addresses are not taken.
func ofStack(stack string, labels map[string]string) bool {
	if stack == "" || labels[LabelService] == "" {
		return false
	}
	return Standalone{Service: labels[LabelService], Stack: labels[labelStack]}.InStack(stack)
}
