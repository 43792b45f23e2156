// Package pki makes the certificates of a worker cluster's TLS (worker.TLSFiles): a CA
// and, per node, a server certificate naming the node's addresses, written as PEM files
// (keys mode 0600). It is what `swarmckpt worker tls-init` runs; operators with a PKI of
// their own use theirs instead. The coordinator's embedded etcd (controlplane/embedded)
// makes its CA and certificates with it too.
package pki
