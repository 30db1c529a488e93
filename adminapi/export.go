package adminapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// ExportOptions selects what an e-discovery export contains. At least one of
// RoomID and UserID is set. FromTS and ToTS (ms, inclusive) bound the events'
// origin_server_ts when not zero; Keyword keeps events whose content
// contains it (case-insensitive).
type ExportOptions struct {
	RoomID  id.RoomID
	UserID  id.UserID
	FromTS  int64
	ToTS    int64
	Keyword string
	// Format is "jsonl" (one JSON object per event) or "html" (a readable transcript).
	Format string
}

// ExportRecord is one line of a JSON Lines export.
type ExportRecord struct {
	EventID        id.EventID      `json:"event_id"`
	RoomID         id.RoomID       `json:"room_id"`
	Type           string          `json:"type"`
	StateKey       *string         `json:"state_key,omitempty"`
	Sender         id.UserID       `json:"sender"`
	OriginServerTS int64           `json:"origin_server_ts"`
	StreamPos      int64           `json:"stream_pos"`
	Content        json.RawMessage `json:"content"`
	Redacted       bool            `json:"redacted"`
	// RedactedBecause is the redaction event's ID when the event was redacted.
	RedactedBecause id.EventID `json:"redacted_because,omitempty"`
	// OriginalContent is the content before redaction, kept by a compliance hold.
	OriginalContent json.RawMessage `json:"original_content,omitempty"`
	// Purged marks an event retention removed from the room, kept by a compliance hold.
	Purged bool `json:"purged,omitempty"`
	// Media lists the mxc:// URIs the event references.
	Media []string `json:"media"`
}

// ExportStore is what an export reads.
type ExportStore interface {
	storage.RoomStore
	storage.ComplianceStore
}

// mediaRefs collects every mxc:// URI in a JSON value.
func mediaRefs(v gjson.Result, out []string) []string {
	switch {
	case v.Type == gjson.String && strings.HasPrefix(v.Str, "mxc://"):
		return append(out, v.Str)
	case v.IsObject() || v.IsArray():
		v.ForEach(func(_, c gjson.Result) bool {
			out = mediaRefs(c, out)
			return true
		})
	}
	return out
}

