package config

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestSampleMatchesDefaults keeps config.sample.yaml complete and true: it
// parses with unknown keys rejected, its values are exactly Defaults(), and
// every option of Config appears in it.
func TestSampleMatchesDefaults(t *testing.T) {
	root, err := os.ReadFile("../../config.sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, SampleYAML) {
		t.Fatal("config.sample.yaml differs from internal/config/sample.yaml; copy one over the other")
	}
	var cfg Config // zero, so that a key missing from the sample shows up as a difference
	if err := Parse(SampleYAML, &cfg); err != nil {
		t.Fatalf("sample does not parse: %v", err)
	}
	// Compared as YAML, so that an empty list and a nil one are the same.
	got, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want, err := yaml.Marshal(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(g) && i < len(w); i++ {
			if g[i] != w[i] {
				t.Fatalf("sample values differ from Defaults() at line %d of the marshalled config:\nsample   %s\ndefaults %s", i+1, g[i], w[i])
			}
		}
		t.Fatalf("sample values differ from Defaults():\n%s\nvs\n%s", got, want)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(SampleYAML, &doc); err != nil {
		t.Fatal(err)
	}
	for _, path := range keyPaths(reflect.TypeOf(Config{}), "") {
		if lookup(&doc, path) == nil {
			t.Errorf("sample does not document %s", path)
		}
	}
}

// keyPaths lists every leaf key of a config struct type as a dotted path.
func keyPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Time{}) {
			out = append(out, keyPaths(f.Type, prefix+name+".")...)
		} else {
			out = append(out, prefix+name)
		}
	}
	return out
}

func TestGenerateYAML(t *testing.T) {
	b, err := GenerateYAML("example.org", "sekrit")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	if err := Parse(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "example.org" || cfg.Registration.Enabled || !cfg.RateLimits.Enabled ||
		cfg.Registration.SharedSecret != "sekrit" || cfg.Listen.HTTP != "0.0.0.0:8008" {
		t.Fatalf("generated: %+v", cfg)
	}
	if !bytes.Contains(b, []byte("# The server name")) {
		t.Fatalf("comments lost:\n%s", b)
	}
	// A development name keeps registration open and rate limits off.
	b, err = GenerateYAML("localhost:8448", "s")
	if err != nil {
		t.Fatal(err)
	}
	dev := Defaults()
	if err := Parse(b, &dev); err != nil {
		t.Fatal(err)
	}
	if !dev.Registration.Enabled || dev.RateLimits.Enabled || dev.Listen.HTTP != "127.0.0.1:8008" || dev.ServerName != "localhost:8448" {
		t.Fatalf("local generated: %+v", dev)
	}
}

func TestIsLocalName(t *testing.T) {
	for name, want := range map[string]bool{
		"localhost": true, "localhost:8448": true, "127.0.0.1": true, "127.0.0.1:8800": true, "[::1]:8448": true,
		"hs1.test": true, "a.localhost": true, "example.org": false, "matrix.example.org:443": false, "10.0.0.1": false,
	} {
		if got := IsLocalName(name); got != want {
			t.Errorf("IsLocalName(%q) = %v", name, got)
		}
	}
}

func TestValidationNamesKey(t *testing.T) {
	cases := map[string]string{
		"registration:\n  bcrypt_cost: 3\n":                            "registration.bcrypt_cost",
		"registration:\n  min_password_length: -1\n":                   "registration.min_password_length",
		"registration:\n  access_token_lifetime: -5m\n":                "registration.access_token_lifetime",
		"registration:\n  enabled: false\n  require_token: true\n":     "registration.require_token",
		"listen:\n  max_request_bytes: 10\n":                           "listen.max_request_bytes",
		"rate_limits:\n  enabled: true\n  login:\n    per_second: 0\n": "rate_limits.login",
		"registration:\n  bcrypt_cost: lots\n":                         "bcrypt_cost",
		"database:\n  max_open_conns: 0\n":                             "database.max_open_conns",
	}
	for in, want := range cases {
		cfg := Defaults()
		err := Parse([]byte(in), &cfg)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error naming %s", in, err, want)
		}
	}
}
