package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// Drainer is the role a worker offers for the drain hold (docs/drain.md, decision "A"):
// the containers it arms have their stop (the runtime's `kill` with the stop signal)
// held by the runtime wrapper (worker/ociwrap, drainhold.go) until this worker gives a
// verdict or the armed budget runs out. *Worker, *Client and *Fake implement it.
type Drainer interface {
	// Arm arms a running container: its stop is held from now on for at most
	// o.Budget (capped at ociwrap.MaxHold). What a dump needs of the container (its
	// ID, pid and spec) is recorded now, since `docker inspect` blocks during a hold.
	// Arming an armed container updates its budget and record.
	Arm(ctx context.Context, containerName string, o ArmOptions) error
	// Disarm disarms a container (by name or ID; a gone container's record goes too),
	// releasing a stop it holds; disarming one that is not armed succeeds.
	Disarm(ctx context.Context, containerName string) error
	// HeldStops lists the stops the wrapper holds on this node now.
	HeldStops(ctx context.Context) ([]HeldStop, error)
	// CheckpointHeld dumps a held container (by ID) with exit into the new image set
	// setID, under its network lock, found through runc's state (never the Docker API,
	// which blocks while the stop is held). The stop stays held until ReleaseHeld
	// (verdict "checkpointed": the stop proceeds and finds the container gone), so that
	// the set can be placed for swarm's replacement before swarm sees the old task end.
	// On failure the container is left running and unlocked and its stop proceeds at
	// once (verdict "release", with the reason). Not held: ErrNotHeld
	// (node.ErrNotFound); checkpointed already: ErrCheckpointed.
	// With into (the worker address of the node where swarm placed the replacement;
	// node.FeatureDrainDirect), the set is dumped straight into that worker, as
	// DumpInto does (the pages to its page server, hashed on arrival), and no copy
	// stays here: the target's verified set is the only one; the container is ended
	// once the target holds it, and on failure the target keeps nothing.
	CheckpointHeld(ctx context.Context, containerID, setID, into string) (*imageset.Manifest, error)
	// ReleaseHeld lets a held stop proceed now: verdict "checkpointed" after
	// CheckpointHeld, "release" otherwise (not a drain).
	ReleaseHeld(ctx context.Context, containerID, reason string) error
}

// ArmOptions tune Arm.
type ArmOptions struct {
	// Budget is the longest hold of the container's stop: min(50 s,
	// stop_grace_period) minus a margin, computed by the caller. Required (> 0).
	Budget time.Duration `json:"budget"`
	// Grace is the task's stop_grace_period (0: unknown), written to the arm file:
	// after a hold that ate into it, the wrapper SIGKILLs the container when it ends.
	Grace time.Duration `json:"grace,omitempty"`
	// Policy is the stack's on-drain policy ("migrate"), recorded for the agent that
	// decides what to do with a held stop.
	Policy string `json:"policy,omitempty"`
	// Stack, Service and Slot name the container's swarm task, recorded for the
	// placement of its set for the replacement (empty when unknown).
	Stack   string `json:"stack,omitempty"`
	Service string `json:"service,omitempty"`
	Slot    int    `json:"slot,omitempty"`
}

// HeldStop is one stop the wrapper holds.
type HeldStop struct {
	ContainerID string `json:"containerID"`
	Name        string `json:"name,omitempty"`
	Signal      string `json:"signal"`
	// Deadline is when the wrapper gives up and passes the stop on.
	Deadline time.Time `json:"deadline"`
	// Armed is the container's arming (its policy, service and slot).
	Armed ArmOptions `json:"armed"`
	// Set is the image set CheckpointHeld dumped it into ("" : not checkpointed).
	Set string `json:"set,omitempty"`
	// Into is the worker address Set was dumped straight into ("": Set is here).
	Into string `json:"into,omitempty"`
}

// ErrNotHeld: no stop of that container is held on this node.
var ErrNotHeld = fmt.Errorf("worker: no held stop: %w", node.ErrNotFound)

// ErrNotArmed: the container has no arming record here.
var ErrNotArmed = fmt.Errorf("worker: container not armed for drain: %w", node.ErrNotFound)

// ErrCheckpointed: the held container was checkpointed already.
var ErrCheckpointed = fmt.Errorf("worker: held container checkpointed already: %w", node.ErrConflict)

// ErrHoldTooShort: a held stop's deadline is too near for a checkpoint to finish.
var ErrHoldTooShort = errors.New("worker: held stop too close to its deadline to checkpoint")

type drainRequest struct {
	Arm    ArmOptions `json:"arm,omitzero"`
	Reason string     `json:"reason,omitempty"`
}

func drainPath(id string) string { return "/v1/drain/" + url.PathEscape(id) }

// Arm implements Drainer.
func (c *Client) Arm(ctx context.Context, name string, o ArmOptions) error {
	return c.call(ctx, http.MethodPut, drainPath(name), apiRequest{Drain: drainRequest{Arm: o}}, nil)
}

// Disarm implements Drainer.
func (c *Client) Disarm(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, drainPath(name), apiRequest{}, nil)
}

// HeldStops implements Drainer.
func (c *Client) HeldStops(ctx context.Context) ([]HeldStop, error) {
	var out []HeldStop
	err := c.call(ctx, http.MethodGet, "/v1/drain", apiRequest{}, &out)
	return out, err
}

// CheckpointHeld implements Drainer.
func (c *Client) CheckpointHeld(ctx context.Context, id, setID, into string) (*imageset.Manifest, error) {
	var out imageset.Manifest
	if err := c.call(ctx, http.MethodPost, drainPath(id)+"/checkpoint", apiRequest{Set: setID, Addr: into}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReleaseHeld implements Drainer.
func (c *Client) ReleaseHeld(ctx context.Context, id, reason string) error {
	return c.call(ctx, http.MethodPost, drainPath(id)+"/release", apiRequest{Drain: drainRequest{Reason: reason}}, nil)
}

var _ Drainer = (*Client)(nil)
