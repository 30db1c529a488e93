package clientapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/config"
	"parley/internal/httputil"
	"parley/roomserver"
)

// Third-party invites (client-server API, "Third-party invites"): the
// homeserver asks the identity server the client names whether the address
// is bound to a Matrix user (lookup v2, with hashed addresses); bound
// addresses get an ordinary invite, others an invitation stored with the
// identity server and an m.room.third_party_invite event in the room.

// identityClient calls identity servers (Identity Service API v2) over
// HTTPS. Their names come from clients, so unless federation.allow_private_ips
// is set it refuses to connect to loopback, private and link-local addresses.
type identityClient struct {
	hc *http.Client
}

func newIdentityClient(cfg *config.Config, log *zap.Logger) *identityClient {
	tlsCfg, err := cfg.Federation.ClientTLSConfig()
	if err != nil {
		log.Warn("identity server client: using the system's CAs", zap.Error(err))
		tlsCfg = nil
	}
	allowPrivate := cfg.Federation.AllowPrivateIPs
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip := net.ParseIP(host)
		if ip == nil || ip.IsUnspecified() || ip.IsMulticast() ||
			(!allowPrivate && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast())) {
			return fmt.Errorf("identity server address %s is not allowed", host)
		}
		return nil
	}}
	tr := &http.Transport{DialContext: dialer.DialContext, TLSClientConfig: tlsCfg, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: 20 * time.Second, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}
	return &identityClient{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// errIdentityServer is an identity server failure: unreachable, a server
// error or an answer that is not what the spec says (502 to the client).
var errIdentityServer = errors.New("identity server error")

// identityError is an identity server's refusal (a 4xx Matrix error).
type identityError struct {
	Status  int
	ErrCode string `json:"errcode"`
	Message string `json:"error"`
}

func (e *identityError) Error() string {
	return fmt.Sprintf("identity server answered %d %s: %s", e.Status, e.ErrCode, e.Message)
}

// do calls /_matrix/identity/v2/<path> on server with the client's access token.
func (c *identityClient) do(ctx context.Context, server, token, method, path string, body, out any) error {
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rdr = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+server+"/_matrix/identity/v2"+path, rdr)
	if err != nil {
		return fmt.Errorf("%w: %v", errIdentityServer, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", errIdentityServer, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %v", errIdentityServer, err)
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		ie := &identityError{Status: resp.StatusCode}
		_ = json.Unmarshal(raw, ie)
		return ie
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s answered %d", errIdentityServer, server, resp.StatusCode)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%w: invalid answer from %s: %v", errIdentityServer, server, err)
	}
	return nil
}

// lookup returns the Matrix user bound to (medium, address) on server, or ""
// when none is: hash_details, then lookup with sha256 hashing (or none, if
// that is all the server offers).
func (c *identityClient) lookup(ctx context.Context, server, token, medium, address string) (id.UserID, error) {
	var details struct {
		Algorithms []string `json:"algorithms"`
		Pepper     string   `json:"lookup_pepper"`
	}
	if err := c.do(ctx, server, token, http.MethodGet, "/hash_details", nil, &details); err != nil {
		return "", err
	}
	var algorithm, hashed string
	switch {
	case slices.Contains(details.Algorithms, "sha256") && details.Pepper != "":
		sum := sha256.Sum256([]byte(address + " " + medium + " " + details.Pepper))
		algorithm, hashed = "sha256", base64.RawURLEncoding.EncodeToString(sum[:])
	case slices.Contains(details.Algorithms, "none"):
		algorithm, hashed = "none", address+" "+medium
	default:
		return "", fmt.Errorf("%w: %s offers no lookup algorithm this server knows", errIdentityServer, server)
	}
	var resp struct {
		Mappings map[string]string `json:"mappings"`
	}
	if err := c.do(ctx, server, token, http.MethodPost, "/lookup",
		map[string]any{"addresses": []string{hashed}, "algorithm": algorithm, "pepper": details.Pepper}, &resp); err != nil {
		return "", err
	}
	mxid := id.UserID(resp.Mappings[hashed])
	if mxid == "" {
		return "", nil
	}
	if _, _, err := mxid.ParseAndValidateRelaxed(); err != nil {
		return "", fmt.Errorf("%w: %s mapped the address to an invalid user ID", errIdentityServer, server)
	}
	return mxid, nil
}

