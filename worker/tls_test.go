package worker_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/pki"
)

// testPKI is a CA in dir and a loopback certificate per node name.
type testPKI struct {
	dir    string
	ca     *pki.CA
	caFile string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca, err := pki.NewCA("test cluster")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile, _, err := ca.WriteCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{dir: dir, ca: ca, caFile: caFile}
}

func (p *testPKI) files(t *testing.T, node string) worker.TLSFiles {
	t.Helper()
	n, err := p.ca.Issue(node, []net.IP{net.ParseIP("127.0.0.1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := n.Write(p.dir, node)
	if err != nil {
		t.Fatal(err)
	}
	return worker.TLSFiles{CA: p.caFile, Cert: cert, Key: key}
}

func (p *testPKI) load(t *testing.T, node string) *worker.TLS {
	t.Helper()
	tl, err := worker.LoadTLS(p.files(t, node))
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

func (p *testPKI) client(t *testing.T) *tls.Config {
	t.Helper()
	pool, err := worker.LoadCA(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	return worker.ClientTLS(pool)
}

func newTLSNode(t *testing.T, p *testPKI, name string) *fakeNode {
	t.Helper()
	tl := p.load(t, name)
	return newFakeNodeConfig(t, name, dump.Fake{}, func(c *worker.Config) { c.TLS, c.Token = tl, "s3cret" })
}

// Workers with TLS serve HTTPS and stream sets to each other over it (Send and
// DumpTo), verified by the cluster's CA; a client with the CA and the token drives them.
func TestTLSWorkersMoveSetsOverHTTPS(t *testing.T) {
	p := newTestPKI(t)
	a, b := newTLSNode(t, p, "a"), newTLSNode(t, p, "b")
	ctx := context.Background()
	a.add("web", 7)
	a.add("api", 8)
	ca := &worker.Client{Addr: a.w.Addr(), Token: "s3cret", TLS: p.client(t)}
	if _, err := ca.DumpTo(ctx, "web", "mig.web", b.w.Addr(), false); err != nil {
		t.Fatalf("DumpTo between TLS workers: %v", err)
	}
	if _, err := ca.Dump(ctx, "api", "s.api", false); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Send(ctx, "s.api", b.w.Addr()); err != nil {
		t.Fatalf("Send between TLS workers: %v", err)
	}
	for _, set := range []string{"mig.web", "s.api"} {
		if _, err := imageset.Verify(filepath.Join(b.w.SetsDir(), set)); err != nil {
			t.Fatalf("set %s on the target: %v", set, err)
		}
	}
	// Plain HTTP reaches nothing: a raw request gets the server's TLS refusal.
	resp, err := http.Get("http://" + a.w.Addr() + "/v1/info")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("a TLS worker answered plain HTTP")
		}
	}
}

// A client and a worker that disagree on TLS are told so; a client that trusts
// another CA is refused by the certificate check.
func TestTLSMismatchesSayWhatToDo(t *testing.T) {
	p := newTestPKI(t)
	tlsNode, plain := newTLSNode(t, p, "a"), newFakeNodeConfig(t, "b", dump.Fake{}, func(c *worker.Config) { c.Token = "s3cret" })
	ctx := context.Background()
	cl := &worker.Client{Addr: tlsNode.w.Addr(), Token: "s3cret"}
	_, err := cl.Info(ctx)
	if err == nil || !strings.Contains(err.Error(), "runs with TLS") {
		t.Fatalf("plain client to a TLS worker: %v; want it told the worker runs with TLS", err)
	}
	cl.TLS = p.client(t) // given the CA afterwards, the same client gets through
	if _, err := cl.Info(ctx); err != nil {
		t.Fatalf("the client once given the CA: %v", err)
	}
	_, err = (&worker.Client{Addr: plain.w.Addr(), Token: "s3cret", TLS: p.client(t)}).Info(ctx)
	if err == nil || !strings.Contains(err.Error(), "does not run with TLS") {
		t.Fatalf("TLS client to a plain worker: %v; want it told the worker does not run with TLS", err)
	}
	other := newTestPKI(t)
	_, err = (&worker.Client{Addr: tlsNode.w.Addr(), Token: "s3cret", TLS: other.client(t)}).Info(ctx)
	var unknown x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &unknown) {
		t.Fatalf("client trusting another CA: %v; want an unknown-authority error", err)
	}
	// A TLS worker sending to a plain one.
	tlsNode.add("web", 7)
	if _, err := tlsNode.w.Dump(ctx, "web", "s.web", false); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsNode.w.Send(ctx, "s.web", plain.w.Addr()); err == nil || !strings.Contains(err.Error(), "does not run with TLS") {
		t.Fatalf("TLS worker sending to a plain one: %v", err)
	}
	if entries, _ := os.ReadDir(plain.w.SetsDir()); len(entries) != 0 {
		t.Fatalf("the plain worker kept %v", entries)
	}
}

// With TLS, DumpInto still works between TLS workers: its page-server request and
// live stream go over HTTPS (CRIU's own page-server connection gets CRIU's TLS on real
// nodes: dump.TLS, lab test TestMemhogMigratedBetweenTLSWorkers), and post-copy stays
// available.
func TestTLSKeepsThePageServerModes(t *testing.T) {
	p := newTestPKI(t)
	a, b := newTLSNode(t, p, "a"), newTLSNode(t, p, "b")
	ctx := context.Background()
	a.add("web", 7)
	c := &worker.Client{Addr: a.w.Addr(), Token: "s3cret", TLS: p.client(t)}
	if _, err := c.DumpInto(ctx, "web", "mig.web", b.w.Addr()); err != nil {
		t.Fatalf("DumpInto between TLS workers: %v", err)
	}
	if err := b.w.AwaitDigests(ctx, "mig.web"); err != nil {
		t.Fatal(err)
	}
	if _, err := imageset.Verify(filepath.Join(b.w.SetsDir(), "mig.web")); err != nil {
		t.Fatalf("set on the target: %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil || !info.PostCopy.OK {
		t.Fatalf("Info with TLS: %+v %v; want post-copy available", info.PostCopy, err)
	}
}

func TestLoadTLSRefusesBadFiles(t *testing.T) {
	p := newTestPKI(t)
	good := p.files(t, "n")
	if _, err := worker.LoadTLS(good); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(good.Key, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := worker.LoadTLS(good); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("readable key: %v", err)
	}
	os.Chmod(good.Key, 0o600)
	other := newTestPKI(t)
	if _, err := worker.LoadTLS(worker.TLSFiles{CA: other.caFile, Cert: good.Cert, Key: good.Key}); err == nil || !strings.Contains(err.Error(), "not valid") {
		t.Fatalf("certificate of another CA: %v", err)
	}
	if _, err := worker.LoadTLS(worker.TLSFiles{CA: p.caFile, Cert: good.Cert}); !errors.Is(err, worker.ErrTLS) {
		t.Fatalf("no key: %v", err)
	}
	if _, err := worker.LoadTLS(worker.TLSFiles{CA: good.Key, Cert: good.Cert, Key: good.Key}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a key as CA: %v", err)
	}
}

// A renewed certificate is served without a restart: a connection made after the
// files change gets the new certificate, while a stream already open on the old one
// runs to its end. A half-written pair (new key, old certificate) is not served.
func TestTLSCertificateRotation(t *testing.T) {
	p := newTestPKI(t)
	f := p.files(t, "a")
	tl, err := worker.LoadTLS(f)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tl.Server)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		_, _ = w.Write([]byte("first,"))
		w.(http.Flusher).Flush()
		<-release // the stream is in flight while the certificate is rotated
		_, _ = w.Write([]byte("last"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	newClient := func() *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: p.client(t), DisableKeepAlives: true}}
	}
	serial := func(r *http.Response) string { return r.TLS.PeerCertificates[0].SerialNumber.String() }
	url := "https://" + ln.Addr().String()

	inflight, err := newClient().Get(url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer inflight.Body.Close()
	first := make([]byte, len("first,"))
	if _, err := io.ReadFull(inflight.Body, first); err != nil {
		t.Fatal(err)
	}
	oldSerial := serial(inflight)

	// Rotate: a new pair from the same CA, renamed over the files, key first.
	n, err := p.ca.Issue("a", []net.IP{net.ParseIP("127.0.0.1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, nk, err := n.Write(t.TempDir(), "a-new")
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(nk, later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(nk, f.Key); err != nil {
		t.Fatal(err)
	}
	// New key, old certificate: not a pair; the old one is still served.
	r, err := newClient().Get(url + "/")
	if err != nil {
		t.Fatalf("a connection while the files were half-rotated: %v", err)
	}
	r.Body.Close()
	if serial(r) != oldSerial {
		t.Fatal("a mismatched certificate and key were served")
	}
	if err := os.Chtimes(nc, later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(nc, f.Cert); err != nil {
		t.Fatal(err)
	}
	r, err = newClient().Get(url + "/")
	if err != nil {
		t.Fatalf("a connection after the rotation: %v", err)
	}
	r.Body.Close()
	if serial(r) == oldSerial {
		t.Fatal("a connection made after the rotation got the old certificate")
	}
	// The stream begun before the rotation completes, on its old certificate.
	close(release)
	rest, err := io.ReadAll(inflight.Body)
	if err != nil || string(first)+string(rest) != "first,last" {
		t.Fatalf("the stream in flight: %q %v; want it complete", string(first)+string(rest), err)
	}
	if serial(inflight) != oldSerial {
		t.Fatal("the stream in flight changed certificate")
	}
}
