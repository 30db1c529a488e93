// Package appservice pushes what application services are interested in to
// them (application service API, "Pushing events"): room events, and
// ephemeral events for services that ask (MSC2409, receive_ephemeral).
//
// Nothing is lost across restarts or service outages. Each service has an
// event cursor in the database: the stream position up to which room events
// were looked at. Its worker reads the events after the cursor, queues the
// interesting ones (appservice_queue) and moves the cursor in one database
// transaction, then sends the queue in transactions of at most maxTxnItems,
// one at a time, with increasing transaction IDs. A transaction keeps its ID
// and items until the service accepts it; failures are retried with
// exponential backoff. Committing an event costs nothing here beyond waking
// the workers.
//
// Several processes may share one PostgreSQL database: a service's worker
// works only while its process holds the service's lease (appservice_state),
// so each transaction is sent by one process. Every queue write checks the
// lease, and the lease outlives a transaction's time limit.
package appservice

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/asapi"
	"parley/internal/eventutil"
	"parley/roomserver"
	"parley/storage"
)

// Store is the storage the sender uses.
type Store interface {
	storage.AppServiceStore
	storage.ChangeFeed
	GetEvents(ctx context.Context, ids []id.EventID) ([]*storage.Event, error)
	RoomMemberships(ctx context.Context, roomID id.RoomID) ([]storage.Membership, error)
	RoomAliases(ctx context.Context, roomID id.RoomID) ([]id.RoomAlias, error)
	MaxStreamPos(ctx context.Context) (int64, error)
}

// Tuning of the workers.
const (
	// leaseTTL is how long a claimed lease lasts; it is renewed once less
	// than half of it is left, and stays well above asapi.TransactionTimeout.
	leaseTTL = 4 * asapi.TransactionTimeout
	// leaseRetry is how often a process without a service's lease checks
	// whether it can take it over.
	leaseRetry = leaseTTL / 4
	// maxTxnItems bounds a transaction (room and ephemeral events together).
	maxTxnItems = 100
	// ingestBatch is how many room events one read of the stream takes.
	ingestBatch = 200
	// cursorLag is how far the event cursor may run ahead of its stored value
	// when no event was queued (a restart looks at those events again, and
	// again finds nothing to queue).
	cursorLag  = 2000
	minBackoff = 500 * time.Millisecond
	maxBackoff = 5 * time.Minute
)

// Deps is what New needs.
type Deps struct {
	Registry *asapi.Registry
	Client   *asapi.Client
	Store    Store
	Log      *zap.Logger
}

// Sender delivers events to the application services with a URL.
type Sender struct {
	store  Store
	client *asapi.Client
	log    *zap.Logger
	// owner names this process in the leases it holds.
	owner string
	// aliasNamespaces is set when a service has an aliases namespace, so
	// that room aliases must be read to decide interest.
	aliasNamespaces bool
	workers         []*worker
	facts           factsCache
	ephemeral       chan ephemeralItem

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the sender; Start starts it.
func New(d Deps) *Sender {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	s := &Sender{store: d.Store, client: d.Client, log: d.Log, owner: hex.EncodeToString(b),
		ephemeral: make(chan ephemeralItem, 1024)}
	for _, as := range d.Registry.Services() {
		if !as.HasURL() {
			continue
		}
		s.aliasNamespaces = s.aliasNamespaces || as.HasAliasNamespace()
		s.workers = append(s.workers, &worker{s: s, as: as, wake: make(chan struct{}, 1),
			log: d.Log.With(zap.String("appservice", as.ID))})
	}
	return s
}

// Start runs a worker per service until Close.
func (s *Sender) Start(ctx context.Context) {
	if len(s.workers) == 0 {
		return
	}
	ctx, s.cancel = context.WithCancel(ctx)
	for _, w := range s.workers {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); w.run(ctx) }()
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.queueEphemeral(ctx) }()
	if s.store.SharedDatabase() {
		// Other processes' events and queued items wake the workers here.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := s.store.ListenChanges(ctx, func(topic string) {
				if topic == "" || topic == storage.AppServiceTopic || strings.HasPrefix(topic, "wake ") {
					s.wakeAll()
				}
			})
			if err != nil && ctx.Err() == nil {
				s.log.Warn("application service change feed", zap.Error(err))
			}
		}()
	}
}

