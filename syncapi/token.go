package syncapi

import (
	"fmt"
	"strconv"
	"strings"
)

// StreamName names one sync stream. The order of streamOrder is the order of
// positions inside a token and must never change: tokens outlive restarts and upgrades.
type StreamName string

const (
	StreamPDU         StreamName = "pdu"
	StreamTyping      StreamName = "typing"
	StreamReceipt     StreamName = "receipt"
	StreamAccountData StreamName = "account_data"
	StreamToDevice    StreamName = "to_device"
	StreamPresence    StreamName = "presence"
	StreamDeviceList  StreamName = "device_list"
	StreamNotif       StreamName = "notif"
	StreamInvite      StreamName = "invite"
)

var streamOrder = []StreamName{
	StreamPDU, StreamTyping, StreamReceipt, StreamAccountData, StreamToDevice,
	StreamPresence, StreamDeviceList, StreamNotif, StreamInvite,
}

// Token is a position in every stream. It is serialised as "s" followed by the
// positions in streamOrder joined by "_" (e.g. "s42_3_0_7_0_0_0_0_0").
type Token map[StreamName]int64

// String serialises t.
func (t Token) String() string {
	var b strings.Builder
	b.WriteByte('s')
	for i, name := range streamOrder {
		if i > 0 {
			b.WriteByte('_')
		}
		b.WriteString(strconv.FormatInt(t[name], 10))
	}
	return b.String()
}

// ParseToken parses a token from String. Missing trailing positions are 0, so
// tokens from older versions with fewer streams stay valid.
func ParseToken(s string) (Token, error) {
	if !strings.HasPrefix(s, "s") {
		return nil, fmt.Errorf("malformed sync token %q", s)
	}
	parts := strings.Split(s[1:], "_")
	if len(parts) > len(streamOrder) {
		return nil, fmt.Errorf("malformed sync token %q", s)
	}
	t := make(Token, len(streamOrder))
	for i, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("malformed sync token %q", s)
		}
		t[streamOrder[i]] = v
	}
	return t, nil
}

// Clone copies t.
func (t Token) Clone() Token {
	c := make(Token, len(t))
	for k, v := range t {
		c[k] = v
	}
	return c
}
