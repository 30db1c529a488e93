// Package homeserver is the composition root: it opens storage, builds every
// component and wires them together. It is the only package that knows them all.
package homeserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"go.uber.org/zap"
	mfed "maunium.net/go/mautrix/federation"

	"parley/adminapi"
	"parley/appservice"
	"parley/clientapi"
	"parley/federation"
	"parley/internal/asapi"
	"parley/internal/config"
	"parley/internal/httputil"
	"parley/internal/logging"
	"parley/internal/ratelimit"
	"parley/internal/signing"
	"parley/keyserver"
	"parley/mediaapi"
	"parley/mediaapi/blob"
	"parley/retention"
	"parley/roomserver"
	"parley/searchapi"
	"parley/storage"
	"parley/storage/sqlstore"
	"parley/syncapi"
)

// Version is Parley's version, reported by `parley version` and the federation
// version endpoint; set at build time with -ldflags "-X parley/internal/homeserver.Version=...".
var Version = "0.1.0-dev"

// Homeserver is a running Parley instance without its listeners.
type Homeserver struct {
	Config     config.Config
	Store      storage.Store
	SigningKey *mfed.SigningKey
	Log        *zap.Logger
	// Rooms is the roomserver.
	Rooms *roomserver.Server
	// Inbox serves account data, filters, typing, receipts, presence, push
	// rules and notifications; the roomserver feeds it every committed event (Inbox.OnRoomEvent).
	Inbox *syncapi.Inbox
	// PDU is the /sync room event stream.
	PDU *syncapi.PDUStream
	// Keys holds this server's keys and caches other servers' keys.
	Keys *federation.Keyring
	// Outbound is the federation sender.
	Outbound *federation.Outbound
	// Media is the media repository; federation serves local media with its
	// LocalMedia and LocalThumbnail.
	Media *mediaapi.API

	// Retention is the retention purge job.
	Retention *retention.Job
	// AppServices pushes events to the application services, and
	// AppServiceClient makes every call to them.
	AppServices      *appservice.Sender
	AppServiceClient *asapi.Client

	handler       http.Handler
	stopRetention context.CancelFunc
}

