package lab

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
)

// NodeStatus is what Status reports per node.
type NodeStatus struct {
	Node
	Up         bool   `json:"up"`
	Engine     string `json:"engine,omitempty"`
	SwarmState string `json:"swarm_state,omitempty"`
	Role       string `json:"role,omitempty"`
	Containers int    `json:"containers"`
	Error      string `json:"error,omitempty"`
}

// Status returns the state of every node of the lab p.
func Status(ctx context.Context, p Plan) []NodeStatus {
	out := make([]NodeStatus, len(p.Nodes))
	_ = forEachNode(p, func(n Node) error {
		s := NodeStatus{Node: n, Role: "worker"}
		if n.Manager {
			s.Role = "manager"
		}
		defer func() { out[n.Index-1] = s }()
		c, err := nodeClient(n)
		if err != nil {
			s.Error = err.Error()
			return nil
		}
		defer c.Close()
		info, err := c.Info(ctx)
		if err != nil {
			s.Error = err.Error()
			return nil
		}
		s.Up, s.Engine, s.SwarmState = true, info.ServerVersion, string(info.Swarm.LocalNodeState)
		cs, err := c.ContainerList(ctx, container.ListOptions{})
		if err == nil {
			s.Containers = len(cs)
		}
		return nil
	})
	return out
}

// ServiceTasks returns, for every service of stack on the lab's manager, the number of
// running tasks and the desired replicas.
func ServiceTasks(ctx context.Context, p Plan, stack string) (map[string][2]int, error) {
	c, err := nodeClient(p.Manager())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	svcs, err := c.ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := map[string][2]int{}
	for _, s := range svcs {
		if s.Spec.Labels["com.docker.stack.namespace"] != stack {
			continue
		}
		want := 0
		if s.Spec.Mode.Replicated != nil && s.Spec.Mode.Replicated.Replicas != nil {
			want = int(*s.Spec.Mode.Replicated.Replicas)
		}
		out[s.Spec.Name] = [2]int{0, want}
	}
	tasks, err := c.TaskList(ctx, swarm.TaskListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	byID := map[string]string{}
	for _, s := range svcs {
		byID[s.ID] = s.Spec.Name
	}
	for _, t := range tasks {
		name, ok := byID[t.ServiceID]
		if _, mine := out[name]; !ok || !mine {
			continue
		}
		if t.Status.State == swarm.TaskStateRunning && t.DesiredState == swarm.TaskStateRunning {
			v := out[name]
			v[0]++
			out[name] = v
		}
	}
	return out, nil
}
