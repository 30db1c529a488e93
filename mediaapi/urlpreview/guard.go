// Package urlpreview fetches web pages for URL previews and extracts their
// OpenGraph data. Every outbound connection is checked against an IP range
// denylist after DNS resolution (in the dialer, so redirects and every
// address of a multi-address host are checked too): a page cannot make the
// server reach loopback, private, link-local or cloud metadata addresses.
package urlpreview

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrBlocked is returned (wrapped) when a connection would go to a denied address.
var ErrBlocked = errors.New("address is in a denied IP range")

// Guard decides which addresses outbound preview requests may connect to.
// An address is refused when it is in a denied range and in no allowed range.
type Guard struct {
	deny, allow []netip.Prefix
}

// NewGuard parses CIDR ranges (a bare address means a single host).
func NewGuard(deny, allow []string) (*Guard, error) {
	d, err := ParsePrefixes(deny)
	if err != nil {
		return nil, err
	}
	a, err := ParsePrefixes(allow)
	if err != nil {
		return nil, err
	}
	return &Guard{deny: d, allow: a}, nil
}

// ParsePrefixes parses CIDR ranges or single addresses.
func ParsePrefixes(ranges []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ranges))
	for _, s := range ranges {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP range", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Allowed reports whether a connection to addr may be made.
func (g *Guard) Allowed(addr netip.Addr) bool {
	addr = addr.WithZone("")
	forms := []netip.Addr{addr}
	if addr.Is4In6() {
		forms = append(forms, addr.Unmap())
	}
	for _, a := range forms {
		for _, p := range g.allow {
			if p.Contains(a) {
				return true
			}
		}
	}
	for _, a := range forms {
		for _, p := range g.deny {
			if p.Contains(a) {
				return false
			}
		}
	}
	return true
}

// Control is a net.Dialer Control function: it runs after DNS resolution and
// before connect(2) for every address tried, and refuses denied ones.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrBlocked, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !g.Allowed(ip) {
		return fmt.Errorf("%w: %s", ErrBlocked, host)
	}
	return nil
}