// Close stops the workers and gives up their leases; what is queued stays
// in the database.
func (s *Sender) Close() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, w := range s.workers {
		if w.leaseUntil.After(time.Now()) {
			if err := s.store.ReleaseAppService(ctx, w.as.ID, s.owner); err != nil {
				w.log.Warn("release application service lease", zap.Error(err))
			}
		}
	}
}

// OnEvent is called for every committed room event: it wakes the workers,
// which read it from the database.
func (s *Sender) OnEvent(out roomserver.OutputEvent) {
	if len(s.workers) == 0 {
		return
	}
	if out.Event.Type == event.StateMember.Type {
		s.facts.forget(out.Event.RoomID)
	}
	s.wakeAll()
}

func (s *Sender) wakeAll() {
	for _, w := range s.workers {
		w.kick()
	}
}

// worker delivers one service's queue.
type worker struct {
	s    *Sender
	as   *asapi.Service
	log  *zap.Logger
	wake chan struct{}

	// The fields below belong to the worker's goroutine (and Close, after it ended).
	leaseUntil time.Time
	// cursor is the event cursor, possibly ahead of the stored one
	// (storedCursor) by events that were not queued; 0 until loaded.
	cursor, storedCursor int64
}

func (w *worker) kick() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run ingests new room events whenever woken, and sends transactions,
// backing off after failures; ingesting goes on during a backoff, so that
// interest is judged on the rooms' memberships of the moment.
func (w *worker) run(ctx context.Context) {
	backoff := time.Duration(0)
	var retryAt time.Time // when sending may be tried again after a failure
	for ctx.Err() == nil {
		if !w.holdLease(ctx) {
			// Another process sends this service's transactions (or the
			// database failed): look again later.
			sleep(ctx, leaseRetry)
			continue
		}
		more, err := w.ingest(ctx)
		sent := false
		if err == nil && !time.Now().Before(retryAt) {
			if sent, err = w.sendOne(ctx); err != nil && !errors.Is(err, storage.ErrLeaseLost) && ctx.Err() == nil {
				backoff = min(max(2*backoff, minBackoff), maxBackoff)
				retryAt = time.Now().Add(backoff)
				w.log.Info("application service transaction failed, backing off", zap.Duration("backoff", backoff), zap.Error(err))
				err = nil
			} else if err == nil {
				backoff, retryAt = 0, time.Time{}
			}
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, storage.ErrLeaseLost):
			w.leaseUntil = time.Time{}
			continue
		case err != nil:
			w.log.Warn("application service queue", zap.Error(err))
			sleep(ctx, minBackoff)
			continue
		case more || sent:
			continue
		}
		wait := time.Until(w.leaseUntil) - leaseTTL/2
		if !retryAt.IsZero() {
			wait = min(wait, time.Until(retryAt))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// holdLease claims or renews the service's lease when less than half of it is left.
func (w *worker) holdLease(ctx context.Context) bool {
	now := time.Now()
	if now.Before(w.leaseUntil.Add(-leaseTTL / 2)) {
		return true
	}
	start, err := w.s.store.MaxStreamPos(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("read stream position", zap.Error(err))
		}
		return false
	}
	until := now.Add(leaseTTL)
	ok, err := w.s.store.ClaimAppService(ctx, w.as.ID, w.s.owner, now.UnixMilli(), until.UnixMilli(), start)
	if err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			w.log.Warn("claim application service lease", zap.Error(err))
		}
		w.leaseUntil = time.Time{}
		return false
	}
	if w.leaseUntil.IsZero() {
		// A new lease: another process may have moved the cursor meanwhile.
		if w.cursor, err = w.s.store.AppServiceCursor(ctx, w.as.ID); err != nil {
			w.log.Warn("read application service cursor", zap.Error(err))
			return false
		}
		w.storedCursor = w.cursor
	}
	w.leaseUntil = until
	return true
}

