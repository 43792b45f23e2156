package pki_test

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/pki"
)

func TestIssuedCertificateVerifiesForItsAddressesOnly(t *testing.T) {
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caCert, caKey, err := ca.WriteCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := pki.LoadCA(caCert, caKey)
	if err != nil || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("CA read back: %v", err)
	}
	n, err := again.Issue("n1", []net.IP{net.ParseIP("10.0.0.11")}, []string{"n1.lab"})
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := n.Write(dir, "n1")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{caKey, 0o600}, {key, 0o600}, {cert, 0o644}, {caCert, 0o644}} {
		fi, err := os.Stat(f.path)
		if err != nil || fi.Mode().Perm() != f.mode {
			t.Fatalf("%s: mode %v %v, want %v", f.path, fi.Mode().Perm(), err, f.mode)
		}
	}
	leaf, err := x509.ParseCertificate(n.DER)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for host, ok := range map[string]bool{"10.0.0.11": true, "n1.lab": true, "10.0.0.12": false, "127.0.0.1": false} {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if (err == nil) != ok {
			t.Errorf("certificate for %s: verify error %v, want ok=%v", host, err, ok)
		}
	}
	// Nothing is overwritten: a second certificate for n1 is refused and the key kept.
	before, _ := os.ReadFile(key)
	if _, _, err := n.Write(dir, "n1"); err == nil {
		t.Fatal("a second write of n1's certificate succeeded")
	}
	if after, _ := os.ReadFile(key); string(after) != string(before) {
		t.Fatal("n1's key changed")
	}
	if _, err := ca.Issue("n2", nil, nil); err == nil {
		t.Fatal("a certificate without addresses was issued")
	}
}

func TestOpenCAMakesOnceThenLoads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	first, made, err := pki.OpenCA(dir, "c")
	if err != nil || !made {
		t.Fatalf("first OpenCA: made %v, %v", made, err)
	}
	again, made, err := pki.OpenCA(dir, "c")
	if err != nil || made || !again.Cert.Equal(first.Cert) {
		t.Fatalf("second OpenCA: made %v, same CA %v, %v", made, err == nil && again.Cert.Equal(first.Cert), err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("CA directory: %v %v, want mode 0700", fi.Mode().Perm(), err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca-key.pem"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pki.OpenCA(dir, "c"); err == nil {
		t.Fatal("a damaged CA key was accepted (or replaced)")
	}
}
