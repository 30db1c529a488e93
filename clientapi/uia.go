package clientapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"golang.org/x/crypto/bcrypt"
	"maunium.net/go/mautrix/id"

	"parley/internal/httputil"
	"parley/storage"
)

// User-interactive authentication (client-server API, "User-Interactive
// Authentication API"). Sessions are stored in the database so that any
// process sharing it can continue one.

// Authentication stage types Parley supports.
const (
	stageDummy             = "m.login.dummy"
	stagePassword          = "m.login.password"
	stageRegistrationToken = "m.login.registration_token"
)

// uiaSessionLifetime is how long a UIA session may take from start to finish.
const uiaSessionLifetime = time.Hour

// authDict is the auth object of a UIA-protected request.
type authDict struct {
	Type       string           `json:"type"`
	Session    string           `json:"session"`
	Identifier *loginIdentifier `json:"identifier"`
	User       string           `json:"user"` // deprecated form of identifier
	Password   string           `json:"password"`
	Token      string           `json:"token"`
}

// uiaSpec says what an operation accepts.
type uiaSpec struct {
	// op names the operation; a session started for one op cannot finish another.
	op string
	// user is the requester for operations on an existing account, "" for registration.
	user  id.UserID
	flows [][]string
	// params, when not empty, are remembered in the session (replacing what
	// an earlier request of the session left there).
	params string
}

// sensitiveFlows is what operations on an existing account accept.
var sensitiveFlows = [][]string{{stagePassword}}

// uiaChallenge is the 401 body: flows, params, session and completed stages.
// With a code it also carries errcode and error (a failed stage).
func uiaChallenge(status int, code, msg string, spec uiaSpec, sess *storage.UIASession) *httputil.MatrixError {
	flows := make([]map[string][]string, len(spec.flows))
	for i, f := range spec.flows {
		flows[i] = map[string][]string{"stages": f}
	}
	e := &httputil.MatrixError{Status: status, Code: code, Message: msg, Extra: map[string]any{
		"flows":     flows,
		"params":    map[string]any{},
		"session":   sess.ID,
		"completed": nonNilStrings(sess.Completed),
	}}
	return e
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// checkUIA runs one round of user-interactive auth. It returns the session
// once a flow is complete; the caller deletes it (or lets storage.Register do
// so) after the operation succeeds. Otherwise it returns the 401 challenge,
// or the error of a failed stage with the challenge fields included.
func (a *API) checkUIA(ctx context.Context, auth *authDict, spec uiaSpec) (*storage.UIASession, error) {
	now := time.Now()
	var sess *storage.UIASession
	if auth != nil && auth.Session != "" {
		var err error
		sess, err = a.store.GetUIASession(ctx, auth.Session)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && now.Sub(time.UnixMilli(sess.CreatedTS)) > uiaSessionLifetime) {
			return nil, httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "Unknown or expired session ID")
		} else if err != nil {
			return nil, err
		}
		if sess.Op != spec.op || sess.UserID != spec.user {
			return nil, httputil.Forbidden("Requested operation has changed during the UI authentication session")
		}
		if spec.params != "" && spec.params != sess.Params {
			if err := a.store.SetUIAParams(ctx, sess.ID, spec.params); err != nil {
				return nil, err
			}
			sess.Params = spec.params
		}
	} else {
		sess = &storage.UIASession{ID: NewToken(""), Op: spec.op, UserID: spec.user, CreatedTS: now.UnixMilli(), Params: spec.params}
		if err := a.store.CreateUIASession(ctx, *sess, now.Add(-uiaSessionLifetime).UnixMilli()); err != nil {
			return nil, err
		}
	}
	if auth == nil || auth.Type == "" {
		return nil, uiaChallenge(http.StatusUnauthorized, "", "", spec, sess)
	}
	allowed := false
	for _, f := range spec.flows {
		allowed = allowed || slices.Contains(f, auth.Type)
	}
	if !allowed {
		return nil, uiaChallenge(http.StatusBadRequest, httputil.CodeUnrecognized, "Unsupported authentication type for this request", spec, sess)
	}
	regToken := ""
	switch auth.Type {
	case stageDummy:
	case stagePassword:
		if err := a.checkPasswordStage(ctx, auth, spec, sess); err != nil {
			return nil, err
		}
	case stageRegistrationToken:
		if auth.Token == "" {
			return nil, uiaChallenge(http.StatusBadRequest, httputil.CodeMissingParam, "Missing registration token", spec, sess)
		}
		if sess.RegistrationToken != auth.Token {
			err := a.store.ReserveRegistrationToken(ctx, auth.Token, now.UnixMilli())
			if errors.Is(err, storage.ErrNotFound) {
				return nil, uiaChallenge(http.StatusUnauthorized, httputil.CodeUnauthorized, "Invalid registration token", spec, sess)
			} else if err != nil {
				return nil, err
			}
			if sess.RegistrationToken != "" {
				_ = a.store.ReleaseRegistrationToken(ctx, sess.RegistrationToken)
			}
			regToken = auth.Token
		}
	}
	sess, err := a.store.CompleteUIAStage(ctx, sess.ID, auth.Type, regToken)
	if err != nil {
		return nil, err
	}
	for _, f := range spec.flows {
		done := true
		for _, stage := range f {
			done = done && slices.Contains(sess.Completed, stage)
		}
		if done {
			return sess, nil
		}
	}
	return nil, uiaChallenge(http.StatusUnauthorized, "", "", spec, sess)
}

// checkPasswordStage checks m.login.password: the password must be the
// identified user's, and that user the requester (403 M_FORBIDDEN otherwise). A failure is the 401 challenge with
// errcode M_FORBIDDEN added, so the client can retry in the same session
// (client-server API, "User-interactive authentication API": a failed stage
// "returns the same HTTP status 401 response as above, with the addition of
// the standard errcode and error fields"; Synapse and SyTest agree).
func (a *API) checkPasswordStage(ctx context.Context, auth *authDict, spec uiaSpec, sess *storage.UIASession) error {
	name := auth.User
	if auth.Identifier != nil {
		if auth.Identifier.Type != "m.id.user" {
			return uiaChallenge(http.StatusUnauthorized, httputil.CodeForbidden, "Only m.id.user identifiers are supported", spec, sess)
		}
		name = auth.Identifier.User
	}
	fail := uiaChallenge(http.StatusUnauthorized, httputil.CodeForbidden, "Invalid username or password", spec, sess)
	if name == "" {
		return fail
	}
	userID, err := a.resolveLocalUser(name)
	if err != nil {
		return fail
	}
	acc, err := a.store.GetAccount(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return fail
	} else if err != nil {
		return err
	}
	if acc.PasswordHash == "" || bcrypt.CompareHashAndPassword([]byte(acc.PasswordHash), []byte(auth.Password)) != nil {
		return fail
	}
	if userID != spec.user {
		// Someone else's valid credentials: not a retryable stage failure
		// (Synapse answers 403 too; SyTest checks it).
		return httputil.Forbidden("The authenticated user does not match the requester")
	}
	return nil
}
