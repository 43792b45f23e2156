package embedded

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/pki"
)

// The embedded etcd's TLS. Its client and peer ports serve TLS only (1.3) and require
// a client certificate signed by a CA of the coordinator's own (worker/pki), kept in
// <data-dir>/etcd-tls (mode 0700, every file 0600):
//
//	ca.pem, ca-key.pem          the CA (made on first start, kept)
//	server.pem, server-key.pem  the server's (and peer's) certificate: loopback and --listen
//	client.pem, client-key.pem  the client certificate the coordinator (or etcdctl) uses
//	nats-server.pem, nats-server-key.pem  the embedded NATS server's certificate
//	                            (clients verify it with ca.pem: NATSCAPath)
//
// The server certificate is issued again when it no longer names the address etcd
// binds to or is about to expire; the client certificate is kept while valid.

const (
	etcdTLSDir = "etcd-tls"
	// renewBefore: a certificate that expires sooner is issued again at start.
	renewBefore = 30 * 24 * time.Hour
)

// EtcdCredentials are the PEM files a client of the embedded etcd presents: the CA
// that signed the server's certificate and a client certificate with its key.
type EtcdCredentials struct {
	CA, Cert, Key string
}

// EtcdCredentialsPath is where Start keeps the etcd client credentials of a data
// directory (they exist once a coordinator with etcd TLS has started on it).
func EtcdCredentialsPath(dataDir string) EtcdCredentials {
	dir := filepath.Join(dataDir, etcdTLSDir)
	ca, _ := pki.CAFiles(dir)
	cert, key := pki.NodeFiles(dir, "client")
	return EtcdCredentials{CA: ca, Cert: cert, Key: key}
}

// etcdTLS are the files the server side uses.
type etcdTLS struct {
	ca, serverCert, serverKey string
	client                    EtcdCredentials
}

// ensureEtcdTLS makes (or reuses) the CA and certificates for an etcd bound to host.
func ensureEtcdTLS(dataDir, host string) (*etcdTLS, error) {
	dir := filepath.Join(dataDir, etcdTLSDir)
	ca, _, err := pki.OpenCA(dir, "swarmckpt embedded etcd CA")
	if err != nil {
		return nil, fmt.Errorf("etcd CA in %s: %w (move the directory away to make a new CA)", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd TLS directory %s: %w", dir, err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ip := net.ParseIP(host); ip != nil && !slices.ContainsFunc(ips, ip.Equal) {
		ips = append(ips, ip)
	}
	t := &etcdTLS{client: EtcdCredentialsPath(dataDir)}
	t.ca, _ = pki.CAFiles(dir)
	if t.serverCert, t.serverKey, err = ensureCert(ca, dir, "server", ips, []string{"localhost"}); err != nil {
		return nil, err
	}
	if _, _, err = ensureCert(ca, dir, "client", []net.IP{net.IPv4(127, 0, 0, 1)}, nil); err != nil {
		return nil, err
	}
	// Certificates too: nothing in here is for anyone but the coordinator.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("etcd TLS directory %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := os.Chmod(filepath.Join(dir, e.Name()), 0o600); err != nil {
			return nil, fmt.Errorf("etcd TLS file: %w", err)
		}
	}
	return t, nil
}

// ensureCert keeps dir's certificate name when it is signed by ca, names every ip
// and does not expire within renewBefore; otherwise it issues it again.
func ensureCert(ca *pki.CA, dir, name string, ips []net.IP, names []string) (certFile, keyFile string, err error) {
	certFile, keyFile = pki.NodeFiles(dir, name)
	if certUsable(ca, certFile, keyFile, ips) {
		return certFile, keyFile, nil
	}
	for _, f := range []string{certFile, keyFile} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", "", fmt.Errorf("replace etcd certificate %s: %w", f, err)
		}
	}
	n, err := ca.Issue(name, ips, names)
	if err != nil {
		return "", "", fmt.Errorf("issue etcd certificate %s: %w", name, err)
	}
	if _, _, err := n.Write(dir, name); err != nil {
		return "", "", fmt.Errorf("write etcd certificate %s into %s: %w", name, dir, err)
	}
	return certFile, keyFile, nil
}

func certUsable(ca *pki.CA, certFile, keyFile string, ips []net.IP) bool {
	if _, err := os.Stat(keyFile); err != nil {
		return false
	}
	b, err := os.ReadFile(certFile)
	if err != nil {
		return false
	}
	p, _ := pem.Decode(b)
	if p == nil {
		return false
	}
	c, err := x509.ParseCertificate(p.Bytes)
	if err != nil || time.Until(c.NotAfter) < renewBefore {
		return false
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return false
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// NATSCAPath is the CA certificate that verifies the embedded NATS server of a data
// directory (the CA of the embedded etcd's; public, copy it to other hosts' agents).
func NATSCAPath(dataDir string) string {
	ca, _ := pki.CAFiles(filepath.Join(dataDir, etcdTLSDir))
	return ca
}

// natsTLS is the embedded NATS server's TLS: a server certificate for host and
// loopback, issued (and renewed like etcd's) by the same CA.
func natsTLS(dataDir, host string) (*tls.Config, error) {
	dir := filepath.Join(dataDir, etcdTLSDir)
	ca, _, err := pki.OpenCA(dir, "swarmckpt embedded etcd CA")
	if err != nil {
		return nil, fmt.Errorf("CA in %s: %w (move the directory away to make a new CA)", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("TLS directory %s: %w", dir, err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !slices.ContainsFunc(ips, ip.Equal) {
		ips = append(ips, ip)
	}
	cert, key, err := ensureCert(ca, dir, "nats-server", ips, []string{"localhost"})
	if err != nil {
		return nil, err
	}
	for _, f := range []string{cert, key} {
		if err := os.Chmod(f, 0o600); err != nil {
			return nil, fmt.Errorf("NATS TLS file: %w", err)
		}
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("NATS server certificate %s: %w", cert, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}
