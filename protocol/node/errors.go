package node

import (
	"context"
	"errors"
	"net/http"
	"syscall"
)

// Errors cross the node boundary (agent replies over NATS, the worker's HTTP API) as a
// Status: the message, a Code (the error's class, containerd errdefs style) and, for
// the specific errors below, a Reason. The receiving side turns a Status back into an
// error that matches, with errors.Is, both its class and its specific sentinel:
//
//	errors.Is(err, node.ErrNoSuchSet) // and errors.Is(err, node.ErrNotFound)
//
// The sending side classifies an error by the sentinels it wraps: wrap one of these
// (fmt.Errorf("...: %w", node.ErrNoSuchSet), or Mark to keep a message unchanged).

// Code is an error's class on the wire. ONLY APPEND.
type Code string

// The error classes.
const (
	CodeNotFound           Code = "not_found"           // what was named is not there
	CodeInvalidArgument    Code = "invalid_argument"    // the request is malformed or names something invalid
	CodeConflict           Code = "conflict"            // it exists already, or is busy with another operation
	CodeFailedPrecondition Code = "failed_precondition" // the state does not allow it (e.g. not frozen)
	CodeUnavailable        Code = "unavailable"         // the node cannot do it (no worker, older version, timed out)
	CodeInternal           Code = "internal"            // anything else
)

// class is the sentinel of one Code.
type class struct{ code Code }

func (c *class) Error() string { return "node: " + string(c.code) }

// The class sentinels: errors.Is(err, ErrNotFound) holds for every error of that class,
// local or remote.
var (
	ErrNotFound           error = &class{CodeNotFound}
	ErrInvalidArgument    error = &class{CodeInvalidArgument}
	ErrConflict           error = &class{CodeConflict}
	ErrFailedPrecondition error = &class{CodeFailedPrecondition}
	ErrUnavailable        error = &class{CodeUnavailable}
	ErrInternal           error = &class{CodeInternal}
)

var classes = []*class{ErrNotFound.(*class), ErrInvalidArgument.(*class), ErrConflict.(*class),
	ErrFailedPrecondition.(*class), ErrUnavailable.(*class), ErrInternal.(*class)}

// reason is a specific sentinel of one class.
type reason struct {
	code Code
	name string
	msg  string
}

func (r *reason) Error() string { return r.msg }

// Is makes a specific sentinel match its class.
func (r *reason) Is(target error) bool { c, ok := target.(*class); return ok && c.code == r.code }

// The specific errors, each of one class. ONLY APPEND (the name is the wire Reason).
var (
	// ErrNoSuchSet: no image set of that ID on the node.
	ErrNoSuchSet error = &reason{CodeNotFound, "no_such_set", "no such image set on this node"}
	// ErrBadSetID: set IDs are [A-Za-z0-9_.-]+ and not "." or "..".
	ErrBadSetID error = &reason{CodeInvalidArgument, "bad_set_id", "bad image set ID"}
	// ErrNotFrozen: a stop of a container that is not frozen (it ran on after its dump).
	ErrNotFrozen error = &reason{CodeFailedPrecondition, "not_frozen", "container is not frozen"}
	// ErrNotParked: a stop of a container that is not held since its dump in that
	// snapshot on the node (never dumped there, or already released).
	ErrNotParked error = &reason{CodeFailedPrecondition, "not_parked", "container is not held since its dump"}
	// ErrSetExists: the target node holds an image set of that ID already.
	ErrSetExists error = &reason{CodeConflict, "set_exists", "image set already exists"}
	// ErrNoWorker: the node's agent has no worker for the operation (or one of an
	// older version without it).
	ErrNoWorker error = &reason{CodeUnavailable, "no_worker", "no worker for this operation"}
	// ErrWorkerUnreachable: the agent could not reach its worker, or lost it while the
	// worker served the request (the worker ended: killed, or restarting); or a worker
	// could not reach the worker it sends a set to. What the request asked may have
	// been done or not: repeat it only if it is idempotent.
	ErrWorkerUnreachable error = &reason{CodeUnavailable, "worker_unreachable", "the node's worker did not answer"}
	// ErrNoSpace: the node's disk is full: images could not be written there. A local
	// error matching syscall.ENOSPC is sent as this reason.
	ErrNoSpace error = &reason{CodeFailedPrecondition, "no_space", "no space left on the node's disk"}
	// ErrNoSoftDirty: a pre-copy (iterative pre-dump) asked of a node whose kernel
	// tracks no soft-dirty pages (CONFIG_MEM_SOFT_DIRTY off; FeaturePreCopy not
	// announced).
	ErrNoSoftDirty error = &reason{CodeFailedPrecondition, "no_soft_dirty", "the kernel tracks no soft-dirty pages: pre-copy cannot run on this node"}
	// ErrPagesUnhashed: the memory pages a direct transfer left on the node were not
	// hashed and never will be (the worker that received them ended first and they
	// cannot be resumed, or a file changed since it arrived): the set cannot be
	// verified.
	ErrPagesUnhashed error = &reason{CodeFailedPrecondition, "pages_unhashed", "the set's received memory pages were never hashed: it cannot be verified"}
)