// Export writes the events selected by opts to w, oldest first, and returns
// how many it wrote.
func Export(ctx context.Context, store ExportStore, opts ExportOptions, w io.Writer) (int, error) {
	if opts.RoomID == "" && opts.UserID == "" {
		return 0, httputil.MissingParam("room_id or user_id is required")
	}
	switch opts.Format {
	case "", "jsonl":
		opts.Format = "jsonl"
	case "html":
	default:
		return 0, httputil.InvalidParam("format must be jsonl or html")
	}
	var rooms []id.RoomID
	if opts.RoomID != "" {
		rooms = []id.RoomID{opts.RoomID}
	} else {
		ms, err := store.UserMemberships(ctx, opts.UserID)
		if err != nil {
			return 0, err
		}
		for _, m := range ms {
			rooms = append(rooms, m.RoomID)
		}
	}
	maxPos, err := store.MaxStreamPos(ctx)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriter(w)
	out := &exportWriter{w: bw, format: opts.Format}
	if err := out.begin(opts); err != nil {
		return 0, err
	}
	keyword := strings.ToLower(opts.Keyword)
	n := 0
	emit := func(rec *ExportRecord, content gjson.Result) error {
		if opts.UserID != "" && rec.Sender != opts.UserID || opts.FromTS > 0 && rec.OriginServerTS < opts.FromTS || opts.ToTS > 0 && rec.OriginServerTS > opts.ToTS {
			return nil
		}
		if keyword != "" && !strings.Contains(strings.ToLower(content.Raw), keyword) {
			return nil
		}
		rec.Media = mediaRefs(content, []string{})
		if err := out.record(rec); err != nil {
			return err
		}
		n++
		return nil
	}
	for _, room := range rooms {
		purged, err := store.PurgedHeldEvents(ctx, room)
		if err != nil {
			return n, err
		}
		// emitPurged writes the purged held events before stream position pos.
		emitPurged := func(pos int64) error {
			for len(purged) > 0 && purged[0].StreamPos < pos {
				h := purged[0]
				purged = purged[1:]
				r := gjson.ParseBytes(h.PDU)
				rec := ExportRecord{EventID: h.EventID, RoomID: h.RoomID, Type: r.Get("type").Str, Sender: h.Sender,
					OriginServerTS: r.Get("origin_server_ts").Int(), StreamPos: h.StreamPos, Purged: true}
				if sk := r.Get("state_key"); sk.Exists() {
					rec.StateKey = &sk.Str
				}
				c := r.Get("content")
				rec.Content = json.RawMessage(c.Raw)
				if c.Raw == "" {
					rec.Content = json.RawMessage("{}")
				}
				if err := emit(&rec, c); err != nil {
					return err
				}
			}
			return nil
		}
		// From below every position: events backfilled from other servers are negative.
		for from := int64(-1 << 62); ; {
			evs, err := store.RoomEvents(ctx, room, from, maxPos, 500, false)
			if err != nil {
				return n, err
			}
			if len(evs) == 0 {
				break
			}
			from = evs[len(evs)-1].StreamPos
			var redacted []id.EventID
			for _, ev := range evs {
				if ev.Redacted {
					redacted = append(redacted, ev.EventID)
				}
			}
			originals, err := store.HeldOriginals(ctx, redacted)
			if err != nil {
				return n, err
			}
			for _, ev := range evs {
				if err := emitPurged(ev.StreamPos); err != nil {
					return n, err
				}
				rec := ExportRecord{EventID: ev.EventID, RoomID: ev.RoomID, Type: ev.Type, StateKey: ev.StateKey, Sender: ev.Sender,
					OriginServerTS: ev.OriginTS, StreamPos: ev.StreamPos, Redacted: ev.Redacted}
				content := gjson.GetBytes(ev.JSON, "content")
				rec.Content = json.RawMessage(content.Raw)
				if content.Raw == "" {
					rec.Content = json.RawMessage("{}")
				}
				if ev.Redacted {
					rec.RedactedBecause = id.EventID(gjson.GetBytes(ev.Unsigned, "redacted_because.event_id").Str)
					if orig, ok := originals[ev.EventID]; ok {
						content = gjson.GetBytes(orig, "content")
						rec.OriginalContent = json.RawMessage(content.Raw)
					}
				}
				if err := emit(&rec, content); err != nil {
					return n, err
				}
			}
		}
		if err := emitPurged(maxPos + 1); err != nil {
			return n, err
		}
	}
	if err := out.end(n); err != nil {
		return n, err
	}
	return n, bw.Flush()
}

type exportWriter struct {
	w      *bufio.Writer
	format string
}