// New opens storage (running migrations), loads or creates the signing key and builds every component.
func New(ctx context.Context, cfg config.Config, log *zap.Logger) (*Homeserver, error) {
	var proxies []netip.Prefix
	for _, p := range cfg.Listen.TrustedProxies {
		pfx, err := config.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("listen.trusted_proxies: %w", err)
		}
		proxies = append(proxies, pfx)
	}
	key, created, err := signing.LoadOrGenerate(cfg.SigningKeyPath)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if created {
		log.Info("generated signing key", zap.String("path", cfg.SigningKeyPath), zap.String("key_id", string(key.ID)))
	}
	services, err := config.LoadAppServices(&cfg)
	if err != nil {
		return nil, err
	}
	apps, err := asapi.NewRegistry(services, cfg.ServerName)
	if err != nil {
		return nil, err
	}
	store, err := sqlstore.New(ctx, cfg.Database.URL, cfg.Database.MaxOpenConns)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := createAppServiceSenders(ctx, store, apps, log); err != nil {
		store.Close()
		return nil, err
	}
	hs := &Homeserver{Config: cfg, Store: store, SigningKey: key, Log: log}

	fedClient, err := federation.NewClient(&hs.Config, key)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("federation client: %w", err)
	}
	hs.Keys = federation.NewKeyring(cfg.ServerName, key, cfg.Federation.OldVerifyKeys, store, fedClient, log)
	router := httputil.NewRouter()
	notifier := syncapi.NewNotifier()
	rooms := roomserver.New(roomserver.Deps{Store: store, Config: &hs.Config, SigningKey: key, Log: log, Keys: hs.Keys.GetKey})
	hs.Rooms = rooms
	pduStream := syncapi.NewPDUStream(rooms, store, notifier, log)
	hs.PDU = pduStream
	if err := pduStream.Load(ctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("load room memberships: %w", err)
	}
	rooms.SetRemote(federation.NewRemote(fedClient))
	hs.Outbound = federation.NewOutbound(cfg.ServerName, store, fedClient, rooms, cfg.Federation.DenyServers, log)
	if err := hs.Outbound.Start(context.WithoutCancel(ctx)); err != nil {
		store.Close()
		return nil, err
	}

	// Push gateways and application services are reached with the same TLS
	// trust as federation (test networks use a private CA).
	pushTLS, err := cfg.Federation.ClientTLSConfig()
	if err != nil {
		store.Close()
		return nil, err
	}
	asHTTP := &http.Client{}
	if pushTLS != nil {
		asHTTP.Transport = &http.Transport{TLSClientConfig: pushTLS, Proxy: http.ProxyFromEnvironment}
	}
	asClient := asapi.NewClient(asHTTP)
	hs.AppServiceClient = asClient
	hs.AppServices = appservice.New(appservice.Deps{Registry: apps, Client: asClient, Store: store, Log: log})

	auditor := adminapi.NewAuditor(store, log)
	limits := ratelimit.NewLimits(cfg.RateLimits)
	devices := keyserver.WakeOnDeviceChanges(store, notifier, log)
	client := clientapi.New(clientapi.Deps{
		Audit:  auditor.Record,
		Config: &hs.Config, Store: devices, Log: log, Rooms: rooms,
		Limits:       limits,
		Profiles:     rooms,
		RoomVersions: rooms.RoomVersions,
		Remote:       federation.NewRemote(fedClient),
		AppServices:  apps, AppServiceClient: asClient,
	})
	client.Register(router)

	keys := keyserver.New(keyserver.Deps{
		Config: &hs.Config, Store: store, Auth: client.Authenticator(), Notifier: notifier, UIA: client,
		Rooms: store, ServerName: cfg.ServerName, Log: log,
	})
	keys.SetFederation(fedKeys{remote: federation.NewRemote(fedClient), out: hs.Outbound})
	devices.AnnounceTo(keys.DevicesChanged)
	keys.Register(router)
	// Committed events go to the inbox, which evaluates push rules and then
	// hands each event to the PDU stream (a /sync woken by an event also sees
	// the notification counts it caused) and to the key server (membership
	// changes start or stop device-list tracking).
	pushClient := &http.Client{Timeout: 30 * time.Second}
	if pushTLS != nil {
		pushClient.Transport = &http.Transport{TLSClientConfig: pushTLS, Proxy: http.ProxyFromEnvironment}
	}
	hs.Inbox = syncapi.NewInbox(syncapi.InboxDeps{Config: &hs.Config, Store: store, RoomStore: store,
		AfterEvent: func(out roomserver.OutputEvent) {
			pduStream.OnEvent(out)
			keys.OnEvent(out.Event)
		},
		Notifier: notifier, HTTPClient: pushClient,
		Rooms: syncapi.NewRoomMembership(store), Auth: client.Authenticator(), Log: log})
	// Push rules of local messages are evaluated before the commit, so that
	// their notifications are written in the event's own transaction.
	rooms.SetNotifications(hs.Inbox.EventNotifications)
	onEvent := func(ev roomserver.OutputEvent) {
		hs.Inbox.OnRoomEvent(ev)
		hs.Outbound.OnEvent(ev)
		auditor.OnRoomEvent(ev)
	}
	if hs.AppServices.Active() {
		// Only with application services does a committed event wake their workers.
		base := onEvent
		onEvent = func(ev roomserver.OutputEvent) {
			base(ev)
			hs.AppServices.OnEvent(ev)
		}
	}
	rooms.SetOnEvent(onEvent)
	hs.Inbox.SetEDUSink(hs.Outbound)
	if hs.AppServices.WantsEphemeral() {
		hs.Inbox.SetEphemeralSink(hs.AppServices)
	}
	hs.Inbox.Register(router)
	hs.Inbox.Start(context.WithoutCancel(ctx))
	// /sync and sliding sync share the streams: sliding sync's to_device and
	// e2ee extensions read the key streams.
	streams := append([]syncapi.Stream{pduStream, keyserver.NewToDeviceStream(store), keys.DeviceListStream()}, hs.Inbox.Streams()...)
	sync := syncapi.New(syncapi.Deps{Auth: client.Authenticator(), Notifier: notifier, Log: log,
		Streams: streams, Positions: store, Filters: hs.Inbox, Observer: hs.Inbox.Observer()})
	sync.Register(router)
	hs.Retention = retention.New(&hs.Config, store, log)
	admin := adminapi.New(adminapi.Deps{Config: &hs.Config, Store: devices, Rooms: rooms, Auth: client.Authenticator(), Log: log, Version: Version,
		Purger: hs.Retention, Limits: limits})
	if err := admin.LoadRestrictions(ctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("load user restrictions: %w", err)
	}
	admin.Register(router)
	searchapi.New(searchapi.Deps{Config: &hs.Config, Store: store, Rooms: rooms, Auth: client.Authenticator(), Log: log}).Register(router)
	sliding := syncapi.NewSlidingSync(syncapi.SlidingSyncDeps{Auth: client.Authenticator(), Notifier: notifier,
		PDU: pduStream, Inbox: hs.Inbox, Store: store, Streams: streams, Observer: hs.Inbox.Observer(),
		ConnectionTTL: cfg.Sync.SlidingSyncConnectionTTL, Log: log})
	sliding.Register(router)

	blobs, err := blob.NewLocal(cfg.Media.Path)
	if err != nil {
		store.Close()
		return nil, err
	}
	media, err := mediaapi.New(mediaapi.Deps{
		Config: &hs.Config, Store: store, Accounts: store, Blobs: blobs, Auth: client.Authenticator(), Log: log,
		RoomMedia: mediaapi.StoreRoomMedia{Rooms: store},
		Remote:    fedRemoteMedia{federation.NewMediaFetcher(fedClient)},
	})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("media: %w", err)
	}
	media.Register(router)
	hs.Media = media

	fed := federation.New(federation.Deps{Config: &hs.Config, Key: key, Version: Version, Log: log, Store: store,
		Keys: hs.Keys, Client: fedClient, Rooms: rooms, Outbound: hs.Outbound,
		EDUs: &federation.EDUs{Sink: hs.Inbox, ToDevice: keys, ACL: rooms}, Media: fedLocalMedia{media}, AppServices: client, UserKeys: keys})
	fed.Register(router)

	hs.handler = httputil.CORS(httputil.RealIP(proxies, hs.requestLog(httputil.LimitBody(cfg.Listen.MaxRequestBytes, isMediaUpload, admin.Restrict(router)))))
	// The purge job starts last, once nothing can fail any more.
	retCtx, stopRetention := context.WithCancel(context.WithoutCancel(ctx))
	hs.stopRetention = stopRetention
	go hs.Retention.Run(retCtx)
	go admin.WatchChanges(retCtx) // other processes' moderation changes
	// Other processes' writes wake this one's /sync long-polls, and back.
	notifier.LinkProcesses(retCtx, store, pduStream.LocalRoomUsers, log)
	hs.Inbox.LinkTyping(retCtx, store)
	go indexForSearch(retCtx, store, log)
	hs.AppServices.Start(context.WithoutCancel(ctx))
	return hs, nil
}

