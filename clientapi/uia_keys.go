package clientapi

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"

	"parley/internal/httputil"
)

// RequireUIA runs user-interactive auth for a sensitive operation op of
// user's account on behalf of another component (the key server's
// cross-signing upload). auth is the request's "auth" object, or empty. It
// returns nil when auth is complete (the session is then deleted), else the
// challenge or stage error to send.
func (a *API) RequireUIA(ctx context.Context, auth json.RawMessage, user id.UserID, op string) error {
	var ad *authDict
	if len(auth) > 0 && string(auth) != "null" {
		ad = new(authDict)
		if err := json.Unmarshal(auth, ad); err != nil {
			return httputil.BadJSON("auth is malformed: %v", err)
		}
	}
	sess, err := a.checkUIA(ctx, ad, uiaSpec{op: op, user: user, flows: sensitiveFlows})
	if err != nil {
		return err
	}
	return a.store.DeleteUIASession(ctx, sess.ID)
}
