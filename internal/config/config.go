// Package config holds Parley's typed configuration: defaults, YAML loading,
// environment overrides and validation. There are no globals: the loaded
// Config is passed to the components that need it.
package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/id"
)

// Config is the whole configuration file.
type Config struct {
	ServerName     string        `yaml:"server_name"`
	SigningKeyPath string        `yaml:"signing_key_path"`
	Database       Database      `yaml:"database"`
	Listen         Listen        `yaml:"listen"`
	Registration   Registration  `yaml:"registration"`
	RateLimits     RateLimits    `yaml:"rate_limits"`
	Rooms          Rooms         `yaml:"rooms"`
	Federation     Federation    `yaml:"federation"`
	Sync           Sync          `yaml:"sync"`
	Media          Media         `yaml:"media"`
	WellKnown      WellKnown     `yaml:"well_known"`
	UserDirectory  UserDirectory `yaml:"user_directory"`
	Retention      Retention     `yaml:"retention"`
	Moderation     Moderation    `yaml:"moderation"`
	ServerNotices  ServerNotices `yaml:"server_notices"`
	Log            Log           `yaml:"log"`
	E2EE           E2EE          `yaml:"e2ee"`
	// IdentityServers configures calls to the identity servers clients name
	// (third-party invites).
	IdentityServers IdentityServers `yaml:"identity_servers"`
	// AppServiceConfigFiles are the registration files of the application
	// services (bridges, bots) this server talks to; see AppService.
	AppServiceConfigFiles []string `yaml:"app_service_config_files"`
}

