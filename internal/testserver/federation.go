package testserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"parley/internal/config"
)

// TestCA is a certificate authority for federation tests.
type TestCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// File is the CA certificate as a PEM file (for federation.trusted_ca_file).
	File string
}

// NewTestCA creates a CA and writes its certificate into t.TempDir().
func NewTestCA(t testing.TB) *TestCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Parley test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &TestCA{cert: cert, key: key, File: file}
}

// Issue returns a TLS certificate for host signed by the CA.
func (ca *TestCA) Issue(t testing.TB, host string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// NewFederation starts one homeserver per name (for example "hs1.test",
// "hs2.test"). Each also serves the whole API over TLS on 127.0.0.<i+1> with
// a certificate for its name from a shared test CA, and each resolves the
// others' names to those addresses (federation.resolve), trusting the CA.
// FedAddr holds each server's TLS address. opts apply to every server.
func NewFederation(t testing.TB, names []string, opts ...Option) []*Server {
	t.Helper()
	ca := NewTestCA(t)
	listeners := make([]net.Listener, len(names))
	resolve := map[string]string{}
	for i, name := range names {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", i+1))
		if err != nil {
			l, err = net.Listen("tcp", "127.0.0.1:0")
		}
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		listeners[i] = l
		resolve[name] = l.Addr().String()
	}
	out := make([]*Server, len(names))
	for i, name := range names {
		o := append([]Option{func(c *config.Config) {
			c.ServerName = name
			c.Federation.TrustedCAFile = ca.File
			c.Federation.AllowPrivateIPs = true
			c.Federation.RequestTimeout = 10 * time.Second
			c.Federation.Resolve = map[string]string{}
			for n, addr := range resolve {
				if n != name {
					c.Federation.Resolve[n] = addr
				}
			}
		}}, opts...)
		s := New(t, o...)
		s.FedAddr = listeners[i].Addr().String()
		s.CA = ca
		s.serveFederation(t, listeners[i])
		out[i] = s
	}
	return out
}

// serveFederation serves s over TLS on l with a certificate for its name.
func (s *Server) serveFederation(t testing.TB, l net.Listener) {
	fs := httptest.NewUnstartedServer(s.HS.Handler())
	fs.Listener.Close()
	fs.Listener = l
	fs.TLS = &tls.Config{Certificates: []tls.Certificate{s.CA.Issue(t, s.Cfg.ServerName)}, MinVersion: tls.VersionTLS12}
	fs.StartTLS()
	s.fed = fs
	t.Cleanup(fs.Close)
}

// StopFederation closes the server's TLS listener: other servers can no
// longer reach it (a netsplit), while its clients still can.
func (s *Server) StopFederation() {
	if s.fed != nil {
		s.fed.CloseClientConnections()
		s.fed.Close()
		s.fed = nil
	}
}

// StartFederation listens again on FedAddr after StopFederation.
func (s *Server) StartFederation(t testing.TB) {
	t.Helper()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", s.FedAddr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen again on %s: %v", s.FedAddr, err)
	}
	s.serveFederation(t, l)
}

// Restart stops the homeserver (both listeners) and starts it again with
// the same configuration, database and addresses.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.StopFederation()
	s.Close()
	n := Start(t, s.Cfg)
	s.URL, s.HS, s.ts = n.URL, n.HS, n.ts
	n.ts = nil // s owns it now; n's cleanup is a no-op
	if s.FedAddr != "" {
		s.StartFederation(t)
	}
}
