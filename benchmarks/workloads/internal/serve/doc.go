// Package serve runs the small HTTP status servers of the workloads with a context-bound
// lifetime, and holds the helpers they share (JSON replies, instance ids, logging setup).
package serve
