package federation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"go.mau.fi/util/jsontime"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
	"parley/roomserver"
)

// BenchmarkInboundTransaction measures PDUs/s accepted by hs1 from hs2 into
// one room: transactions of 50 chained m.room.message events, each going
// through signature, hash and auth checks and persistence.
func BenchmarkInboundTransaction(b *testing.B) {
	f := joinedPair(b)
	ctx := context.Background()
	prev, err := f.hs1.HS.Store.ForwardExtremities(ctx, f.room)
	if err != nil {
		b.Fatal(err)
	}
	evs, _ := f.hs1.HS.Store.GetEvents(ctx, prev)
	depth := int64(0)
	for _, e := range evs {
		depth = max(depth, e.Depth)
	}
	txns := make([]*mfed.ReqSendTransaction, b.N)
	for i := range txns {
		req := &mfed.ReqSendTransaction{Destination: "hs1.test", TxnID: fmt.Sprintf("bench%d", i), Origin: "hs2.test",
			OriginServerTS: jsontime.UM(time.Now())}
		for j := 0; j < 50; j++ {
			depth++
			p, evID := f.build(b, f.bob.UserID, f.hs2.HS.SigningKey, fmt.Sprintf("m%d.%d", i, j), prev, depth)
			req.PDUs = append(req.PDUs, json.RawMessage(raw(b, p)))
			prev = []id.EventID{evID}
		}
		txns[i] = req
	}
	c := fedClientTB(b, f)
	b.ResetTimer()
	start := time.Now()
	for _, req := range txns {
		resp, err := c.SendTransaction(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		for evID, r := range resp.PDUs {
			if r.Error != "" {
				b.Fatalf("%s: %s", evID, r.Error)
			}
		}
	}
	b.ReportMetric(float64(b.N*50)/time.Since(start).Seconds(), "pdus/s")
}

// BenchmarkJoinLargeRoom measures the time for bob@hs2 to join a room on
// hs1 with 1,000 members and 10,000 state events in all (make_join,
// send_join, checking every state and auth chain event, storing them).
func BenchmarkJoinLargeRoom(b *testing.B) {
	members, stateEvents := benchSize("PARLEY_BENCH_MEMBERS", 1000), benchSize("PARLEY_BENCH_STATE", 10000)
	s := testserver.NewFederation(b, []string{"hs1.test", "hs2.test"})
	hs1, hs2 := s[0], s[1]
	ctx := context.Background()
	alice := hs1.Register(b, "alice")
	setup := time.Now()
	room := id.RoomID(alice.MustDo(b, "POST", "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string))
	// State first (one member: cheap fan-out), then the members.
	for i := 0; i < stateEvents-members-6; i++ {
		sk := fmt.Sprintf("k%d", i)
		if _, err := hs1.HS.Rooms.Send(ctx, roomserver.SendRequest{RoomID: room, Sender: alice.UserID, Type: "org.parley.bench", StateKey: &sk,
			Content: []byte(`{"v":1}`)}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 1; i < members; i++ {
		if _, err := hs1.HS.Rooms.Join(ctx, roomserver.MembershipRequest{RoomID: room, Sender: id.UserID(fmt.Sprintf("@m%d:hs1.test", i))}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("room built in %s", time.Since(setup))
	state, _ := hs1.HS.Store.CurrentState(ctx, room)
	b.Logf("room has %d state events", len(state))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bob := hs2.Register(b, fmt.Sprintf("bob%d", i))
		start := time.Now()
		bob.MustDo(b, "POST", "join/"+url.PathEscape(string(room))+"?server_name=hs1.test", map[string]any{})
		b.ReportMetric(time.Since(start).Seconds(), "s/join")
	}
}

func benchSize(env string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(env)); err == nil && v > 0 {
		return v
	}
	return def
}
