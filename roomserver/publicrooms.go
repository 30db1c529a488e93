package roomserver

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PublicRoomsQuery is a query of the local room directory (client and
// federation publicRooms, GET or POST).
type PublicRoomsQuery struct {
	// Limit is the page size; 0 means no limit.
	Limit int
	// Since is a next_batch or prev_batch token from an earlier page.
	Since string
	// SearchTerm (filter.generic_search_term) matches name, topic and canonical alias, case-insensitively.
	SearchTerm string
	// RoomTypes (filter.room_types), when set, keeps only rooms of these
	// types; a nil entry stands for rooms without a type.
	RoomTypes *[]*string
	// ThirdPartyInstanceID names an application service network's directory,
	// "<service id>|<network id>" (the instance_id of GET /thirdparty/protocols).
	ThirdPartyInstanceID string
	// IncludeAllNetworks adds every application service network's rooms to
	// the main directory.
	IncludeAllNetworks bool
}

// PublicRoomsPage is one page of the room directory.
type PublicRoomsPage struct {
	Chunk     []*RoomSummary
	NextBatch string
	PrevBatch string
	// Total is the number of rooms matching the filter.
	Total int
}

// QueryPublicRooms answers a room directory query from the rooms published
// here, most joined members first. Pagination tokens are "p<offset>" into
// that order; an invalid token is ErrInvalidParam.
func (s *Server) QueryPublicRooms(ctx context.Context, q PublicRoomsQuery) (*PublicRoomsPage, error) {
	if q.Limit < 0 {
		return nil, fmt.Errorf("%w: limit must be a non-negative integer", ErrInvalidParam)
	}
	offset := 0
	if q.Since != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(q.Since, "p"))
		if err != nil || n < 0 || !strings.HasPrefix(q.Since, "p") {
			return nil, fmt.Errorf("%w: invalid since token", ErrInvalidParam)
		}
		offset = n
	}
	page := &PublicRoomsPage{Chunk: []*RoomSummary{}}
	all, err := s.directoryRooms(ctx, q)
	if err != nil {
		return nil, err
	}
	term := strings.ToLower(q.SearchTerm)
	rooms := all[:0]
	for _, r := range all {
		if term != "" && !strings.Contains(strings.ToLower(r.Name), term) && !strings.Contains(strings.ToLower(r.Topic), term) &&
			!strings.Contains(strings.ToLower(r.CanonicalAlias), term) {
			continue
		}
		if q.RoomTypes != nil && !roomTypeIn(r.RoomType, *q.RoomTypes) {
			continue
		}
		rooms = append(rooms, r)
	}
	limit := len(rooms)
	if q.Limit > 0 {
		limit = q.Limit
	}
	start := min(offset, len(rooms))
	end := min(start+limit, len(rooms))
	page.Chunk = rooms[start:end]
	page.Total = len(rooms)
	if end < len(rooms) {
		page.NextBatch = "p" + strconv.Itoa(end)
	}
	if start > 0 {
		page.PrevBatch = "p" + strconv.Itoa(max(start-limit, 0))
	}
	return page, nil
}

// directoryRooms returns the summaries of the directory q asks for: the main
// one, an application service network's, or both kinds together. An
// instance ID that names no network has no rooms.
func (s *Server) directoryRooms(ctx context.Context, q PublicRoomsQuery) ([]*RoomSummary, error) {
	if q.ThirdPartyInstanceID != "" {
		asID, network, ok := strings.Cut(q.ThirdPartyInstanceID, "|")
		if !ok || asID == "" || network == "" {
			return []*RoomSummary{}, nil // no such network: no rooms
		}
		ids, err := s.store.AppServicePublicRooms(ctx, asID, network)
		if err != nil {
			return nil, err
		}
		return s.summaries(ctx, ids)
	}
	ids, err := s.store.PublicRoomIDs(ctx)
	if err != nil {
		return nil, err
	}
	if q.IncludeAllNetworks {
		bridged, err := s.store.AppServicePublicRooms(ctx, "", "")
		if err != nil {
			return nil, err
		}
		for _, r := range bridged {
			if !slices.Contains(ids, r) {
				ids = append(ids, r)
			}
		}
	}
	return s.summaries(ctx, ids)
}

func roomTypeIn(t string, types []*string) bool {
	for _, want := range types {
		if (want == nil && t == "") || (want != nil && *want == t) {
			return true
		}
	}
	return false
}

// JSON is the page in the spec's PublicRoomsResponse shape.
func (p *PublicRoomsPage) JSON() map[string]any {
	chunk := make([]map[string]any, len(p.Chunk))
	for i, r := range p.Chunk {
		chunk[i] = r.JSON()
	}
	out := map[string]any{"chunk": chunk, "total_room_count_estimate": p.Total}
	if p.NextBatch != "" {
		out["next_batch"] = p.NextBatch
	}
	if p.PrevBatch != "" {
		out["prev_batch"] = p.PrevBatch
	}
	return out
}

// JSON is the summary as a PublishedRoomsChunk (also the base of a hierarchy room).
func (r *RoomSummary) JSON() map[string]any {
	out := map[string]any{
		"room_id": r.RoomID, "num_joined_members": r.NumJoinedMembers,
		"world_readable": r.WorldReadable, "guest_can_join": r.GuestCanJoin, "join_rule": r.JoinRule,
	}
	for k, v := range map[string]string{"name": r.Name, "topic": r.Topic, "canonical_alias": r.CanonicalAlias, "avatar_url": r.AvatarURL, "room_type": r.RoomType} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// FullJSON is JSON with the fields of the spec's RoomSummary (room hierarchy
// and room_summary): room_version, encryption and allowed_room_ids.
func (r *RoomSummary) FullJSON() map[string]any {
	out := r.JSON()
	if r.Version != "" {
		out["room_version"] = r.Version
	}
	if r.Encryption != "" {
		out["encryption"] = r.Encryption
	}
	if len(r.AllowedRoomIDs) > 0 {
		out["allowed_room_ids"] = r.AllowedRoomIDs
	}
	return out
}
