// Package probe is the tiny HTTP client every workload binary exposes as its `get`
// subcommand, so that health can be checked with `docker exec <container> /<name> get URL`
// inside a FROM-scratch image that has no shell, curl or wget.
package probe
