package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"go.mau.fi/util/jsontime"
	"go.uber.org/zap"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"parley/roomserver"
	"parley/storage"
)

// Spec limits of one transaction.
const (
	maxTxnPDUs = 50
	maxTxnEDUs = 100
)

// Backoff for unreachable destinations: doubling from minBackoff up to maxBackoff.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 10 * time.Minute
)

// outJob is one PDU or EDU to queue.
type outJob struct {
	roomID  id.RoomID
	ev      *storage.Event
	edu     []byte
	dests   []string
	exclude string
}

// Outbound sends PDUs and EDUs to other servers. Items are first written to
// the database queue (outbound_queue), so a restart loses nothing queued;
// then one goroutine per destination sends them in transactions of at most
// 50 PDUs and 100 EDUs, one transaction in flight at a time, backing off
// exponentially while the destination is unreachable.
type Outbound struct {
	serverName string
	store      storage.FederationStore
	client     *federation.Client
	rooms      *roomserver.Server
	deny       []string
	log        *zap.Logger

	in     chan outJob
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	txnSeq atomic.Int64
	start  int64

	// mu guards queues.
	mu     sync.Mutex
	queues map[string]chan struct{}
}

// NewOutbound builds the sender; Start starts it.
func NewOutbound(serverName string, store storage.FederationStore, client *federation.Client, rooms *roomserver.Server, deny []string, log *zap.Logger) *Outbound {
	return &Outbound{serverName: serverName, store: store, client: client, rooms: rooms, deny: deny, log: log,
		in: make(chan outJob, 1024), queues: map[string]chan struct{}{}, start: time.Now().UnixMilli()}
}

// Start resumes queues left in the database and starts the dispatcher.
func (o *Outbound) Start(ctx context.Context) error {
	o.ctx, o.cancel = context.WithCancel(ctx)
	dests, err := o.store.OutboundDestinations(o.ctx)
	if err != nil {
		return fmt.Errorf("load outbound queue: %w", err)
	}
	for _, d := range dests {
		o.wake(d)
	}
	o.wg.Add(1)
	go o.dispatch()
	return nil
}

// Close stops every goroutine; queued items stay in the database.
func (o *Outbound) Close() {
	if o.cancel != nil {
		o.cancel()
		o.wg.Wait()
	}
}

// OnEvent queues a committed event sent by a local user to the other servers
// in its room, unless the resident server that accepted it relays it.
func (o *Outbound) OnEvent(out roomserver.OutputEvent) {
	if out.Event.Sender.Homeserver() != o.serverName || out.Relayed || o.ctx == nil {
		return
	}
	o.enqueue(outJob{roomID: out.Event.RoomID, ev: out.Event})
}

// Broadcast queues a remote user's event that this server accepted on the
// remote's behalf (send_join, send_leave) to the room's servers except origin.
func (o *Outbound) Broadcast(ev *storage.Event, origin string) {
	o.enqueue(outJob{roomID: ev.RoomID, ev: ev, exclude: origin})
}

// SendEDU queues an EDU for the given destinations.
func (o *Outbound) SendEDU(dests []string, eduType string, content any) {
	b, err := json.Marshal(map[string]any{"edu_type": eduType, "content": content})
	if err != nil {
		o.log.Warn("marshal edu", zap.Error(err))
		return
	}
	o.enqueue(outJob{edu: b, dests: dests})
}

// SendRoomEDU queues an EDU for every other server with joined members in room.
func (o *Outbound) SendRoomEDU(room id.RoomID, eduType string, content any) {
	b, err := json.Marshal(map[string]any{"edu_type": eduType, "content": content})
	if err != nil {
		o.log.Warn("marshal edu", zap.Error(err))
		return
	}
	o.enqueue(outJob{edu: b, roomID: room})
}

func (o *Outbound) enqueue(j outJob) {
	if o.ctx == nil {
		return
	}
	select {
	case o.in <- j:
	case <-o.ctx.Done():
	}
}

func (o *Outbound) dispatch() {
	defer o.wg.Done()
	for {
		select {
		case <-o.ctx.Done():
			return
		case j := <-o.in:
			if err := o.queue(j); err != nil && o.ctx.Err() == nil {
				o.log.Error("queue outbound federation", zap.Error(err))
			}
		}
	}
}

