package lab

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// Client returns a Docker API client for lab node n (API version negotiated). The caller
// closes it.
func Client(n Node) (*client.Client, error) { return nodeClient(n) }

// NodeByName returns the node named name.
func (p Plan) NodeByName(name string) (Node, bool) {
	for _, n := range p.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Task is a running swarm task of a stack with the container that runs it.
type Task struct {
	Service     string // full service name, e.g. echo_client
	Slot        int
	Node        string // lab node name (hostname)
	ContainerID string
	IPs         []string // addresses on the task's networks
}

// RunningTasks lists the running tasks of stack, sorted by service and slot.
func RunningTasks(ctx context.Context, p Plan, stack string) ([]Task, error) {
	c, err := nodeClient(p.Manager())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	f := filters.NewArgs(filters.Arg("label", "com.docker.stack.namespace="+stack), filters.Arg("desired-state", "running"))
	tasks, err := c.TaskList(ctx, swarm.TaskListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list tasks of stack %s: %w", stack, err)
	}
	nodes, err := c.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	hostname := map[string]string{}
	for _, n := range nodes {
		hostname[n.ID] = n.Description.Hostname
	}
	var out []Task
	for _, t := range tasks {
		if t.Status.State != swarm.TaskStateRunning || t.Status.ContainerStatus == nil {
			continue
		}
		task := Task{Service: t.Spec.ContainerSpec.Labels["com.docker.stack.namespace"], Slot: t.Slot,
			Node: hostname[t.NodeID], ContainerID: t.Status.ContainerStatus.ContainerID}
		if svc, _, err := c.ServiceInspectWithRaw(ctx, t.ServiceID, swarm.ServiceInspectOptions{}); err == nil {
			task.Service = svc.Spec.Name
		}
		for _, na := range t.NetworksAttachments {
			for _, a := range na.Addresses {
				task.IPs = append(task.IPs, strings.Split(a, "/")[0])
			}
		}
		out = append(out, task)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Slot < out[j].Slot
	})
	return out, nil
}

// Exec runs cmd in container id on node n and returns its stdout; a non-zero exit is an
// error carrying stderr.
func Exec(ctx context.Context, n Node, id string, cmd ...string) (string, error) {
	c, err := nodeClient(n)
	if err != nil {
		return "", err
	}
	defer c.Close()
	ex, err := c.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", fmt.Errorf("exec %v in %.12s on %s: %w", cmd, id, n.Name, err)
	}
	att, err := c.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", fmt.Errorf("exec %v in %.12s on %s: attach: %w", cmd, id, n.Name, err)
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		return "", fmt.Errorf("exec %v in %.12s: read output: %w", cmd, id, err)
	}
	ins, err := c.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return "", fmt.Errorf("exec %v in %.12s: inspect: %w", cmd, id, err)
	}
	if ins.ExitCode != 0 {
		return stdout.String(), fmt.Errorf("exec %v in %.12s on %s exited %d: %s", cmd, id, n.Name, ins.ExitCode, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
