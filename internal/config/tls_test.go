package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI writes a CA certificate and a leaf certificate (for 127.0.0.1 and
// localhost) signed by it into dir and returns their paths.
func testPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.crt", "CERTIFICATE", caDER), write("tls.crt", "CERTIFICATE", leafDER), write("tls.key", "EC PRIVATE KEY", keyDER)
}

func TestServerNamesWithPorts(t *testing.T) {
	for _, name := range []string{"localhost:8800", "127.0.0.1:8448", "[::1]:8448", "hs1", "example.org:443"} {
		cfg := Defaults()
		cfg.ServerName = name
		if err := cfg.Validate(); err != nil {
			t.Errorf("server_name %q rejected: %v", name, err)
		}
	}
	for _, name := range []string{"localhost:", "local host", "localhost:port", "@x:y"} {
		cfg := Defaults()
		cfg.ServerName = name
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "server_name") {
			t.Errorf("server_name %q: got %v, want a server_name error", name, err)
		}
	}
}

func TestHTTPSListenerNeedsLoadableKeyPair(t *testing.T) {
	dir := t.TempDir()
	_, cert, key := testPKI(t, dir)
	cfg := Defaults()
	cfg.Listen.HTTPS, cfg.Listen.TLSCert, cfg.Listen.TLSKey = "127.0.0.1:8448", cert, key
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid TLS pair rejected: %v", err)
	}
	cfg.Listen.TLSKey = filepath.Join(dir, "missing.key")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "listen.tls_key") {
		t.Fatalf("missing key: got %v, want an error naming listen.tls_key", err)
	}
}

func TestTrustedCAFile(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := testPKI(t, dir)
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()

	get := func(f Federation) error {
		tc, err := f.ClientTLSConfig()
		if err != nil {
			return err
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
		resp, err := c.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(Federation{}); err == nil {
		t.Fatal("a certificate from an unknown CA was trusted by default")
	}
	if err := get(Federation{TrustedCAFile: ca}); err != nil {
		t.Fatalf("trusted_ca_file not used: %v", err)
	}
	if err := get(Federation{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("insecure_skip_verify not used: %v", err)
	}

	cfg := Defaults()
	cfg.Federation.TrustedCAFile = filepath.Join(dir, "tls.key")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "federation.trusted_ca_file") {
		t.Fatalf("CA file without certificates: got %v, want an error naming federation.trusted_ca_file", err)
	}
}
