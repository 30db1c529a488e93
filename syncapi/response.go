package syncapi

import (
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// Response is the body of GET /sync. Maps are created up front and the JSON
// form omits empty sections, as Synapse does, so that an idle incremental
// sync is a few bytes.
type Response struct {
	NextBatch              string         `json:"next_batch"`
	Rooms                  *Rooms         `json:"rooms,omitempty"`
	Presence               *EventList     `json:"presence,omitempty"`
	AccountData            *EventList     `json:"account_data,omitempty"`
	ToDevice               *EventList     `json:"to_device,omitempty"`
	DeviceLists            *DeviceLists   `json:"device_lists,omitempty"`
	DeviceOneTimeKeysCount map[string]int `json:"device_one_time_keys_count,omitempty"`
	DeviceUnusedFallback   []string       `json:"device_unused_fallback_key_types"`

	// joined memoises the syncing user's joined rooms for the streams that
	// fill this one response (Inbox.joinedIn); a long-poll builds a new
	// response, and so reads them again, on each pass.
	joined *joinedRooms
}

type joinedRooms struct {
	set  map[id.RoomID]struct{}
	list []id.RoomID
}

// EventList is {"events": [...]}.
type EventList struct {
	Events []json.RawMessage `json:"events"`
}

// Rooms holds the per-membership room maps.
type Rooms struct {
	Join   map[id.RoomID]*JoinedRoom  `json:"join,omitempty"`
	Invite map[id.RoomID]*InvitedRoom `json:"invite,omitempty"`
	Leave  map[id.RoomID]*LeftRoom    `json:"leave,omitempty"`
	Knock  map[id.RoomID]*KnockedRoom `json:"knock,omitempty"`
}

// Timeline is a room's timeline section.
type Timeline struct {
	Events    []json.RawMessage `json:"events"`
	Limited   bool              `json:"limited"`
	PrevBatch string            `json:"prev_batch,omitempty"`
}

// Summary is m.heroes / counts.
type Summary struct {
	Heroes             []id.UserID `json:"m.heroes,omitempty"`
	JoinedMemberCount  *int        `json:"m.joined_member_count,omitempty"`
	InvitedMemberCount *int        `json:"m.invited_member_count,omitempty"`
}

// UnreadCounts are notification and highlight counts.
type UnreadCounts struct {
	NotificationCount int `json:"notification_count"`
	HighlightCount    int `json:"highlight_count"`
}

// JoinedRoom is one entry of rooms.join.
type JoinedRoom struct {
	Summary                   *Summary                 `json:"summary,omitempty"`
	State                     EventList                `json:"state"`
	Timeline                  Timeline                 `json:"timeline"`
	Ephemeral                 EventList                `json:"ephemeral"`
	AccountData               EventList                `json:"account_data"`
	UnreadNotifications       *UnreadCounts            `json:"unread_notifications,omitempty"`
	UnreadThreadNotifications map[string]*UnreadCounts `json:"unread_thread_notifications,omitempty"`
}

// InvitedRoom is one entry of rooms.invite.
type InvitedRoom struct {
	InviteState EventList `json:"invite_state"`
}

// KnockedRoom is one entry of rooms.knock.
type KnockedRoom struct {
	KnockState EventList `json:"knock_state"`
}

// LeftRoom is one entry of rooms.leave.
type LeftRoom struct {
	State       EventList `json:"state"`
	Timeline    Timeline  `json:"timeline"`
	AccountData EventList `json:"account_data"`
}

// DeviceLists is device_lists.
type DeviceLists struct {
	Changed []id.UserID `json:"changed,omitempty"`
	Left    []id.UserID `json:"left,omitempty"`
}

// NewResponse returns a Response with every section allocated.
func NewResponse() *Response {
	return &Response{
		Rooms: &Rooms{
			Join:   map[id.RoomID]*JoinedRoom{},
			Invite: map[id.RoomID]*InvitedRoom{},
			Leave:  map[id.RoomID]*LeftRoom{},
			Knock:  map[id.RoomID]*KnockedRoom{},
		},
		Presence:               &EventList{Events: []json.RawMessage{}},
		AccountData:            &EventList{Events: []json.RawMessage{}},
		ToDevice:               &EventList{Events: []json.RawMessage{}},
		DeviceLists:            &DeviceLists{},
		DeviceOneTimeKeysCount: map[string]int{},
		DeviceUnusedFallback:   []string{},
	}
}

// JoinedRoom returns rooms.join[room], creating it.
func (r *Response) JoinedRoom(room id.RoomID) *JoinedRoom {
	jr := r.Rooms.Join[room]
	if jr == nil {
		jr = &JoinedRoom{
			State:       EventList{Events: []json.RawMessage{}},
			Timeline:    Timeline{Events: []json.RawMessage{}},
			Ephemeral:   EventList{Events: []json.RawMessage{}},
			AccountData: EventList{Events: []json.RawMessage{}},
		}
		r.Rooms.Join[room] = jr
	}
	return jr
}

// LeftRoom returns rooms.leave[room], creating it.
func (r *Response) LeftRoom(room id.RoomID) *LeftRoom {
	lr := r.Rooms.Leave[room]
	if lr == nil {
		lr = &LeftRoom{
			State:       EventList{Events: []json.RawMessage{}},
			Timeline:    Timeline{Events: []json.RawMessage{}},
			AccountData: EventList{Events: []json.RawMessage{}},
		}
		r.Rooms.Leave[room] = lr
	}
	return lr
}
