package worker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/dump"
)

// Encryption of the worker's endpoint.
//
// The token (auth.go) says who may ask; it does not hide what crosses the network, and
// image sets are process memory, secrets included. With Config.TLS set, the endpoint
// serves HTTPS (TLS 1.3) with the node's certificate, and this worker's own requests to
// other workers (Send, DumpTo) go over HTTPS, verified against the cluster's CA: every
// worker of a cluster must then run with TLS. Clients (node agent, CLI) verify the
// worker against the same CA (Client.TLS). The CRIU page servers of DumpInto and of
// post-copy speak CRIU's own protocol, outside this endpoint: with TLS set, CRIU runs
// them with its own TLS (--tls, the same CA, certificate and key: dump.TLS), so those
// pages are encrypted and both ends authenticated too.

// TLSFiles names the PEM files of a worker's TLS setup: the cluster's CA certificate
// (the other workers' certificates must be signed by it), this node's certificate (its
// IP addresses or names as SANs: the addresses others dial) and its private key (mode
// 0600). They are the files CRIU's page-server connections use too, hence dump.TLS.
type TLSFiles = dump.TLS

// TLS is a loaded TLSFiles: the endpoint's server side and the client side used to
// reach the other workers.
type TLS struct {
	Server *tls.Config
	Client *tls.Config
	// Files are the PEM files (also given to the node's CRIU).
	Files TLSFiles
}

// client is the client side, nil without TLS (t nil).
func (t *TLS) client() *tls.Config {
	if t == nil {
		return nil
	}
	return t.Client
}

// ErrTLS: the worker's TLS files are missing, unreadable or do not fit together.
var ErrTLS = errors.New("worker: TLS setup")

// LoadTLS reads f. A key file that other users can read is refused.
func LoadTLS(f TLSFiles) (*TLS, error) {
	if f.CA == "" || f.Cert == "" || f.Key == "" {
		return nil, fmt.Errorf("%w: give the CA, the node's certificate and its key (--tls-ca, --tls-cert, --tls-key), all three", ErrTLS)
	}
	if fi, err := os.Stat(f.Key); err != nil {
		return nil, fmt.Errorf("%w: key: %w", ErrTLS, err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: key file %s is readable by other users (mode %v): chmod 600 %s", ErrTLS, f.Key, fi.Mode().Perm(), f.Key)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate %s with key %s: %w", ErrTLS, f.Cert, f.Key, err)
	}
	pool, err := LoadCA(f.CA)
	if err != nil {
		return nil, err
	}
	if leaf, err := x509.ParseCertificate(pair.Certificate[0]); err == nil {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return nil, fmt.Errorf("%w: certificate %s is not valid for a server under CA %s: %w", ErrTLS, f.Cert, f.CA, err)
		}
		if len(leaf.IPAddresses) == 0 && len(leaf.DNSNames) == 0 {
			return nil, fmt.Errorf("%w: certificate %s names no address (SAN): other workers could not verify it; add the node's IP addresses", ErrTLS, f.Cert)
		}
	}
	r := &certReloader{cert: f.Cert, key: f.Key, pair: &pair}
	r.certStat, r.keyStat = fileStamp(f.Cert), fileStamp(f.Key)
	return &TLS{
		Server: &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: r.get},
		Client: ClientTLS(pool),
		Files:  f,
	}, nil
}

// Certificate rotation. The server side reads its certificate and key again on the
// first handshake after either file changed (size or modification time), so a renewed
// certificate is served without restarting the worker: connections made after the
// change get the new one, connections (and image streams) already open keep theirs
// until they end. A pair that does not load (e.g. the certificate written, the key not
// yet) is not used: the previous pair is served until the files fit together again.
// CRIU's page-server TLS reads the files at each run. The CA is not reloaded.
type certReloader struct {
	cert, key string

	mu                sync.Mutex
	pair              *tls.Certificate
	certStat, keyStat string // fileStamp of the files the pair was read from
}

// fileStamp identifies a version of a file: size and modification time ("" if absent).
func fileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano())
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cs, ks := fileStamp(r.cert), fileStamp(r.key)
	r.mu.Lock()
	defer r.mu.Unlock()
	if cs == r.certStat && ks == r.keyStat {
		return r.pair, nil
	}
	if fi, err := os.Stat(r.key); err != nil || fi.Mode().Perm()&0o077 != 0 {
		return r.pair, nil // a key others can read is not taken (LoadTLS's rule)
	}
	pair, err := tls.LoadX509KeyPair(r.cert, r.key)
	if err != nil {
		return r.pair, nil // half-written: keep serving the previous pair, retry next time
	}
	r.pair, r.certStat, r.keyStat = &pair, cs, ks
	return r.pair, nil
}

// LoadCA reads a PEM CA file into a pool.
func LoadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: CA: %w", ErrTLS, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrTLS, path)
	}
	return pool, nil
}

// ClientTLS is the client side that verifies workers against the CA pool.
func ClientTLS(pool *x509.CertPool) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
}

// peer is how a worker (or a Client) reaches workers: plain HTTP, or HTTPS verified
// by a CA.
type peer struct {
	scheme string
	hc     *http.Client
	token  string
}

// newPeer returns the peer for conf (nil: plain HTTP) and token. Streams of image sets
// may run for minutes: no overall timeout (only the transport's own on connecting and
// on the TLS handshake).
func newPeer(conf *tls.Config, token string) peer {
	if conf == nil {
		return peer{scheme: "http", hc: http.DefaultClient, token: token}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = conf.Clone()
	tr.ForceAttemptHTTP2 = false // one TCP stream per set, as over HTTP
	tr.TLSHandshakeTimeout = 10 * time.Second
	return peer{scheme: "https", hc: &http.Client{Transport: tr}, token: token}
}

func (p peer) url(addr, path string) string { return p.scheme + "://" + addr + path }

// do sends req with the token. A worker and its caller that disagree on TLS get an
// error that says so.
func (p peer) do(req *http.Request) (*http.Response, error) {
	authorize(req, p.token)
	resp, err := p.hc.Do(req)
	if err != nil {
		if p.scheme == "https" && (strings.Contains(err.Error(), "does not look like a TLS handshake") ||
			strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")) {
			return nil, fmt.Errorf("%w (the worker at %s does not run with TLS: every worker of a cluster needs --tls-ca, --tls-cert and --tls-key, or none)", err, req.URL.Host)
		}
		return nil, err
	}
	if p.scheme == "http" && resp.StatusCode == http.StatusBadRequest {
		if b, _ := io.ReadAll(io.LimitReader(resp.Body, 512)); strings.Contains(string(b), "HTTPS server") {
			resp.Body.Close()
			return nil, fmt.Errorf("the worker at %s runs with TLS: give this side its CA (agent: --worker-tls-ca; worker: --tls-ca, --tls-cert, --tls-key)", req.URL.Host)
		} else {
			resp.Body = readCloser{io.MultiReader(strings.NewReader(string(b)), resp.Body), resp.Body}
		}
	}
	return resp, nil
}

// readCloser reads from Reader and closes Closer (a body partly read ahead).
type readCloser struct {
	io.Reader
	io.Closer
}
