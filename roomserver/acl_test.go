package roomserver

import (
	"testing"

	"github.com/tidwall/gjson"
)

func TestACLAllows(t *testing.T) {
	tests := []struct {
		acl    string
		server string
		want   bool
	}{
		{`{"allow":["*"]}`, "hs2.test", true},
		{`{"allow":["*"],"deny":["hs2.test"]}`, "hs2.test", false},
		{`{"allow":["*"],"deny":["*.evil.org"]}`, "a.evil.org", false},
		{`{"allow":["*"],"deny":["*.evil.org"]}`, "evil.org", true},
		{`{"allow":["hs?.test"]}`, "hs1.test:8448", true},
		{`{"allow":["hs?.test"]}`, "hs10.test", false},
		{`{"allow":["*"],"allow_ip_literals":false}`, "1.2.3.4", false},
		{`{"allow":["*"],"allow_ip_literals":false}`, "[::1]:8448", false},
		{`{"allow":["*"]}`, "1.2.3.4", true},
		{`{"allow":["HS2.TEST"]}`, "hs2.test", true},
		{`{}`, "hs2.test", false},
		{`{"allow":[1, "*"], "deny":[null]}`, "hs2.test", true},
	}
	for _, tt := range tests {
		if got := aclAllows(gjson.Parse(tt.acl), tt.server); got != tt.want {
			t.Errorf("%s for %s: got %v", tt.acl, tt.server, got)
		}
	}
}
