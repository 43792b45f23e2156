package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Validity of the certificates made here.
const Validity = 5 * 365 * 24 * time.Hour

// CA is a certificate authority that signs node certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	DER  []byte
}

// NewCA makes a self-signed CA named name.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, DER: der}, nil
}

// LoadCA reads a CA written by WriteCA.
func LoadCA(certFile, keyFile string) (*CA, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, fmt.Errorf("CA %s / %s: not PEM", certFile, keyFile)
	}
	cert, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", certFile, err)
	}
	key, err := x509.ParseECPrivateKey(kp.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", keyFile, err)
	}
	return &CA{Cert: cert, Key: key, DER: cp.Bytes}, nil
}

// CAFiles are the CA's certificate and key in dir (ca.pem, ca-key.pem).
func CAFiles(dir string) (cert, key string) {
	return filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
}

// NodeFiles are node's certificate and key in dir (<node>.pem, <node>-key.pem).
func NodeFiles(dir, node string) (cert, key string) {
	return filepath.Join(dir, node+".pem"), filepath.Join(dir, node+"-key.pem")
}

// OpenCA loads the CA in dir (CAFiles), making it (named name) if dir holds
// none; made says which. dir is created 0700.
func OpenCA(dir, name string) (ca *CA, made bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	ca, err = LoadCA(CAFiles(dir))
	if !errors.Is(err, os.ErrNotExist) {
		return ca, false, err
	}
	if ca, err = NewCA(name); err != nil {
		return nil, false, err
	}
	if _, _, err := ca.WriteCA(dir); err != nil {
		return nil, false, fmt.Errorf("write the CA into %s: %w", dir, err)
	}
	return ca, true, nil
}

// Node is a node's certificate and key.
type Node struct {
	DER []byte
	Key *ecdsa.PrivateKey
}

// Issue signs a server (and client) certificate for node, valid for the given IP
// addresses and DNS names (at least one).
func (ca *CA) Issue(node string, ips []net.IP, names []string) (*Node, error) {
	if len(ips) == 0 && len(names) == 0 {
		return nil, errors.New("a node certificate needs the node's addresses (IPs or names) that others dial")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: node},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  ips,
		DNSNames:     names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, err
	}
	return &Node{DER: der, Key: key}, nil
}

// WriteCA writes the CA's certificate (0644) and key (0600) into dir (CAFiles), and
// returns their paths.
func (ca *CA) WriteCA(dir string) (certFile, keyFile string, err error) {
	certFile, keyFile = CAFiles(dir)
	return certFile, keyFile, writePair(certFile, ca.DER, keyFile, ca.Key)
}

// Write writes the node's certificate (0644) and key (0600) into dir (NodeFiles of
// name), and returns their paths.
func (n *Node) Write(dir, name string) (certFile, keyFile string, err error) {
	certFile, keyFile = NodeFiles(dir, name)
	return certFile, keyFile, writePair(certFile, n.DER, keyFile, n.Key)
}

func writePair(certFile string, der []byte, keyFile string, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeNew(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return writeNew(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeNew writes a file that must not exist yet (no key is overwritten by mistake).
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}
