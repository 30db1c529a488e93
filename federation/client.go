package federation

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"go.mau.fi/util/exhttp"
	"maunium.net/go/mautrix/federation"

	"parley/internal/config"
)

// staticResolver is a mautrix ResolutionCache that answers the configured
// federation.resolve overrides and caches real discovery results in memory.
type staticResolver struct {
	static map[string]string
	*federation.InMemoryCache
}

// LoadResolution implements federation.ResolutionCache.
func (s *staticResolver) LoadResolution(ctx context.Context, serverName string) (*federation.ResolvedServerName, error) {
	if addr, ok := s.static[serverName]; ok {
		host := serverName
		if h, _, err := net.SplitHostPort(serverName); err == nil {
			host = h
		}
		return &federation.ResolvedServerName{ServerName: serverName, HostHeader: host, IPPort: []string{addr},
			Expires: time.Now().Add(time.Hour)}, nil
	}
	return s.InMemoryCache.LoadResolution(ctx, serverName)
}

// NewClient builds the signed outbound federation client: server discovery
// per the spec (mautrix's resolution: IP literals, .well-known, SRV, port
// 8448) except for names in federation.resolve, TLS trusting
// federation.trusted_ca_file, and no requests to denied servers.
func NewClient(cfg *config.Config, key *federation.SigningKey) (*federation.Client, error) {
	tlsCfg, err := cfg.Federation.ClientTLSConfig()
	if err != nil {
		return nil, err
	}
	settings := exhttp.SensibleClientSettings.WithGlobalTimeout(cfg.Federation.RequestTimeout)
	if tlsCfg != nil {
		settings = settings.WithTLSConfig(tlsCfg)
	}
	res := &staticResolver{static: cfg.Federation.Resolve, InMemoryCache: federation.NewInMemoryCache()}
	c := federation.NewClient(cfg.ServerName, key, res, settings)
	if cfg.Federation.AllowPrivateIPs {
		c.AllowIP = func(ip net.IP) bool { return !ip.IsUnspecified() && !ip.IsMulticast() }
	}
	deny := cfg.Federation.DenyServers
	c.AllowServer = func(name string) bool { return name != cfg.ServerName && !slices.Contains(deny, name) }
	if tlsCfg != nil {
		// .well-known lookups use ExtHTTP-like plain clients; give them the same trust.
		if tr, ok := c.HTTP.Transport.(*federation.ServerResolvingTransport); ok {
			tr.ResolveOpts = &federation.ResolveServerNameOpts{HTTPClient: settings.Compile()}
		}
	}
	if c.HTTP.Transport == nil {
		return nil, fmt.Errorf("federation client has no transport")
	}
	c.HTTP.Transport = jsonContentType{next: c.HTTP.Transport}
	return c, nil
}

// jsonContentType labels request bodies as JSON, which the spec requires and
// mautrix's client leaves out (other servers, SyTest's among them, refuse
// bodies without it). The media endpoints send no request body.
type jsonContentType struct{ next http.RoundTripper }

func (t jsonContentType) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody && req.Header.Get("Content-Type") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("Content-Type", "application/json")
	}
	return t.next.RoundTrip(req)
}
