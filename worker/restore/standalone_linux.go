package restore

import (
	"context"
	"fmt"
	"sort"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	dcontainer "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// Standalone lists this node's containers restored for a service of stack (every state:
// Running tells which run), sorted by name.
func (d *Docker) Standalone(ctx context.Context, stack string) ([]Standalone, error) {
	list, err := d.Cli.ContainerList(ctx, dcontainer.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelService))})
	if err != nil {
		return nil, fmt.Errorf("restore: list containers labelled %s: %w", LabelService, err)
	}
	var out []Standalone
	for _, c := range list {
		s := Standalone{ID: c.ID, Service: c.Labels[LabelService], Stack: c.Labels[StackLabel]}
		if !s.InStack(stack) {
			continue
		}
		ci, err := d.Cli.ContainerInspect(ctx, c.ID)
		if cerrdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("restore: inspect restored container %.12s: %w", c.ID, err)
		}
		s.Name = strings.TrimPrefix(ci.Name, "/")
		if ci.Config != nil {
			s.Image = ci.Config.Image
		}
		for k, v := range c.Labels {
			if strings.HasPrefix(k, "io.swarmckpt.") {
				if s.Labels == nil {
					s.Labels = map[string]string{}
				}
				s.Labels[k] = v
			}
		}
		if ci.State != nil {
			s.Running, s.State = ci.State.Running && !ci.State.Paused && !ci.State.Restarting, ci.State.Status
		}
		if ci.NetworkSettings != nil {
			for name, ep := range ci.NetworkSettings.Networks {
				if ep == nil {
					continue
				}
				n := StandaloneNet{Name: name, IPv4: ep.IPAddress, IPv6: ep.GlobalIPv6Address, Aliases: ep.Aliases}
				if n.IPv4 == "" && ep.IPAMConfig != nil {
					n.IPv4 = ep.IPAMConfig.IPv4Address // a stopped container keeps its requested address
				}
				s.Networks = append(s.Networks, n)
			}
			sort.Slice(s.Networks, func(i, j int) bool { return s.Networks[i].Name < s.Networks[j].Name })
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