// storeInvite stores an invitation with server (store-invite).
func (c *identityClient) storeInvite(ctx context.Context, server, token string, req map[string]any) (*roomserver.ThirdPartyInvite, error) {
	var resp struct {
		Token       string                     `json:"token"`
		DisplayName string                     `json:"display_name"`
		PublicKeys  []roomserver.ThirdPartyKey `json:"public_keys"`
		// The older single-key form, kept by some identity servers.
		PublicKey string `json:"public_key"`
	}
	if err := c.do(ctx, server, token, http.MethodPost, "/store-invite", req, &resp); err != nil {
		return nil, err
	}
	inv := &roomserver.ThirdPartyInvite{Token: resp.Token, DisplayName: resp.DisplayName, PublicKeys: resp.PublicKeys}
	if len(inv.PublicKeys) == 0 && resp.PublicKey != "" {
		inv.PublicKeys = []roomserver.ThirdPartyKey{{PublicKey: resp.PublicKey,
			KeyValidityURL: "https://" + server + "/_matrix/identity/v2/pubkey/isvalid"}}
	}
	return inv, nil
}

// identityErr maps identity server failures to client errors. The identity
// server refusing the client's token must not look like our own 401 (clients
// would log out), so it is a 403.
func identityErr(err error) error {
	var ie *identityError
	switch {
	case errors.As(err, &ie) && (ie.Status == http.StatusUnauthorized || ie.Status == http.StatusForbidden):
		return httputil.Forbidden("the identity server refused the request: %s %s", ie.ErrCode, ie.Message)
	case errors.As(err, &ie):
		code := ie.ErrCode
		if code == "" {
			code = httputil.CodeUnknown
		}
		return httputil.Errorf(http.StatusBadRequest, code, "the identity server refused the request: %s", ie.Message)
	case errors.Is(err, errIdentityServer):
		return &httputil.MatrixError{Status: http.StatusBadGateway, Code: httputil.CodeUnknown, Message: err.Error(), Err: err}
	}
	return roomError(err)
}

// invite3PID is one invite_3pid entry or the third-party form of /invite.
type invite3PID struct {
	IDServer      string `json:"id_server"`
	IDAccessToken string `json:"id_access_token"`
	Medium        string `json:"medium"`
	Address       string `json:"address"`
}

func (inv *invite3PID) validate() error {
	switch {
	case inv.IDServer == "":
		return httputil.MissingParam("id_server is required")
	case inv.IDAccessToken == "":
		return httputil.MissingParam("id_access_token is required")
	case inv.Medium == "":
		return httputil.MissingParam("medium is required")
	case inv.Address == "":
		return httputil.MissingParam("address is required")
	case !id.ValidateServerName(inv.IDServer):
		return httputil.InvalidParam("invalid id_server %q", inv.IDServer)
	}
	return nil
}

// storeInviteRequest is the store-invite body for an invitation into roomID
// by sender, with what the identity server may show in its message.
func (a *API) storeInviteRequest(ctx context.Context, inv *invite3PID, roomID id.RoomID, sender id.UserID, room *roomserver.RoomSummary) map[string]any {
	req := map[string]any{"medium": inv.Medium, "address": inv.Address, "room_id": roomID, "sender": sender}
	if room != nil {
		for k, v := range map[string]string{"room_alias": room.CanonicalAlias, "room_avatar_url": room.AvatarURL,
			"room_join_rules": room.JoinRule, "room_name": room.Name, "room_type": room.RoomType} {
			if v != "" {
				req[k] = v
			}
		}
	}
	if prof, err := a.store.GetProfile(ctx, sender); err == nil {
		for k, field := range map[string]string{"displayname": "sender_display_name", "avatar_url": "sender_avatar_url"} {
			var v string
			if raw, ok := prof[k]; ok && json.Unmarshal(raw, &v) == nil && v != "" {
				req[field] = v
			}
		}
	}
	return req
}

