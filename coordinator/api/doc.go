// Package api is the request/reply contract between the swarmckpt CLI and the
// coordinator, carried over the control-plane bus (NATS): one subject per operation,
// a JSON request, a JSON reply holding either the result or a typed Error. Progress
// of long operations is published as Event values on ProgressSubject(id). ValidID,
// ValidStack, ValidNode and ValidKey are the one check of the names a request
// carries, run by the CLI before it sends one and by the coordinator before it acts.
//
// The algorithm messages between coordinator and workers are a different contract
// (protocol/); this one only serves users.
package api