// isMediaUpload exempts media uploads from listen.max_request_bytes; they
// have their own limit (media.max_upload_size).
func isMediaUpload(r *http.Request) bool {
	p := r.URL.Path
	return strings.HasPrefix(p, "/_matrix/media/") && strings.Contains(p, "/upload") ||
		strings.HasPrefix(p, "/_matrix/client/v1/media/upload")
}

// Handler is the HTTP handler serving every API.
func (hs *Homeserver) Handler() http.Handler { return hs.handler }

// Close stops background work and closes the database.
func (hs *Homeserver) Close() error {
	hs.stopRetention()
	hs.Rooms.Drain() // committed events reach their subscribers before those stop
	hs.Inbox.Close()
	hs.Outbound.Close()
	hs.AppServices.Close()
	return hs.Store.Close()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// requestLog gives each request an id and a child logger, and logs one line per
// request at debug level. The query string is not logged: it may hold an access token.
func (hs *Homeserver) requestLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hs.Log.Core().Enabled(zap.DebugLevel) {
			next.ServeHTTP(w, r)
			return
		}
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		reqID := hex.EncodeToString(b)
		log := hs.Log.With(zap.String("request_id", reqID))
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(logging.With(r.Context(), log)))
		log.Debug("request", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.Int("status", rec.status), zap.Duration("duration", time.Since(start)))
	})
}

// indexForSearch keeps the search index current in the background (SQLite
// indexes events after they are stored; searches also catch up first).
func indexForSearch(ctx context.Context, store storage.Store, log *zap.Logger) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := store.CatchUpSearch(ctx); err != nil && ctx.Err() == nil {
				log.Warn("search indexing", zap.Error(err))
			}
		}
	}
}
