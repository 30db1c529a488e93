package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"

	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/id"
)

// AppService is one application service registration file (application
// service API, "Registration"), as written by bridges and bots: the same
// YAML that Synapse and Dendrite read.
type AppService struct {
	// ID names the application service; it never changes.
	ID string `yaml:"id"`
	// URL is where the homeserver reaches the service; empty (null in the
	// file) when the service wants no traffic: no transactions, no queries.
	URL string `yaml:"url"`
	// ASToken authenticates the service to the homeserver.
	ASToken string `yaml:"as_token"`
	// HSToken authenticates the homeserver to the service.
	HSToken string `yaml:"hs_token"`
	// SenderLocalpart is the localpart of the service's own user.
	SenderLocalpart string       `yaml:"sender_localpart"`
	Namespaces      ASNamespaces `yaml:"namespaces"`
	// RateLimited says whether the service's masqueraded users are rate
	// limited (its sender never is); unset means true, as in Synapse.
	RateLimited *bool    `yaml:"rate_limited"`
	Protocols   []string `yaml:"protocols"`
	// ReceiveEphemeral asks for typing notifications, receipts and presence
	// in transactions (spec v1.13); MSC2409PushEphemeral is its unstable name.
	ReceiveEphemeral     bool `yaml:"receive_ephemeral"`
	MSC2409PushEphemeral bool `yaml:"de.sorunome.msc2409.push_ephemeral"`
}

// ASNamespaces are the user IDs, room aliases and room IDs a service is
// interested in.
type ASNamespaces struct {
	Users   []ASNamespace `yaml:"users"`
	Aliases []ASNamespace `yaml:"aliases"`
	Rooms   []ASNamespace `yaml:"rooms"`
}

// ASNamespace is one regular expression of a namespace. Exclusive
// namespaces are reserved: nobody else may register such users or create
// such aliases.
type ASNamespace struct {
	Regex     string `yaml:"regex"`
	Exclusive bool   `yaml:"exclusive"`
}

// UnmarshalYAML requires both keys of a namespace, as the spec does.
func (n *ASNamespace) UnmarshalYAML(v *yaml.Node) error {
	var raw struct {
		Regex     *string `yaml:"regex"`
		Exclusive *bool   `yaml:"exclusive"`
	}
	if err := v.Decode(&raw); err != nil {
		return err
	}
	if raw.Regex == nil || raw.Exclusive == nil {
		return fmt.Errorf("line %d: a namespace needs regex and exclusive", v.Line)
	}
	n.Regex, n.Exclusive = *raw.Regex, *raw.Exclusive
	return nil
}

// Compile returns the namespace's regular expression anchored at both ends:
// a value belongs to the namespace when the whole of it matches, as Synapse
// matches registration regexes.
func (n ASNamespace) Compile() (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + n.Regex + `)$`)
}

// IsRateLimited is RateLimited with its default.
func (a *AppService) IsRateLimited() bool { return a.RateLimited == nil || *a.RateLimited }

// WantsEphemeral says whether the service asked for ephemeral data.
func (a *AppService) WantsEphemeral() bool { return a.ReceiveEphemeral || a.MSC2409PushEphemeral }

// appServiceRequired are the registration keys the spec requires (url may be null).
var appServiceRequired = []string{"id", "url", "as_token", "hs_token", "sender_localpart", "namespaces"}

// LoadAppServices reads and checks the registration files of
// app_service_config_files. Every error names the file and the key at fault.
func LoadAppServices(c *Config) ([]AppService, error) {
	out := make([]AppService, 0, len(c.AppServiceConfigFiles))
	ids, asTokens, hsTokens := map[string]string{}, map[string]string{}, map[string]string{}
	for i, path := range c.AppServiceConfigFiles {
		where := fmt.Sprintf("app_service_config_files[%d] (%s)", i, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		as, err := parseAppService(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		for _, u := range []struct {
			seen  map[string]string
			key   string
			value string
		}{{ids, "id", as.ID}, {asTokens, "as_token", as.ASToken}, {hsTokens, "hs_token", as.HSToken}} {
			if other, dup := u.seen[u.value]; dup {
				return nil, fmt.Errorf("%s: %s: the same as in %s", where, u.key, other)
			}
			u.seen[u.value] = path
		}
		out = append(out, as)
	}
	return out, nil
}

// parseAppService decodes and checks one registration. Keys the spec does
// not define are ignored (bridges write their own, e.g. org.matrix.msc3202),
// as Synapse does; missing required keys and wrong types are errors.
func parseAppService(b []byte) (AppService, error) {
	var as AppService
	var keys map[string]yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&keys); err != nil && !errors.Is(err, io.EOF) {
		return as, err
	}
	for _, k := range appServiceRequired {
		if _, ok := keys[k]; !ok {
			return as, fmt.Errorf("%s: must be set", k)
		}
	}
	if err := yaml.Unmarshal(b, &as); err != nil {
		return as, nameKeys(b, err)
	}
	for key, v := range map[string]string{"id": as.ID, "as_token": as.ASToken, "hs_token": as.HSToken} {
		if v == "" {
			return as, fmt.Errorf("%s: must not be empty", key)
		}
	}
	if as.ASToken == as.HSToken {
		return as, errors.New("as_token, hs_token: must differ")
	}
	if err := id.ValidateUserLocalpart(as.SenderLocalpart); err != nil {
		return as, fmt.Errorf("sender_localpart: %q is not a valid localpart", as.SenderLocalpart)
	}
	if as.URL != "" {
		u, err := url.Parse(as.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return as, fmt.Errorf("url: %q is not an http(s) URL (or null)", as.URL)
		}
	}
	for kind, list := range map[string][]ASNamespace{"users": as.Namespaces.Users, "aliases": as.Namespaces.Aliases, "rooms": as.Namespaces.Rooms} {
		for i, ns := range list {
			if ns.Regex == "" {
				return as, fmt.Errorf("namespaces.%s[%d].regex: must be set", kind, i)
			}
			if _, err := ns.Compile(); err != nil {
				return as, fmt.Errorf("namespaces.%s[%d].regex: %v", kind, i, err)
			}
		}
	}
	for i, p := range as.Protocols {
		if p == "" {
			return as, fmt.Errorf("protocols[%d]: must not be empty", i)
		}
	}
	return as, nil
}