// ingest queues the interesting events after the cursor and moves it on.
func (w *worker) ingest(ctx context.Context) (more bool, err error) {
	evs, err := w.s.store.TimelineEventsAfter(ctx, w.cursor, ingestBatch)
	if err != nil || len(evs) == 0 {
		return false, err
	}
	facts := map[id.RoomID]*roomFacts{} // loaded once per room of the batch, when needed
	var queue []id.EventID
	for _, ev := range evs {
		load := func() (*roomFacts, error) {
			if f, ok := facts[ev.RoomID]; ok {
				return f, nil
			}
			f, err := w.s.loadRoomFacts(ctx, ev.RoomID)
			if err == nil {
				facts[ev.RoomID] = f
			}
			return f, err
		}
		interested, err := w.s.interestedInEvent(w.as, ev, load)
		if err != nil {
			return false, err
		}
		if interested {
			queue = append(queue, ev.EventID)
		}
	}
	last := evs[len(evs)-1].StreamPos
	if len(queue) > 0 || last-w.storedCursor >= cursorLag {
		if err := w.s.store.QueueAppServiceEvents(ctx, w.as.ID, w.s.owner, queue, last); err != nil {
			return false, err
		}
		w.storedCursor = last
	}
	w.cursor = last
	return len(evs) == ingestBatch, nil
}

// sendOne sends the oldest undelivered transaction, if any.
func (w *worker) sendOne(ctx context.Context) (bool, error) {
	txn, err := w.s.store.NextAppServiceTxn(ctx, w.as.ID, w.s.owner, maxTxnItems)
	if err != nil || txn == nil {
		return false, err
	}
	body, empty, err := w.s.transactionBody(ctx, w.as, txn)
	if err != nil {
		return false, err
	}
	if !empty {
		if err := w.s.client.SendTransaction(ctx, w.as, txn.TxnID, body); err != nil {
			return false, err
		}
	}
	w.log.Debug("application service transaction sent", zap.Int64("txn_id", txn.TxnID), zap.Int("items", len(txn.Items)))
	return true, w.s.store.CompleteAppServiceTxn(ctx, w.as.ID, txn.TxnID)
}

// transactionBody is the JSON of PUT /_matrix/app/v1/transactions/{txnId}:
// room events in the client-server format (those gone since, purged with
// their room, are left out) and ephemeral events under "ephemeral" (and the
// unstable MSC2409 key for services registered with it). empty says that
// nothing is left to send.
func (s *Sender) transactionBody(ctx context.Context, as *asapi.Service, txn *storage.AppServiceTxn) (body []byte, empty bool, err error) {
	var ids []id.EventID
	for _, it := range txn.Items {
		if it.Kind == storage.AppServiceItemEvent {
			ids = append(ids, it.EventID)
		}
	}
	byID := map[id.EventID]*storage.Event{}
	if len(ids) > 0 {
		evs, err := s.store.GetEvents(ctx, ids)
		if err != nil {
			return nil, false, err
		}
		for _, ev := range evs {
			byID[ev.EventID] = ev
		}
	}
	now := time.Now().UnixMilli()
	events, ephemeral := []json.RawMessage{}, []json.RawMessage{}
	for _, it := range txn.Items {
		switch it.Kind {
		case storage.AppServiceItemEvent:
			if ev := byID[it.EventID]; ev != nil {
				events = append(events, eventutil.ClientEvent(nil, eventutil.ClientInput{PDU: ev.JSON, EventID: string(ev.EventID),
					RoomID: string(ev.RoomID), Unsigned: ev.Unsigned, NowMS: now}))
			}
		case storage.AppServiceItemEphemeral:
			ephemeral = append(ephemeral, it.Payload)
		}
	}
	out := map[string]any{"events": events}
	if len(ephemeral) > 0 {
		if as.ReceiveEphemeral {
			out["ephemeral"] = ephemeral
		}
		if as.MSC2409PushEphemeral {
			out["de.sorunome.msc2409.ephemeral"] = ephemeral
		}
	}
	body, err = json.Marshal(out)
	return body, len(events)+len(ephemeral) == 0, err
}

// Active says whether a service takes traffic (has a URL): otherwise the
// sender has nothing to do and need not hear of events.
func (s *Sender) Active() bool { return len(s.workers) > 0 }
