package chat

import (
	"maps"
	"slices"
	"strings"
	"time"
	"unsafe"
)

// user is an account with at least one logged-in session. Room membership
// belongs to the user, so every session of a user is in the same rooms.
type user struct {
	name     string
	sessions []*session // logged in, in login order
	rooms    map[*room]struct{}
	since    time.Time
	away     string // the away message; "" while not away
}

func (u *user) sortedRooms() []*room {
	return slices.SortedFunc(maps.Keys(u.rooms), func(a, b *room) int { return strings.Compare(a.name, b.name) })
}

type room struct {
	name       string
	topic      string
	members    map[*user]struct{}
	fanout     []*session // sessions of the members; nil when stale
	history    history
	lastActive time.Time
}

func newRoom(name string, now time.Time) *room {
	return &room{
		name:       name,
		members:    make(map[*user]struct{}),
		lastActive: now,
	}
}

// sessions returns every session that receives the room's events. The slice
// is cached until membership or a member's sessions change.
func (r *room) sessions() []*session {
	if r.fanout == nil {
		n := 0
		for u := range r.members {
			n += len(u.sessions)
		}
		r.fanout = make([]*session, 0, n)
		for u := range r.members {
			r.fanout = append(r.fanout, u.sessions...)
		}
	}
	return r.fanout
}

func (r *room) memberNames() []string {
	names := make([]string, 0, len(r.members))
	for u := range r.members {
		names = append(names, u.name)
	}
	slices.Sort(names)
	return names
}

// history is what a room keeps of its past: events oldest first, with
// their count and the bytes charged for them. The hub's keep and forget
// change it, because each entry is also on the hub's server-wide list.
type history struct {
	oldest, newest *histEntry
	n, bytes       int
}

// histEntry is one kept event. Entries are linked twice: within their room
// (prev and next, oldest first) and across all rooms in the order they were
// kept (older and newer), so that the server-wide budget can drop the
// oldest message anywhere in constant time. Each room's events are kept in
// the server-wide order, so the server-wide oldest is also the oldest of
// its room.
type histEntry struct {
	e            *Event
	cost         int
	room         *room
	prev, next   *histEntry
	older, newer *histEntry
}

// histEntryOverhead is charged to every kept event on top of its encoded
// size: the Event and the entry themselves.
const histEntryOverhead = int(unsafe.Sizeof(Event{}) + unsafe.Sizeof(histEntry{}))

func (h *history) len() int { return h.n }

// last returns the newest n events, oldest first.
func (h *history) last(n int) []*Event {
	n = min(n, h.n)
	if n <= 0 {
		return nil
	}
	x := h.newest
	for range n - 1 {
		x = x.prev
	}
	out := make([]*Event, 0, n)
	for ; x != nil; x = x.next {
		out = append(out, x.e)
	}
	return out
}

// chunk splits n items into runs whose summed size stays within budget, so
// that a long list fits into several events under MaxPayload. It always
// returns at least one run.
func chunk(n int, size func(int) int, budget int) [][2]int {
	var runs [][2]int
	start, used := 0, 0
	for i := 0; i < n; i++ {
		sz := size(i)
		if i > start && used+sz > budget {
			runs = append(runs, [2]int{start, i})
			start, used = i, 0
		}
		used += sz
	}
	return append(runs, [2]int{start, n})
}

// listBudget is the share of MaxPayload one chunk of a list may fill; the
// rest is for the reply's text (which repeats the list) and other fields.
const listBudget = 5000