var reasons = []*reason{ErrNoSuchSet.(*reason), ErrBadSetID.(*reason), ErrNotFrozen.(*reason),
	ErrNotParked.(*reason), ErrSetExists.(*reason), ErrNoWorker.(*reason), ErrWorkerUnreachable.(*reason),
	ErrNoSpace.(*reason), ErrNoSoftDirty.(*reason), ErrPagesUnhashed.(*reason)}

// Status is an operation's outcome on the wire; the zero Status is success. Every
// reply embeds it (JSON fields error, code, reason).
type Status struct {
	// Error is the message ("" on success).
	Error string `json:"error,omitempty"`
	// Code classifies Error; empty from a peer of an older version (then only the
	// message is known).
	Code Code `json:"code,omitempty"`
	// Reason names the specific sentinel (ErrNoSuchSet: "no_such_set"), if any.
	Reason string `json:"reason,omitempty"`
}

// StatusOf encodes err (nil: success).
func StatusOf(err error) Status {
	if err == nil {
		return Status{}
	}
	code, why := classify(err)
	return Status{Error: err.Error(), Code: code, Reason: why}
}

// Set records err (nil: success) on a reply.
func (s *Status) Set(err error) { *s = StatusOf(err) }

// Err decodes s: nil on success, else an error with s's message that matches its class
// and reason sentinels with errors.Is.
func (s Status) Err() error {
	if s.Error == "" && s.Code == "" {
		return nil
	}
	msg := s.Error
	if msg == "" {
		msg = "node: " + string(s.Code)
	}
	return &RemoteError{Code: s.Code, Reason: s.Reason, Message: msg}
}

// RemoteError is an error that crossed the node boundary.
type RemoteError struct {
	Code    Code
	Reason  string
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// Is matches the error's class and specific sentinels.
func (e *RemoteError) Is(target error) bool {
	switch t := target.(type) {
	case *class:
		return e.Code != "" && t.code == e.Code
	case *reason:
		return e.Reason != "" && t.name == e.Reason
	}
	return false
}

// CodeOf returns err's class ("" for nil).
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	c, _ := classify(err)
	return c
}

func classify(err error) (Code, string) {
	for _, r := range reasons {
		if errors.Is(err, r) {
			return r.code, r.name
		}
	}
	if errors.Is(err, syscall.ENOSPC) {
		r := ErrNoSpace.(*reason)
		return r.code, r.name
	}
	for _, c := range classes {
		if errors.Is(err, c) {
			return c.code, ""
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return CodeUnavailable, ""
	}
	return CodeInternal, ""
}

// Mark returns err with its message unchanged that also matches sentinel (and its
// class) with errors.Is; nil for a nil err.
func Mark(err, sentinel error) error {
	if err == nil {
		return nil
	}
	return &marked{err: err, mark: sentinel}
}

type marked struct{ err, mark error }

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.mark} }

// HTTPStatus is the HTTP status of an error of class c (the worker's API).
func HTTPStatus(c Code) int {
	switch c {
	case CodeNotFound:
		return http.StatusNotFound
	case CodeInvalidArgument:
		return http.StatusBadRequest
	case CodeConflict:
		return http.StatusConflict
	case CodeFailedPrecondition:
		return http.StatusPreconditionFailed
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