func (o *Outbound) queue(j outJob) error {
	dests := j.dests
	kind, payload := "edu", j.edu
	if j.ev == nil && j.roomID != "" {
		var err error
		if dests, err = o.rooms.JoinedServers(o.ctx, j.roomID); err != nil {
			return err
		}
	}
	if j.ev != nil {
		kind, payload = "pdu", j.ev.JSON
		var err error
		if dests, err = o.rooms.JoinedServers(o.ctx, j.roomID); err != nil {
			return err
		}
		// The target of a membership change hears about it even when not joined (invites, kicks, bans).
		if j.ev.Type == event.StateMember.Type && j.ev.StateKey != nil {
			if t := id.UserID(*j.ev.StateKey).Homeserver(); t != "" && !slices.Contains(dests, t) {
				dests = append(dests, t)
			}
		}
		if j.ev.Type == event.StateMember.Type && gjson.GetBytes(j.ev.JSON, "content.membership").Str == "invite" {
			// The invitee's server received the invite directly (invite v2).
			dests = slices.DeleteFunc(dests, func(d string) bool { return d == id.UserID(*j.ev.StateKey).Homeserver() && !o.joined(j.roomID, d) })
		}
	}
	dests = slices.DeleteFunc(slices.Clone(dests), func(d string) bool {
		return d == o.serverName || d == j.exclude || slices.Contains(o.deny, d)
	})
	if len(dests) == 0 {
		return nil
	}
	if err := o.store.EnqueueOutbound(o.ctx, dests, kind, payload, time.Now().UnixMilli()); err != nil {
		return err
	}
	for _, d := range dests {
		o.wake(d)
	}
	return nil
}

func (o *Outbound) joined(roomID id.RoomID, server string) bool {
	servers, err := o.rooms.JoinedServers(o.ctx, roomID)
	return err == nil && slices.Contains(servers, server)
}

// wake makes dest's worker look at its queue, starting the worker if needed.
func (o *Outbound) wake(dest string) {
	o.mu.Lock()
	ch, ok := o.queues[dest]
	if !ok {
		ch = make(chan struct{}, 1)
		o.queues[dest] = ch
		o.wg.Add(1)
		go o.worker(dest, ch)
	}
	o.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

// worker sends dest's queue, one transaction at a time.
func (o *Outbound) worker(dest string, wake chan struct{}) {
	defer o.wg.Done()
	log := o.log.With(zap.String("destination", dest))
	backoff := time.Duration(0)
	for {
		pdus, err := o.store.PendingOutbound(o.ctx, dest, "pdu", maxTxnPDUs)
		var edus []storage.QueueItem
		if err == nil {
			edus, err = o.store.PendingOutbound(o.ctx, dest, "edu", maxTxnEDUs)
		}
		if o.ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Error("load outbound queue", zap.Error(err))
		} else if len(pdus)+len(edus) > 0 {
			if err = o.send(dest, pdus, edus); err == nil {
				backoff = 0
				continue
			}
			backoff = min(max(backoff*2, minBackoff), maxBackoff)
			log.Info("federation transaction failed, backing off", zap.Duration("backoff", backoff), zap.Error(err))
			select {
			case <-time.After(backoff):
				continue
			case <-o.ctx.Done():
				return
			}
		}
		select {
		case <-wake:
		case <-o.ctx.Done():
			return
		}
	}
}

func (o *Outbound) send(dest string, pdus, edus []storage.QueueItem) error {
	req := &federation.ReqSendTransaction{Destination: dest, TxnID: fmt.Sprintf("%d_%d", o.start, o.txnSeq.Add(1)),
		Origin: o.serverName, OriginServerTS: jsontime.UM(time.Now()), PDUs: []federation.PDU{}}
	ids := make([]int64, 0, len(pdus)+len(edus))
	for _, it := range pdus {
		req.PDUs = append(req.PDUs, json.RawMessage(it.Payload))
		ids = append(ids, it.ID)
	}
	for _, it := range edus {
		req.EDUs = append(req.EDUs, json.RawMessage(it.Payload))
		ids = append(ids, it.ID)
	}
	ctx, cancel := context.WithTimeout(o.ctx, 2*time.Minute)
	defer cancel()
	resp, err := o.client.SendTransaction(ctx, req)
	var herr mautrix.HTTPError
	if errors.As(err, &herr) && herr.Response != nil && herr.Response.StatusCode >= 400 && herr.Response.StatusCode < 500 &&
		herr.Response.StatusCode != http.StatusTooManyRequests && herr.Response.StatusCode != http.StatusUnauthorized {
		// The destination refuses this transaction for good: retrying would block its queue forever.
		o.log.Warn("destination refused transaction, dropping it", zap.String("destination", dest),
			zap.Int("status", herr.Response.StatusCode), zap.Int("pdus", len(pdus)), zap.Int("edus", len(edus)))
		return o.store.DeleteOutbound(o.ctx, ids)
	}
	if err != nil {
		return err
	}
	if resp != nil {
		for evID, res := range resp.PDUs {
			if res.Error != "" {
				o.log.Info("remote rejected pdu", zap.String("destination", dest), zap.String("event_id", string(evID)), zap.String("error", res.Error))
			}
		}
	}
	return o.store.DeleteOutbound(o.ctx, ids)
}