var htmlHead = template.Must(template.New("head").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Parley export</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}.redacted{color:#a00}</style>
</head><body><h1>Parley export</h1>
<p>{{if .RoomID}}Room {{.RoomID}}. {{end}}{{if .UserID}}User {{.UserID}}. {{end}}{{if .Keyword}}Keyword “{{.Keyword}}”. {{end}}Generated {{.Generated}}.</p>
<table><tr><th>Time (UTC)</th><th>Room</th><th>Sender</th><th>Type</th><th>Content</th></tr>
`))

var htmlRow = template.Must(template.New("row").Parse(`<tr id="{{.ID}}"><td>{{.Time}}</td><td>{{.Room}}</td><td>{{.Sender}}</td><td>{{.Type}}</td><td>{{if .Purged}}<span class="redacted">[expired, kept by hold]</span> {{end}}{{if .Redacted}}<span class="redacted">[redacted]</span> {{end}}{{.Text}}{{if .Original}}<br><span class="redacted">original: {{.Original}}</span>{{end}}{{range .Media}}<br>media: {{.}}{{end}}</td></tr>
`))

func (e *exportWriter) begin(opts ExportOptions) error {
	if e.format != "html" {
		return nil
	}
	return htmlHead.Execute(e.w, map[string]any{"RoomID": opts.RoomID, "UserID": opts.UserID, "Keyword": opts.Keyword,
		"Generated": time.Now().UTC().Format(time.RFC3339)})
}

// readable is the text shown for content in the HTML transcript.
func readable(typ string, c json.RawMessage) string {
	r := gjson.ParseBytes(c)
	switch {
	case r.Get("body").Type == gjson.String:
		return r.Get("body").Str
	case typ == "m.room.member":
		return r.Get("membership").Str
	}
	return string(c)
}

func (e *exportWriter) record(rec *ExportRecord) error {
	if e.format == "jsonl" {
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		_, err = e.w.Write(append(b, '\n'))
		return err
	}
	row := map[string]any{"ID": rec.EventID, "Time": time.UnixMilli(rec.OriginServerTS).UTC().Format("2006-01-02 15:04:05"),
		"Room": rec.RoomID, "Sender": rec.Sender, "Type": rec.Type, "Redacted": rec.Redacted, "Purged": rec.Purged, "Media": rec.Media,
		"Text": readable(rec.Type, rec.Content)}
	if rec.Type == "m.room.member" && rec.StateKey != nil && *rec.StateKey != string(rec.Sender) {
		row["Text"] = fmt.Sprintf("%s: %s", *rec.StateKey, row["Text"])
	}
	if len(rec.OriginalContent) > 0 {
		row["Original"] = readable(rec.Type, rec.OriginalContent)
	}
	return htmlRow.Execute(e.w, row)
}

func (e *exportWriter) end(n int) error {
	if e.format != "html" {
		return nil
	}
	_, err := fmt.Fprintf(e.w, "</table>\n<p>%d events.</p></body></html>\n", n)
	return err
}

// export handles GET /_parley/admin/v1/export?room_id=&user_id=&from=&to=&keyword=&format=jsonl|html.
func (a *API) export(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	q := r.URL.Query()
	opts := ExportOptions{RoomID: id.RoomID(q.Get("room_id")), UserID: id.UserID(q.Get("user_id")), Keyword: q.Get("keyword"), Format: q.Get("format")}
	for name, dst := range map[string]*int64{"from": &opts.FromTS, "to": &opts.ToTS} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return httputil.InvalidParam("%s must be a timestamp in milliseconds", name)
			}
			*dst = n
		}
	}
	if opts.RoomID == "" && opts.UserID == "" {
		return httputil.MissingParam("room_id or user_id is required")
	}
	if opts.Format != "" && opts.Format != "jsonl" && opts.Format != "html" {
		return httputil.InvalidParam("format must be jsonl or html")
	}
	if opts.RoomID != "" {
		if err := a.exportableRoom(r.Context(), opts.RoomID); err != nil {
			return err
		}
	}
	a.Audit(r.Context(), "export", dev, string(opts.RoomID)+string(opts.UserID), map[string]any{
		"room_id": opts.RoomID, "user_id": opts.UserID, "from": opts.FromTS, "to": opts.ToTS, "keyword": opts.Keyword, "format": opts.Format})
	if opts.Format == "html" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	// Once streaming has started errors can only be logged (by Wrap).
	_, err := Export(r.Context(), a.store, opts, w)
	return err
}

// exportableRoom checks the room exists, or existed and left events under
// a compliance hold behind (a purged room).
func (a *API) exportableRoom(ctx context.Context, roomID id.RoomID) error {
	_, err := a.store.GetRoom(ctx, roomID)
	if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	held, err := a.store.PurgedHeldEvents(ctx, roomID)
	if err != nil {
		return err
	}
	if len(held) == 0 {
		return httputil.NotFound("Room not found")
	}
	return nil
}