// IdentityServers configures the homeserver's identity server client. It
// trusts federation.trusted_ca_file too, and connects to loopback or
// private addresses only with federation.allow_private_ips.
type IdentityServers struct {
	// InsecureSkipVerify disables TLS verification of identity servers
	// (tests only: SyTest's identity server has a self-signed certificate
	// without a subject alternative name).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// E2EE configures the end-to-end encryption endpoints (keyserver).
type E2EE struct {
	// VerifyDeviceKeySignatures rejects uploaded device keys that are not
	// signed by the device's own ed25519 key (400 M_INVALID_SIGNATURE).
	// Synapse does not check; SyTest uploads placeholder keys and needs it off.
	VerifyDeviceKeySignatures bool `yaml:"verify_device_key_signatures"`
}

// Database selects the storage backend by URL.
type Database struct {
	// URL is sqlite:///path/to/file.db or postgres://user@host:port/db.
	URL string `yaml:"url"`
	// MaxOpenConns bounds the read pool (SQLite) or the whole pool (PostgreSQL).
	MaxOpenConns int `yaml:"max_open_conns"`
}

// Listen says where Parley serves HTTP.
type Listen struct {
	// HTTP serves the client-server API (and plain-HTTP federation) on host:port.
	HTTP string `yaml:"http"`
	// HTTPS serves the federation API (and client API) over TLS when set.
	HTTPS   string `yaml:"https"`
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// MaxRequestBytes limits request bodies other than media uploads.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// TrustedProxies lists the reverse proxies (IPs or CIDRs) whose
	// X-Forwarded-For header names the client, for rate limits and last-seen IPs.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Registration controls who may create accounts.
type Registration struct {
	Enabled bool `yaml:"enabled"`
	// RequireToken makes m.login.registration_token mandatory when registration is enabled.
	RequireToken bool `yaml:"require_token"`
	// SharedSecret enables /_synapse/admin/v1/register when set.
	SharedSecret string `yaml:"shared_secret"`
	// AllowGuests enables kind=guest.
	AllowGuests bool `yaml:"allow_guests"`
	// MinPasswordLength rejects shorter passwords with M_WEAK_PASSWORD.
	MinPasswordLength int `yaml:"min_password_length"`
	// AccessTokenLifetime is how long access tokens issued with a refresh token
	// (clients sending refresh_token: true) live; 0 issues no refresh tokens.
	// Tokens issued without a refresh token never expire.
	AccessTokenLifetime time.Duration `yaml:"access_token_lifetime"`
	// BcryptCost is the bcrypt work factor for password hashes (4-31).
	BcryptCost int `yaml:"bcrypt_cost"`
}

// RateLimits configures per-endpoint token buckets.
type RateLimits struct {
	Enabled bool `yaml:"enabled"`
	// PerSecond and Burst apply per client (user, or IP when unauthenticated) and endpoint class.
	Login    Bucket `yaml:"login"`
	Register Bucket `yaml:"register"`
	Message  Bucket `yaml:"message"`
}

// Bucket is one token bucket.
type Bucket struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

// Rooms holds room defaults.
type Rooms struct {
	DefaultVersion id.RoomVersion `yaml:"default_version"`
}

// ServerNotices configures POST /_synapse/admin/v1/send_server_notice.
type ServerNotices struct {
	// SystemLocalpart is the localpart of the account that sends notices;
	// empty disables server notices.
	SystemLocalpart string `yaml:"system_localpart"`
	// RoomName is the name of the rooms notices are sent in.
	RoomName string `yaml:"room_name"`
}

// Moderation holds server-wide denylists.
type Moderation struct {
	// RegistrationDenylist holds regular expressions; a localpart matching one
	// cannot be registered (M_INVALID_USERNAME). Matching is on the whole localpart.
	RegistrationDenylist []string `yaml:"registration_denylist"`
	// AliasDenylist holds regular expressions; a room alias (#local:server)
	// matching one cannot be created (M_FORBIDDEN). Matching is on the whole alias.
	AliasDenylist []string `yaml:"alias_denylist"`
	// RegistrationRequiresApproval makes new accounts wait for an admin's
	// approval (PUT /_synapse/admin/v2/users/{userID} {"approved": true});
	// until then registration and login answer 403 M_USER_AWAITING_APPROVAL.
	RegistrationRequiresApproval bool `yaml:"registration_requires_approval"`
}

// anyFullMatch reports whether s matches one of the patterns in full.
func anyFullMatch(patterns []string, s string) bool {
	for _, p := range patterns {
		if re, err := regexp.Compile("^(?:" + p + ")$"); err == nil && re.MatchString(s) {
			return true
		}
	}
	return false
}

// LocalpartDenied reports whether moderation.registration_denylist forbids localpart.
func (m Moderation) LocalpartDenied(localpart string) bool {
	return anyFullMatch(m.RegistrationDenylist, localpart)
}

// AliasDenied reports whether moderation.alias_denylist forbids alias.
func (m Moderation) AliasDenied(alias string) bool { return anyFullMatch(m.AliasDenylist, alias) }

// Retention configures message retention (m.room.retention) and the purge job.
type Retention struct {
	// Enabled runs the purge job.
	Enabled bool `yaml:"enabled"`
	// DefaultMaxLifetime applies to rooms without m.room.retention; 0 keeps events forever.
	DefaultMaxLifetime time.Duration `yaml:"default_max_lifetime"`
	// AllowedMinLifetime and AllowedMaxLifetime clamp a room's max_lifetime; 0 is no bound.
	AllowedMinLifetime time.Duration `yaml:"allowed_min_lifetime"`
	AllowedMaxLifetime time.Duration `yaml:"allowed_max_lifetime"`
	// PurgeInterval is how often the purge job runs.
	PurgeInterval time.Duration `yaml:"purge_interval"`
	// PurgeRoomsWithoutLocalUsers purges every message of rooms no local user
	// is joined to, invited to or knocking on (state and forward extremities stay).
	PurgeRoomsWithoutLocalUsers bool `yaml:"purge_rooms_without_local_users"`
}

// UserDirectory configures POST /user_directory/search.
type UserDirectory struct {
	// SearchAllUsers makes every active local user findable; otherwise only
	// users sharing a room with the searcher or in a public room are.
	SearchAllUsers bool `yaml:"search_all_users"`
}

// Federation configures the server-server API.
type Federation struct {
	Enabled bool `yaml:"enabled"`
	// TrustedCAFile is an extra PEM CA bundle trusted for outbound federation (test networks).
	TrustedCAFile string `yaml:"trusted_ca_file"`
	// InsecureSkipVerify disables TLS verification for outbound federation (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// OldVerifyKeys are keys this server signed with before a key rotation;
	// they are published in old_verify_keys with their expired_ts.
	OldVerifyKeys []OldVerifyKey `yaml:"old_verify_keys"`
	// Resolve maps server names to host:port, bypassing discovery (.well-known
	// and SRV); the TLS certificate is still checked against the server name.
	Resolve map[string]string `yaml:"resolve"`
	// AllowPrivateIPs lets outbound federation connect to loopback and private
	// addresses (test networks); off by default to avoid request forgery.
	AllowPrivateIPs bool `yaml:"allow_private_ips"`
	// DenyServers lists server names whose requests are refused and to which nothing is sent.
	DenyServers []string `yaml:"deny_servers"`
	// RequestTimeout bounds each outbound federation request.
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

// OldVerifyKey is a former signing key of this server.
type OldVerifyKey struct {
	// KeyID is like "ed25519:abc".
	KeyID string `yaml:"key_id"`
	// PublicKey is the unpadded base64 ed25519 public key.
	PublicKey string `yaml:"public_key"`
	// ExpiredTS is when the key stopped being used (ms since the epoch).
	ExpiredTS int64 `yaml:"expired_ts"`
}

// Sync configures the sync API.
type Sync struct {
	// Presence enables presence tracking; large servers may turn it off.
	Presence bool `yaml:"presence"`
	// PresenceIdleTimeout turns an online user unavailable after this long without activity.
	PresenceIdleTimeout time.Duration `yaml:"presence_idle_timeout"`
	// PresenceOfflineTimeout turns a user offline this long after their last /sync ended.
	PresenceOfflineTimeout time.Duration `yaml:"presence_offline_timeout"`
	// SlidingSyncConnectionTTL is how long an idle sliding sync (MSC4186)
	// connection is kept; a later request with its pos answers M_UNKNOWN_POS.
	SlidingSyncConnectionTTL time.Duration `yaml:"sliding_sync_connection_ttl"`
	// PushMaxAttempts is how often a push to a gateway is tried before it is dropped.
	PushMaxAttempts int `yaml:"push_max_attempts"`
	// PushMaxBackoff caps the exponential backoff between push attempts.
	PushMaxBackoff time.Duration `yaml:"push_max_backoff"`
}

// Media configures the media repository.
type Media struct {
	// Path is the directory media files are stored in (content-addressed).
	Path string `yaml:"path"`
	// MaxUploadSize is m.upload.size: the largest upload accepted, in bytes.
	MaxUploadSize int64 `yaml:"max_upload_size"`
	// MaxPendingUploads is how many media IDs reserved with /create and not
	// yet uploaded one user may hold.
	MaxPendingUploads int `yaml:"max_pending_uploads"`
	// UnusedExpiration is how long a media ID from /create waits for its upload.
	UnusedExpiration time.Duration `yaml:"unused_expiration"`
	// LegacyUnauthenticated serves the unauthenticated /_matrix/media/v3
	// download and thumbnail endpoints for media created before LegacyCutoff;
	// newer media is only served by the authenticated /_matrix/client/v1/media
	// endpoints (spec v1.11), as Synapse does.
	LegacyUnauthenticated bool      `yaml:"legacy_unauthenticated"`
	LegacyCutoff          time.Time `yaml:"legacy_cutoff"`
	// ThumbnailSizes are generated when an image is uploaded; other sizes are
	// generated on request (and cached) when DynamicThumbnails is set, else
	// the closest pre-generated size is served.
	ThumbnailSizes    []ThumbnailSize `yaml:"thumbnail_sizes"`
	DynamicThumbnails bool            `yaml:"dynamic_thumbnails"`
	// MaxImagePixels is the largest image (width × height) thumbnailed.
	MaxImagePixels int64 `yaml:"max_image_pixels"`
	// MaxThumbnailSourceSize is the largest file (bytes) thumbnailed.
	MaxThumbnailSourceSize int64 `yaml:"max_thumbnail_source_size"`
	// RemoteFetchTimeout bounds fetching remote media over federation.
	RemoteFetchTimeout time.Duration `yaml:"remote_fetch_timeout"`
	URLPreview         URLPreview    `yaml:"url_preview"`
}

// ThumbnailSize is one pre-generated thumbnail.
type ThumbnailSize struct {
	Width  int    `yaml:"width"`
	Height int    `yaml:"height"`
	Method string `yaml:"method"` // crop or scale
}

// URLPreview configures /preview_url. Outbound fetches never connect to an
// address in IPRangeDenylist unless it is also in IPRangeAllowlist; the
// check runs after DNS resolution and again on every redirect.
type URLPreview struct {
	Enabled          bool          `yaml:"enabled"`
	IPRangeDenylist  []string      `yaml:"ip_range_denylist"`
	IPRangeAllowlist []string      `yaml:"ip_range_allowlist"`
	MaxSize          int64         `yaml:"max_size"`
	Timeout          time.Duration `yaml:"timeout"`
	CacheDuration    time.Duration `yaml:"cache_duration"`
}

// DefaultIPRangeDenylist is url_preview.ip_range_denylist's default:
// loopback, private, CGNAT, link-local (with cloud metadata endpoints),
// documentation, multicast and reserved ranges, for IPv4 and IPv6.
var DefaultIPRangeDenylist = []string{
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
	"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	"::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
	"2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
}

// LegacyMediaCutoff is media.legacy_cutoff's default: 2024-09-01, when
// authenticated media (spec v1.11) replaced the unauthenticated endpoints.
var LegacyMediaCutoff = time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC)

// WellKnown sets what /.well-known/matrix/{client,server} advertise.
type WellKnown struct {
	ClientBaseURL string `yaml:"client_base_url"`
	ServerName    string `yaml:"server"`
}

// Log configures logging.
type Log struct {
	Level string `yaml:"level"`
}

// Defaults is the no-config configuration: server name localhost, loopback only,
// SQLite under ./data, open registration, no rate limits.
func Defaults() Config {
	return Config{
		ServerName:     "localhost",
		SigningKeyPath: "data/signing.key",
		Database:       Database{URL: "sqlite:///data/parley.db", MaxOpenConns: 8},
		Listen:         Listen{HTTP: "127.0.0.1:8008", MaxRequestBytes: 1 << 20, TrustedProxies: []string{}},
		Registration:   Registration{Enabled: true, MinPasswordLength: 0, AccessTokenLifetime: 5 * time.Minute, BcryptCost: 10},
		RateLimits: RateLimits{
			Enabled:  false,
			Login:    Bucket{PerSecond: 0.2, Burst: 5},
			Register: Bucket{PerSecond: 0.1, Burst: 3},
			Message:  Bucket{PerSecond: 10, Burst: 50},
		},
		Rooms: Rooms{DefaultVersion: "11"},
		Federation: Federation{Enabled: true, RequestTimeout: 30 * time.Second, OldVerifyKeys: []OldVerifyKey{},
			Resolve: map[string]string{}, DenyServers: []string{}},
		Sync: Sync{Presence: true, PresenceIdleTimeout: 5 * time.Minute, PresenceOfflineTimeout: 30 * time.Second,
			PushMaxAttempts: 10, PushMaxBackoff: time.Hour, SlidingSyncConnectionTTL: 30 * time.Minute},
		Media: Media{
			Path: "data/media", MaxUploadSize: 100 << 20,
			MaxPendingUploads: 5, UnusedExpiration: 24 * time.Hour,
			LegacyUnauthenticated: true, LegacyCutoff: LegacyMediaCutoff,
			// The sizes the spec suggests (client-server API, "Thumbnails").
			ThumbnailSizes: []ThumbnailSize{
				{32, 32, "crop"}, {96, 96, "crop"}, {320, 240, "scale"}, {640, 480, "scale"}, {800, 600, "scale"},
			},
			DynamicThumbnails: true, MaxImagePixels: 32_000_000, MaxThumbnailSourceSize: 50 << 20,
			RemoteFetchTimeout: 20 * time.Second,
			URLPreview: URLPreview{
				Enabled: false, IPRangeDenylist: append([]string(nil), DefaultIPRangeDenylist...),
				MaxSize: 10 << 20, Timeout: 10 * time.Second, CacheDuration: time.Hour,
			},
		},
		Retention:     Retention{PurgeInterval: time.Hour},
		Moderation:    Moderation{RegistrationDenylist: []string{}, AliasDenylist: []string{}},
		ServerNotices: ServerNotices{SystemLocalpart: "server", RoomName: "Server Notices"},
		Log:           Log{Level: "info"},
		E2EE:          E2EE{VerifyDeviceKeySignatures: true},

		AppServiceConfigFiles: []string{},
	}
}

// Load reads a YAML file over the defaults, applies environment overrides and validates.
// Unknown keys are errors that name the key.
func Load(path string) (Config, error) {
	cfg := Defaults()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := Parse(b, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	cfg.ApplyEnv()
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML into cfg, rejecting unknown keys.
func Parse(b []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nameKeys(b, err)
	}
	return nil
}

// nameKeys rewrites yaml.v3 errors ("line 3: cannot unmarshal ...") to start
// with the dotted key at that line, so every message names the bad key.
func nameKeys(b []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = m
		var line int
		if _, scanErr := fmt.Sscanf(m, "line %d:", &line); scanErr == nil {
			if key := keyAtLine(&doc, line, ""); key != "" {
				msgs[i] = key + ": " + m
			}
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

// keyAtLine returns the dotted path of the mapping key on line, or "".
func keyAtLine(n *yaml.Node, line int, prefix string) string {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if k := keyAtLine(c, line, prefix); k != "" {
				return k
			}
		}
		return ""
	}
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Line == line {
			return prefix + k.Value
		}
		if sub := keyAtLine(v, line, prefix+k.Value+"."); sub != "" {
			return sub
		}
	}
	return ""
}

// ApplyEnv applies the PARLEY_* environment overrides: server name, database
// URL, registration shared secret and listen address (PARLEY_LISTEN).
func (c *Config) ApplyEnv() {
	if v := os.Getenv("PARLEY_DATABASE_URL"); v != "" {
		c.Database.URL = v
	}
	if v := os.Getenv("PARLEY_REGISTRATION_SHARED_SECRET"); v != "" {
		c.Registration.SharedSecret = v
	}
	if v := os.Getenv("PARLEY_SERVER_NAME"); v != "" {
		c.ServerName = v
	}
	if v := os.Getenv("PARLEY_LISTEN"); v != "" {
		c.Listen.HTTP = v
	}
}

// Validate checks the configuration and names the key at fault.
func (c *Config) Validate() error {
	if c.ServerName == "" {
		return errors.New("server_name: must be set")
	}
	if !id.ValidateServerName(c.ServerName) {
		return fmt.Errorf("server_name: %q is not a valid server name", c.ServerName)
	}
	if !strings.HasPrefix(c.Database.URL, "sqlite://") && !strings.HasPrefix(c.Database.URL, "postgres://") && !strings.HasPrefix(c.Database.URL, "postgresql://") {
		return fmt.Errorf("database.url: %q must start with sqlite:// or postgres://", c.Database.URL)
	}
	if c.Database.MaxOpenConns < 1 {
		return errors.New("database.max_open_conns: must be at least 1")
	}
	if c.Listen.HTTP == "" && c.Listen.HTTPS == "" {
		return errors.New("listen: set listen.http or listen.https")
	}
	for key, addr := range map[string]string{"listen.http": c.Listen.HTTP, "listen.https": c.Listen.HTTPS} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s: %q is not host:port", key, addr)
		}
	}
	if c.Listen.HTTPS != "" && (c.Listen.TLSCert == "" || c.Listen.TLSKey == "") {
		return errors.New("listen.tls_cert, listen.tls_key: required when listen.https is set")
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if err := c.Federation.validate(); err != nil {
		return err
	}
	for _, p := range c.Listen.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			return fmt.Errorf("listen.trusted_proxies: %q is not an IP address or CIDR", p)
		}
	}
	if c.Listen.MaxRequestBytes < 1024 {
		return errors.New("listen.max_request_bytes: must be at least 1024")
	}
	if c.SigningKeyPath == "" {
		return errors.New("signing_key_path: must be set")
	}
	if !c.Rooms.DefaultVersion.IsKnown() {
		return fmt.Errorf("rooms.default_version: unknown room version %q", c.Rooms.DefaultVersion)
	}
	if c.Registration.MinPasswordLength < 0 {
		return errors.New("registration.min_password_length: must not be negative")
	}
	if c.Registration.BcryptCost < 4 || c.Registration.BcryptCost > 31 {
		return fmt.Errorf("registration.bcrypt_cost: %d is not between 4 and 31", c.Registration.BcryptCost)
	}
	if c.Registration.AccessTokenLifetime < 0 {
		return errors.New("registration.access_token_lifetime: must not be negative")
	}
	if c.Registration.RequireToken && !c.Registration.Enabled {
		return errors.New("registration.require_token: needs registration.enabled")
	}
	for key, b := range map[string]Bucket{"rate_limits.login": c.RateLimits.Login, "rate_limits.register": c.RateLimits.Register, "rate_limits.message": c.RateLimits.Message} {
		if c.RateLimits.Enabled && (b.PerSecond <= 0 || b.Burst < 1) {
			return fmt.Errorf("%s: per_second must be above 0 and burst at least 1", key)
		}
	}
	if err := c.Media.validate(); err != nil {
		return err
	}
	for _, list := range [][]string{c.Moderation.RegistrationDenylist, c.Moderation.AliasDenylist} {
		for _, p := range list {
			if _, err := regexp.Compile(p); err != nil {
				return fmt.Errorf("moderation: invalid pattern %q: %v", p, err)
			}
		}
	}
	if l := c.ServerNotices.SystemLocalpart; l != "" && id.ValidateUserLocalpart(l) != nil {
		return fmt.Errorf("server_notices.system_localpart: %q is not a valid localpart", l)
	}
	if r := c.Retention; r.DefaultMaxLifetime < 0 || r.AllowedMinLifetime < 0 || r.AllowedMaxLifetime < 0 {
		return errors.New("retention: lifetimes must not be negative")
	} else if r.AllowedMaxLifetime > 0 && r.AllowedMinLifetime > r.AllowedMaxLifetime {
		return errors.New("retention.allowed_min_lifetime: must not exceed allowed_max_lifetime")
	} else if r.Enabled && r.PurgeInterval <= 0 {
		return errors.New("retention.purge_interval: must be positive")
	}
	if c.Sync.PresenceIdleTimeout <= 0 {
		return errors.New("sync.presence_idle_timeout: must be above 0")
	}
	if c.Sync.PresenceOfflineTimeout <= 0 {
		return errors.New("sync.presence_offline_timeout: must be above 0")
	}
	if c.Sync.SlidingSyncConnectionTTL < time.Second {
		return errors.New("sync.sliding_sync_connection_ttl: must be at least 1s")
	}
	if c.Sync.PushMaxAttempts < 1 {
		return errors.New("sync.push_max_attempts: must be at least 1")
	}
	if c.Sync.PushMaxBackoff < time.Second {
		return errors.New("sync.push_max_backoff: must be at least 1s")
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	if err := c.validateAppServices(); err != nil {
		return err
	}
	return nil
}

