package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodRegistration = `id: irc
url: http://127.0.0.1:9000
as_token: as-secret
hs_token: hs-secret
sender_localpart: ircbot
namespaces:
  users:
    - exclusive: true
      regex: '@irc_.*:example\.org'
  aliases:
    - exclusive: false
      regex: '#irc_.*'
  rooms: []
rate_limited: false
protocols: [irc]
de.sorunome.msc2409.push_ephemeral: true
org.matrix.msc3202: true
`

// writeRegistrations writes each body to its own file and returns the paths.
func writeRegistrations(t *testing.T, bodies ...string) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i, b := range bodies {
		p := filepath.Join(dir, "as"+string(rune('a'+i))+".yaml")
		if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

func TestLoadAppServices(t *testing.T) {
	cfg := Defaults()
	cfg.AppServiceConfigFiles = writeRegistrations(t, goodRegistration)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid registration rejected: %v", err)
	}
	services, err := LoadAppServices(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	as := services[0]
	if as.ID != "irc" || as.URL != "http://127.0.0.1:9000" || as.SenderLocalpart != "ircbot" || as.IsRateLimited() ||
		!as.WantsEphemeral() || len(as.Namespaces.Users) != 1 || !as.Namespaces.Users[0].Exclusive || as.Protocols[0] != "irc" {
		t.Fatalf("decoded %+v", as)
	}
	re, _ := as.Namespaces.Users[0].Compile()
	if !re.MatchString("@irc_bob:example.org") || re.MatchString("x@irc_bob:example.org") || re.MatchString("@irc_bob:example.org.evil") {
		t.Fatalf("namespace regexes must match whole user IDs")
	}

	nullURL := strings.Replace(goodRegistration, "url: http://127.0.0.1:9000", "url: null", 1)
	cfg.AppServiceConfigFiles = writeRegistrations(t, nullURL)
	if services, err := LoadAppServices(&cfg); err != nil || services[0].URL != "" {
		t.Fatalf("url: null: %v %+v", err, services)
	}
}

func TestLoadAppServicesErrors(t *testing.T) {
	replace := func(old, new string) string { return strings.Replace(goodRegistration, old, new, 1) }
	other := strings.NewReplacer("id: irc", "id: slack", "as_token: as-secret", "as_token: as2", "hs_token: hs-secret", "hs_token: hs2",
		"sender_localpart: ircbot", "sender_localpart: slackbot").Replace(goodRegistration)
	cases := []struct {
		name  string
		files []string
		want  string
	}{
		{"missing id", []string{replace("id: irc\n", "")}, "id: must be set"},
		{"missing url", []string{replace("url: http://127.0.0.1:9000\n", "")}, "url: must be set"},
		{"missing namespaces", []string{goodRegistration[:strings.Index(goodRegistration, "namespaces:")]}, "namespaces: must be set"},
		{"empty as_token", []string{replace("as_token: as-secret", "as_token: ''")}, "as_token: must not be empty"},
		{"same tokens", []string{replace("as_token: as-secret", "as_token: hs-secret")}, "must differ"},
		{"bad url", []string{replace("http://127.0.0.1:9000", "ftp://x")}, "url:"},
		{"bad localpart", []string{replace("sender_localpart: ircbot", "sender_localpart: 'IRC bot'")}, "sender_localpart"},
		{"bad regex", []string{replace(`'@irc_.*:example\.org'`, `'@irc_(:'`)}, "namespaces.users[0].regex"},
		{"namespace without exclusive", []string{replace("    - exclusive: false\n", "    - ")}, "needs regex and exclusive"},
		{"wrong type", []string{replace("rate_limited: false", "rate_limited: sometimes")}, "rate_limited"},
		{"missing file", []string{"/nonexistent/as.yaml"}, "no such file"},
		{"duplicate id", []string{goodRegistration, strings.Replace(other, "id: slack", "id: irc", 1)}, "id: the same as in"},
		{"duplicate as_token", []string{goodRegistration, strings.Replace(other, "as_token: as2", "as_token: as-secret", 1)}, "as_token: the same as in"},
		{"duplicate hs_token", []string{goodRegistration, strings.Replace(other, "hs_token: hs2", "hs_token: hs-secret", 1)}, "hs_token: the same as in"},
		{"duplicate sender", []string{goodRegistration, strings.Replace(other, "sender_localpart: slackbot", "sender_localpart: ircbot", 1)}, "same sender_localpart"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.AppServiceConfigFiles = c.files
			if !strings.HasPrefix(c.files[0], "/nonexistent") {
				cfg.AppServiceConfigFiles = writeRegistrations(t, c.files...)
			}
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "app_service_config_files") {
				t.Fatalf("got %v, want an error naming app_service_config_files and %q", err, c.want)
			}
		})
	}
}
