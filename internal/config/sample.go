package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"net"
	"strings"

	"gopkg.in/yaml.v3"
)

// SampleYAML is the commented configuration documenting every option with its
// default; config.sample.yaml at the repository root is a copy of it.
//
//go:embed sample.yaml
var SampleYAML []byte

// GenerateYAML returns the commented sample configured for serverName with
// sharedSecret for shared-secret registration. A real server name gets a
// deployment setup (see Generated): registration closed, rate limits on,
// listening on all interfaces. A local name (IsLocalName) keeps the
// development defaults: open registration, no rate limits, loopback only.
func GenerateYAML(serverName, sharedSecret string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(SampleYAML, &doc); err != nil {
		return nil, fmt.Errorf("parse sample: %w", err)
	}
	gen := Generated(serverName)
	if IsLocalName(serverName) {
		gen = Defaults()
	}
	set := map[string]string{
		"server_name":                serverName,
		"listen.http":                gen.Listen.HTTP,
		"registration.enabled":       fmt.Sprint(gen.Registration.Enabled),
		"registration.shared_secret": sharedSecret,
		"rate_limits.enabled":        fmt.Sprint(gen.RateLimits.Enabled),
	}
	for path, v := range set {
		n := lookup(&doc, path)
		if n == nil {
			return nil, fmt.Errorf("sample has no %s", path)
		}
		n.Value = v
		n.Style = 0
		if path == "registration.shared_secret" || path == "server_name" {
			n.Style = yaml.DoubleQuotedStyle
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	// Check the result loads exactly as intended.
	cfg := Defaults()
	if err := Parse(out, &cfg); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return out, nil
}

// IsLocalName says whether serverName can only be a development server:
// localhost, a loopback address, or a name under .localhost, .test,
// .example or .invalid (RFC 2606/6761), with or without a port.
func IsLocalName(serverName string) bool {
	host := serverName
	if h, _, err := net.SplitHostPort(serverName); err == nil {
		host = h
	}
	host = strings.Trim(strings.ToLower(host), "[]")
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	if host == "localhost" {
		return true
	}
	for _, tld := range []string{".localhost", ".test", ".example", ".invalid"} {
		if strings.HasSuffix(host, tld) {
			return true
		}
	}
	return false
}

// lookup finds the value node at a dotted key path.
func lookup(doc *yaml.Node, path string) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, key := range strings.Split(path, ".") {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}