// validateAppServices loads the registration files and checks that no two
// services claim the same sender user, and that no sender is also a server
// notices account.
func (c *Config) validateAppServices() error {
	services, err := LoadAppServices(c)
	if err != nil {
		return err
	}
	senders := map[string]string{}
	for _, as := range services {
		if other, dup := senders[as.SenderLocalpart]; dup {
			return fmt.Errorf("app_service_config_files: %s and %s have the same sender_localpart %q", other, as.ID, as.SenderLocalpart)
		}
		senders[as.SenderLocalpart] = as.ID
		if as.SenderLocalpart == c.ServerNotices.SystemLocalpart {
			return fmt.Errorf("app_service_config_files: %s: sender_localpart %q is server_notices.system_localpart", as.ID, as.SenderLocalpart)
		}
	}
	return nil
}

// ParsePrefix parses an IP address (as a single-address prefix) or a CIDR.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseLevel(s string) (string, error) {
	switch s {
	case "debug", "info", "warn", "error":
		return s, nil
	}
	return "", fmt.Errorf("%q is not one of debug, info, warn, error", s)
}

// Generated returns a configuration for a real deployment of serverName:
// registration closed, rate limits on, listening on all interfaces.
func Generated(serverName string) Config {
	c := Defaults()
	c.ServerName = serverName
	c.Listen.HTTP = "0.0.0.0:8008"
	c.Registration.Enabled = false
	c.RateLimits.Enabled = true
	c.WellKnown.ServerName = ""
	return c
}

