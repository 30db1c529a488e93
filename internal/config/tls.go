package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ClientTLSConfig is the TLS configuration for outbound federation requests:
// the system roots plus the PEM certificates in TrustedCAFile (for test
// networks such as SyTest's and Complement's private CAs), or no verification
// at all when InsecureSkipVerify is set. With neither set it returns nil, which
// means Go's defaults.
func (f Federation) ClientTLSConfig() (*tls.Config, error) {
	if f.InsecureSkipVerify {
		return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, nil //nolint:gosec // tests only, by config
	}
	if f.TrustedCAFile == "" {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(f.TrustedCAFile)
	if err != nil {
		return nil, fmt.Errorf("federation.trusted_ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("federation.trusted_ca_file: %s holds no PEM certificate", f.TrustedCAFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// validateTLS checks that the TLS files named in the config can be loaded.
func (c *Config) validateTLS() error {
	if c.Listen.HTTPS != "" {
		if _, err := tls.LoadX509KeyPair(c.Listen.TLSCert, c.Listen.TLSKey); err != nil {
			return fmt.Errorf("listen.tls_cert, listen.tls_key: %w", err)
		}
	}
	if c.Federation.InsecureSkipVerify && c.Federation.TrustedCAFile != "" {
		return errors.New("federation.trusted_ca_file: has no effect with federation.insecure_skip_verify")
	}
	if _, err := c.Federation.ClientTLSConfig(); err != nil {
		return err
	}
	return nil
}
