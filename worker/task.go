package worker

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Tasks is the role a worker offers for swarm-native restores, where swarm's own
// replacement task is restored by the runtime wrapper from a set placed for its
// service slot (docs/restore.md). *Worker and *Client implement it.
type Tasks interface {
	// PlaceTask verifies image set setID and places a hard-linked copy of it for the
	// next task of o.Service slot o.Slot on this node (the set itself stays).
	PlaceTask(ctx context.Context, setID string, o TaskOptions) (TaskPlacement, error)
	// SetAddressMap gives the wrapper the address map (old IP -> new IP of every
	// container of the restored set) for the set placed for service slot.
	SetAddressMap(ctx context.Context, service string, slot int, addresses map[string]string) error
	// UnplaceTask takes back the set placed for service slot when no task claimed it
	// (deleted; moved back to image set setID if that is gone) and says which
	// container claimed it, if one did.
	UnplaceTask(ctx context.Context, service string, slot int, setID string) (TaskRelease, error)
}

// TaskOptions tune PlaceTask.
type TaskOptions struct {
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	// LockUntil, when set, has the wrapper restore the task with its network locked
	// (from before CRIU restores its sockets) until Unlock or LockUntil: the worker
	// journals a hold for the task's container as soon as it runs, so its watchdog
	// unlocks it at LockUntil if nobody else does.
	LockUntil time.Time `json:"lockUntil,omitzero"`
	// AddressMapUntil, when set, announces an address map (SetAddressMap): the
	// wrapper waits for it until then. Without a map the set's connections on
	// non-loopback addresses are closed at restore (TaskPlacement.Closed).
	AddressMapUntil time.Time `json:"addressMapUntil,omitzero"`
}

// TaskPlacement is the result of PlaceTask.
type TaskPlacement struct {
	// Connections are the set's TCP connections on non-loopback addresses, e.g.
	// "10.0.9.5:41000 -> 10.0.9.6:7000".
	Connections []string `json:"connections,omitempty"`
	// Closed are those closed at restore (no address map announced).
	Closed []string `json:"closed,omitempty"`
}

// TaskRelease is the result of UnplaceTask.
type TaskRelease struct {
	// Removed: a placed, unclaimed set was there and was taken back.
	Removed bool `json:"removed"`
	// Claimed is the container whose create claimed the placed set (restored from it,
	// or restoring), as seen by this worker; empty if none did.
	Claimed string `json:"claimed,omitempty"`
}

type taskRequest struct {
	Options   TaskOptions       `json:"options,omitzero"`
	Addresses map[string]string `json:"addresses,omitempty"`
	Set       string            `json:"set,omitempty"`
}

func taskPath(service string, slot int) string {
	return "/v1/tasks/" + url.PathEscape(service) + "/" + strconv.Itoa(slot)
}

// PlaceTask implements Tasks.
func (c *Client) PlaceTask(ctx context.Context, setID string, o TaskOptions) (TaskPlacement, error) {
	var out TaskPlacement
	err := c.call(ctx, http.MethodPost, "/v1/sets/"+url.PathEscape(setID)+"/place", apiRequest{Task: taskRequest{Options: o}}, &out)
	return out, err
}

// SetAddressMap implements Tasks.
func (c *Client) SetAddressMap(ctx context.Context, service string, slot int, addresses map[string]string) error {
	return c.call(ctx, http.MethodPut, taskPath(service, slot)+"/address-map", apiRequest{Task: taskRequest{Addresses: addresses}}, nil)
}

// UnplaceTask implements Tasks.
func (c *Client) UnplaceTask(ctx context.Context, service string, slot int, setID string) (TaskRelease, error) {
	var out TaskRelease
	err := c.call(ctx, http.MethodDelete, taskPath(service, slot), apiRequest{Task: taskRequest{Set: setID}}, &out)
	return out, err
}
