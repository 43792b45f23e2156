// Package workerexec adapts the data plane's worker.Service (lock, freeze, dump, send,
// restore on one node's containers) to the node agent's Executor and Restorer, so that
// the agent can drive a real worker: in-process, or over the worker's local HTTP API
// (worker.Client).
package workerexec
