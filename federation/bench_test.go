package federation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.mau.fi/util/jsontime"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"
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