// Marshal renders cfg as YAML.
func (c Config) Marshal() ([]byte, error) { return yaml.Marshal(c) }

func (f Federation) validate() error {
	if f.RequestTimeout <= 0 {
		return errors.New("federation.request_timeout: must be above 0")
	}
	for i, k := range f.OldVerifyKeys {
		if !strings.HasPrefix(k.KeyID, "ed25519:") || len(k.KeyID) == len("ed25519:") {
			return fmt.Errorf("federation.old_verify_keys[%d].key_id: %q is not ed25519:<version>", i, k.KeyID)
		}
		if b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(k.PublicKey, "=")); err != nil || len(b) != 32 {
			return fmt.Errorf("federation.old_verify_keys[%d].public_key: not an unpadded base64 ed25519 key", i)
		}
		if k.ExpiredTS <= 0 {
			return fmt.Errorf("federation.old_verify_keys[%d].expired_ts: must be set", i)
		}
	}
	for name, addr := range f.Resolve {
		if !id.ValidateServerName(name) {
			return fmt.Errorf("federation.resolve: %q is not a server name", name)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("federation.resolve.%s: %q is not host:port", name, addr)
		}
	}
	for _, name := range f.DenyServers {
		if name == "" {
			return errors.New("federation.deny_servers: empty server name")
		}
	}
	return nil
}

