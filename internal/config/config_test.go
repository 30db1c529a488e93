package config

import (
	"strings"
	"testing"
)

func TestDefaultsValid(t *testing.T) {
	cfg := Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if !cfg.Registration.Enabled || cfg.RateLimits.Enabled || cfg.Listen.HTTP != "127.0.0.1:8008" || cfg.ServerName != "localhost" {
		t.Fatalf("no-config defaults changed: %+v", cfg)
	}
	gen := Generated("example.org")
	if err := gen.Validate(); err != nil {
		t.Fatalf("generated invalid: %v", err)
	}
	if gen.Registration.Enabled || !gen.RateLimits.Enabled {
		t.Fatalf("generated config must close registration and enable rate limits: %+v", gen)
	}
}

func TestParseRejectsUnknownAndBadKeys(t *testing.T) {
	cases := []struct {
		yaml string
		want string
	}{
		{"server_name: example.org\nbogus: 1\n", "bogus"},
		{"server_name: \"\"\n", "server_name"},
		{"database:\n  url: mysql://x\n", "database.url"},
		{"listen:\n  http: nonsense\n", "listen.http"},
		{"rooms:\n  default_version: \"99\"\n", "rooms.default_version"},
		{"log:\n  level: loud\n", "log.level"},
		{"media:\n  max_upload_size: 0\n", "media.max_upload_size"},
		{"media:\n  max_pending_uploads: 0\n", "media.max_pending_uploads"},
		{"media:\n  thumbnail_sizes:\n    - {width: 32, height: 32, method: stretch}\n", "media.thumbnail_sizes[0]"},
		{"media:\n  url_preview:\n    ip_range_denylist: [\"10.0.0.0/33\"]\n", "media.url_preview.ip_range_denylist"},
		{"media:\n  url_preview:\n    enabled: true\n    timeout: 0s\n", "media.url_preview"},
	}
	for _, c := range cases {
		cfg := Defaults()
		err := Parse([]byte(c.yaml), &cfg)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error naming %s", c.yaml, err, c.want)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	cfg := Generated("example.org")
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back := Defaults()
	if err := Parse(b, &back); err != nil {
		t.Fatalf("generated config does not parse: %v\n%s", err, b)
	}
	if back.ServerName != "example.org" || back.Registration.Enabled {
		t.Fatalf("round trip lost values: %+v", back)
	}
}

func TestMediaKeys(t *testing.T) {
	cfg := Defaults()
	err := Parse([]byte("media:\n  legacy_cutoff: 2025-01-02T03:04:05Z\n  thumbnail_sizes:\n    - {width: 10, height: 20, method: crop}\n  url_preview:\n    enabled: true\n    ip_range_allowlist: [127.0.0.1, \"::1/128\"]\n"), &cfg)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Media
	if m.LegacyCutoff.Year() != 2025 || len(m.ThumbnailSizes) != 1 || m.ThumbnailSizes[0] != (ThumbnailSize{10, 20, "crop"}) ||
		!m.URLPreview.Enabled || len(m.URLPreview.IPRangeAllowlist) != 2 || len(m.URLPreview.IPRangeDenylist) != len(DefaultIPRangeDenylist) {
		t.Fatalf("media keys not applied: %+v", m)
	}
}
