// Package asapi holds the application services a homeserver is
// configured with (application service API): their namespaces, the tokens
// that identify them, and the HTTP client the homeserver calls them with.
// It has no state beyond the configuration; the persisted transaction queue
// is the appservice component's.
package asapi

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"slices"

	"maunium.net/go/mautrix/id"

	"parley/internal/config"
)

// Service is one application service with its namespaces compiled.
type Service struct {
	config.AppService
	// Sender is the service's own user, @sender_localpart:server_name.
	Sender id.UserID

	users, aliases, rooms []namespace
}

type namespace struct {
	re        *regexp.Regexp
	exclusive bool
}

func compile(list []config.ASNamespace) ([]namespace, error) {
	out := make([]namespace, 0, len(list))
	for _, ns := range list {
		re, err := ns.Compile()
		if err != nil {
			return nil, err
		}
		out = append(out, namespace{re: re, exclusive: ns.Exclusive})
	}
	return out, nil
}

// match reports whether s is in one of nss (exclusiveOnly: an exclusive one).
func match(nss []namespace, s string, exclusiveOnly bool) bool {
	return slices.ContainsFunc(nss, func(ns namespace) bool {
		return (ns.exclusive || !exclusiveOnly) && ns.re.MatchString(s)
	})
}

// HasURL says whether the service takes traffic (its url is not null).
func (s *Service) HasURL() bool { return s.URL != "" }

// InUserNamespace reports whether user is in the service's users namespace:
// a user of this server (application service API, "Registration": the
// namespace covers local users) matching one of its regexes.
func (s *Service) InUserNamespace(user id.UserID) bool {
	return user.Homeserver() == s.Sender.Homeserver() && match(s.users, string(user), false)
}

// IsInterestedInUser reports whether user is the service's sender or in its users namespace.
func (s *Service) IsInterestedInUser(user id.UserID) bool {
	return user == s.Sender || s.InUserNamespace(user)
}

// InAliasNamespace reports whether alias is in the service's aliases namespace.
func (s *Service) InAliasNamespace(alias id.RoomAlias) bool {
	return match(s.aliases, string(alias), false)
}

// InRoomNamespace reports whether room is in the service's rooms namespace.
func (s *Service) InRoomNamespace(room id.RoomID) bool { return match(s.rooms, string(room), false) }

// HasAliasNamespace says whether the service has an aliases namespace at all.
func (s *Service) HasAliasNamespace() bool { return len(s.aliases) > 0 }

// Registry is the set of configured application services. A nil or empty
// Registry has none; every lookup then finds nothing.
type Registry struct {
	services []*Service
	byToken  map[[32]byte]*Service
	byID     map[string]*Service
}

// NewRegistry compiles the registrations of serverName's application services.
func NewRegistry(list []config.AppService, serverName string) (*Registry, error) {
	r := &Registry{byToken: map[[32]byte]*Service{}, byID: map[string]*Service{}}
	for _, as := range list {
		s := &Service{AppService: as, Sender: id.NewUserID(as.SenderLocalpart, serverName)}
		var err error
		if s.users, err = compile(as.Namespaces.Users); err == nil {
			if s.aliases, err = compile(as.Namespaces.Aliases); err == nil {
				s.rooms, err = compile(as.Namespaces.Rooms)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("application service %s: %w", as.ID, err)
		}
		r.services = append(r.services, s)
		r.byToken[sha256.Sum256([]byte(as.ASToken))] = s
		r.byID[as.ID] = s
	}
	return r, nil
}

// Empty says whether no application service is configured.
func (r *Registry) Empty() bool { return r == nil || len(r.services) == 0 }

// Services lists the application services in configuration order.
func (r *Registry) Services() []*Service {
	if r == nil {
		return nil
	}
	return r.services
}

// ByToken returns the service whose as_token is tok, or nil. Tokens are
// compared by their SHA-256, so a lookup takes the same time whatever the
// token shares with a real one.
func (r *Registry) ByToken(tok string) *Service {
	if r.Empty() || tok == "" {
		return nil
	}
	return r.byToken[sha256.Sum256([]byte(tok))]
}

// ByID returns the service with that id, or nil.
func (r *Registry) ByID(asID string) *Service {
	if r.Empty() {
		return nil
	}
	return r.byID[asID]
}

// ExclusiveUser returns the service that reserved user (its sender, or an
// exclusive users namespace), or nil.
func (r *Registry) ExclusiveUser(user id.UserID) *Service {
	for _, s := range r.Services() {
		if s.Sender == user || match(s.users, string(user), true) {
			return s
		}
	}
	return nil
}

// ExclusiveAlias returns the service with an exclusive aliases namespace holding alias, or nil.
func (r *Registry) ExclusiveAlias(alias id.RoomAlias) *Service {
	for _, s := range r.Services() {
		if match(s.aliases, string(alias), true) {
			return s
		}
	}
	return nil
}

// withURL lists the services with a URL for which keep is true.
func (r *Registry) withURL(keep func(*Service) bool) []*Service {
	var out []*Service
	for _, s := range r.Services() {
		if s.HasURL() && keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// UserQueryTargets lists the services with a URL whose users namespace holds user:
// the ones to ask whether it exists.
func (r *Registry) UserQueryTargets(user id.UserID) []*Service {
	return r.withURL(func(s *Service) bool { return s.InUserNamespace(user) })
}

// AliasQueryTargets lists the services with a URL whose aliases namespace holds alias.
func (r *Registry) AliasQueryTargets(alias id.RoomAlias) []*Service {
	return r.withURL(func(s *Service) bool { return s.InAliasNamespace(alias) })
}

// ProtocolServices lists the services with a URL that declared protocol.
func (r *Registry) ProtocolServices(protocol string) []*Service {
	return r.withURL(func(s *Service) bool { return slices.Contains(s.Protocols, protocol) })
}

// ProtocolProviders lists the services with a URL that declared a protocol.
func (r *Registry) ProtocolProviders() []*Service {
	return r.withURL(func(s *Service) bool { return len(s.Protocols) > 0 })
}

// Protocols lists every protocol a service with a URL declared, each once, in order.
func (r *Registry) Protocols() []string {
	var out []string
	for _, s := range r.Services() {
		for _, p := range s.Protocols {
			if s.HasURL() && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}
