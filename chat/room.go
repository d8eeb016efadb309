package chat

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// user is an account with at least one logged-in session. Room membership
// belongs to the user, so every session of a user is in the same rooms.
type user struct {
	name     string
	sessions []*session // logged in, in login order
	rooms    map[*room]struct{}
	since    time.Time
}

func (u *user) sortedRooms() []*room {
	return slices.SortedFunc(maps.Keys(u.rooms), func(a, b *room) int { return strings.Compare(a.name, b.name) })
}

func (u *user) admin() bool {
	for _, s := range u.sessions {
		if s.admin {
			return true
		}
	}
	return false
}

type room struct {
	name       string
	topic      string
	members    map[*user]struct{}
	fanout     []*session // sessions of the members; nil when stale
	history    ring
	lastActive time.Time
}

func newRoom(name string, historySize int, now time.Time) *room {
	return &room{
		name:       name,
		members:    make(map[*user]struct{}),
		history:    ring{size: historySize},
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

// ring keeps the last size events of a room, oldest first.
type ring struct {
	size int
	buf  []*Event
	head int // index of the oldest event once buf is full
}

func (r *ring) push(e *Event) {
	if r.size == 0 {
		return
	}
	if len(r.buf) < r.size {
		r.buf = append(r.buf, e)
		return
	}
	r.buf[r.head] = e
	r.head = (r.head + 1) % r.size
}

func (r *ring) len() int { return len(r.buf) }

// last returns the newest n events, oldest first.
func (r *ring) last(n int) []*Event {
	n = min(n, len(r.buf))
	out := make([]*Event, 0, n)
	for i := len(r.buf) - n; i < len(r.buf); i++ {
		out = append(out, r.buf[(r.head+i)%len(r.buf)])
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
