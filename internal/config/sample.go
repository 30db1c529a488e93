package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// SampleYAML is the commented configuration documenting every option with its
// default; config.sample.yaml at the repository root is a copy of it.
//
//go:embed sample.yaml
var SampleYAML []byte

// GenerateYAML returns the commented sample configured for a real deployment
// of serverName (see Generated): registration closed, rate limits on,
// listening on all interfaces, and sharedSecret for shared-secret registration.
func GenerateYAML(serverName, sharedSecret string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(SampleYAML, &doc); err != nil {
		return nil, fmt.Errorf("parse sample: %w", err)
	}
	gen := Generated(serverName)
	set := map[string]string{
		"server_name":                serverName,
		"listen.http":                gen.Listen.HTTP,
		"registration.enabled":       "false",
		"registration.shared_secret": sharedSecret,
		"rate_limits.enabled":        "true",
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