func (m *Media) validate() error {
	if m.Path == "" {
		return errors.New("media.path: must be set")
	}
	if m.MaxUploadSize < 1 {
		return errors.New("media.max_upload_size: must be at least 1")
	}
	if m.MaxPendingUploads < 1 {
		return errors.New("media.max_pending_uploads: must be at least 1")
	}
	if m.UnusedExpiration < time.Minute {
		return errors.New("media.unused_expiration: must be at least 1m")
	}
	for i, s := range m.ThumbnailSizes {
		if s.Width < 1 || s.Height < 1 || (s.Method != "crop" && s.Method != "scale") {
			return fmt.Errorf("media.thumbnail_sizes[%d]: width and height must be positive and method crop or scale", i)
		}
	}
	if m.MaxImagePixels < 1 || m.MaxThumbnailSourceSize < 1 {
		return errors.New("media.max_image_pixels, media.max_thumbnail_source_size: must be at least 1")
	}
	if m.RemoteFetchTimeout <= 0 {
		return errors.New("media.remote_fetch_timeout: must be positive")
	}
	p := m.URLPreview
	for key, list := range map[string][]string{"media.url_preview.ip_range_denylist": p.IPRangeDenylist, "media.url_preview.ip_range_allowlist": p.IPRangeAllowlist} {
		for _, r := range list {
			if _, err := netip.ParsePrefix(r); err == nil {
				continue
			}
			if _, err := netip.ParseAddr(r); err != nil {
				return fmt.Errorf("%s: %q is not an IP range (CIDR) or address", key, r)
			}
		}
	}
	if p.Enabled && (p.MaxSize < 1 || p.Timeout <= 0 || p.CacheDuration < 0) {
		return errors.New("media.url_preview: max_size and timeout must be positive, cache_duration not negative")
	}
	return nil
}