// inviteThirdParty handles POST /rooms/{roomID}/invite with id_server,
// id_access_token, medium and address.
func (a *API) inviteThirdParty(ctx context.Context, dev *authn.Device, roomID id.RoomID, inv *invite3PID) error {
	if err := inv.validate(); err != nil {
		return err
	}
	// Check the inviter first: the identity server sends the invitee a
	// message as soon as it stores the invitation.
	if ok, err := a.rooms.MayInvite(ctx, roomID, dev.UserID); err != nil {
		return roomError(err)
	} else if !ok {
		return httputil.Forbidden("you may not invite users to this room")
	}
	mxid, err := a.ids.lookup(ctx, inv.IDServer, inv.IDAccessToken, inv.Medium, strings.TrimSpace(inv.Address))
	if err != nil {
		return identityErr(err)
	}
	if mxid != "" {
		_, err := a.rooms.Invite(ctx, roomserver.MembershipRequest{RoomID: roomID, Sender: dev.UserID, Target: mxid})
		return roomError(err)
	}
	sum, err := a.rooms.Summary(ctx, roomID)
	if err != nil {
		return roomError(err)
	}
	sum.State = nil
	stored, err := a.ids.storeInvite(ctx, inv.IDServer, inv.IDAccessToken, a.storeInviteRequest(ctx, inv, roomID, dev.UserID, sum))
	if err != nil {
		return identityErr(err)
	}
	if err := stored.Validate(); err != nil {
		return identityErr(fmt.Errorf("%w: %v", errIdentityServer, err))
	}
	_, err = a.rooms.SendThirdPartyInvite(ctx, roomID, dev.UserID, stored)
	return roomError(err)
}

// createRoom3PID resolves createRoom's invite_3pid before the room is built:
// bound addresses join the ordinary invites; the others are stored with
// their identity servers once the room ID is known (nothing is stored in
// the room until every identity server has answered).
func (a *API) createRoom3PID(ctx context.Context, creator id.UserID, raw []json.RawMessage, req *roomserver.CreateRoomRequest) error {
	var unbound []*invite3PID
	for _, r := range raw {
		inv := &invite3PID{}
		if err := httputil.UnmarshalObject(r, inv); err != nil {
			return err
		}
		if err := inv.validate(); err != nil {
			return err
		}
		inv.Address = strings.TrimSpace(inv.Address)
		mxid, err := a.ids.lookup(ctx, inv.IDServer, inv.IDAccessToken, inv.Medium, inv.Address)
		if err != nil {
			return identityErr(err)
		}
		if mxid != "" {
			if !slices.Contains(req.Invite, mxid) {
				req.Invite = append(req.Invite, mxid)
			}
			continue
		}
		unbound = append(unbound, inv)
	}
	if len(unbound) == 0 {
		return nil
	}
	req.StoreThirdPartyInvites = func(ctx context.Context, roomID id.RoomID) ([]*roomserver.ThirdPartyInvite, error) {
		sum := &roomserver.RoomSummary{JoinRule: "invite"}
		if req.Name != nil {
			sum.Name = *req.Name
		}
		if req.Preset == "public_chat" || (req.Preset == "" && req.Visibility == "public") {
			sum.JoinRule = "public"
		}
		if t, ok := req.CreationContent["type"]; ok {
			_ = json.Unmarshal(t, &sum.RoomType)
		}
		if req.RoomAliasName != "" {
			sum.CanonicalAlias = "#" + req.RoomAliasName + ":" + a.cfg.ServerName
		}
		out := make([]*roomserver.ThirdPartyInvite, 0, len(unbound))
		for _, inv := range unbound {
			stored, err := a.ids.storeInvite(ctx, inv.IDServer, inv.IDAccessToken, a.storeInviteRequest(ctx, inv, roomID, creator, sum))
			if err == nil {
				if verr := stored.Validate(); verr != nil {
					err = fmt.Errorf("%w: %v", errIdentityServer, verr)
				}
			}
			if err != nil {
				return nil, identityErr(err)
			}
			out = append(out, stored)
		}
		return out, nil
	}
	return nil
}
