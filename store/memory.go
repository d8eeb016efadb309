package store

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
)

// OpenMemory returns a Store that keeps everything in memory and forgets it
// at Close: for tests, and for a server whose state directory cannot be
// written. It behaves as Open's store does, except that nothing survives
// the process and Search matches accented letters only exactly.
func OpenMemory(opts *Options) *Store {
	m := &memDB{
		convs:   make(map[string][]Message),
		queues:  make(map[string][]Message),
		rooms:   make(map[string]string),
		bans:    make(map[string]Restriction),
		mutes:   make(map[string]Restriction),
		members: make(map[string]map[string]struct{}),
		reads:   make(map[string]map[string]uint64),
	}
	if opts != nil {
		m.opts = *opts
	}
	return newStore(m, opts, 0)
}

type memDB struct {
	opts Options

	mu      sync.RWMutex
	convs   map[string][]Message // by conversation, in id order
	queues  map[string][]Message // by recipient, in id order
	motd    string
	rooms   map[string]string // name to topic
	bans    map[string]Restriction
	mutes   map[string]Restriction
	members map[string]map[string]struct{}
	reads   map[string]map[string]uint64
}

func (d *memDB) close() error { return nil }

func (d *memDB) apply(ops []*op) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range ops {
		o.err = d.exec(o)
	}
}

func (d *memDB) exec(o *op) error {
	switch o.kind {
	case opAppend:
		m := o.msg
		conv := m.conversation()
		d.convs[conv] = append(d.convs[conv], m)
		if m.Queued && m.Kind == KindDM {
			d.queues[m.To] = append(d.queues[m.To], m)
		}
	case opMOTD:
		d.motd = o.text
	case opTopic:
		d.rooms[o.room] = o.text
	case opAddRoom:
		if _, ok := d.rooms[o.room]; !ok {
			d.rooms[o.room] = ""
		}
	case opRemoveRoom:
		delete(d.rooms, o.room)
	case opBan:
		d.bans[o.r.User] = o.r
	case opMute:
		d.mutes[o.r.User] = o.r
	case opUnban:
		delete(d.bans, o.user)
	case opUnmute:
		delete(d.mutes, o.user)
	case opJoin:
		if d.members[o.user] == nil {
			d.members[o.user] = make(map[string]struct{})
		}
		d.members[o.user][o.room] = struct{}{}
	case opPart:
		delete(d.members[o.user], o.room)
	case opLastRead:
		if d.reads[o.user] == nil {
			d.reads[o.user] = make(map[string]uint64)
		}
		d.reads[o.user][o.room] = max(d.reads[o.user][o.room], o.id)
	case opDelivered:
		d.queues[o.user] = slices.DeleteFunc(d.queues[o.user], func(m Message) bool { return m.ID <= o.id })
	case opDeleteUser:
		involved := func(m Message) bool { return m.Kind == KindDM && (m.From == o.user || m.To == o.user) }
		for conv, ms := range d.convs {
			if strings.HasPrefix(conv, "@") {
				d.convs[conv] = slices.DeleteFunc(ms, involved)
			}
		}
		delete(d.queues, o.user)
		for u, ms := range d.queues {
			d.queues[u] = slices.DeleteFunc(ms, involved)
		}
		delete(d.members, o.user)
		delete(d.reads, o.user)
	case opLastID, opSync:
	case opPrune:
		o.deleted = d.prune(o.now)
	default:
		return fmt.Errorf("unknown change %v", o.kind)
	}
	return nil
}

func (d *memDB) prune(now time.Time) int {
	isPending := make(map[uint64]bool)
	for _, ms := range d.queues {
		for _, m := range ms {
			isPending[m.ID] = true
		}
	}
	total := 0
	for conv, ms := range d.convs {
		n := len(ms)
		if d.opts.Retention > 0 {
			cutoff := now.Add(-d.opts.Retention)
			ms = slices.DeleteFunc(ms, func(m Message) bool { return m.Time.Before(cutoff) && !isPending[m.ID] })
		}
		if d.opts.MaxPerRoom > 0 && strings.HasPrefix(conv, "#") && len(ms) > d.opts.MaxPerRoom {
			ms = slices.Delete(ms, 0, len(ms)-d.opts.MaxPerRoom)
		}
		total += n - len(ms)
		d.convs[conv] = ms
	}
	for _, m := range []map[string]Restriction{d.bans, d.mutes} {
		maps.DeleteFunc(m, func(_ string, r Restriction) bool { return !r.Active(now) })
	}
	return total
}

func (d *memDB) load(now time.Time) (State, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	st := State{MOTD: d.motd}
	for _, name := range slices.Sorted(maps.Keys(d.rooms)) {
		st.Rooms = append(st.Rooms, Room{Name: name, Topic: d.rooms[name]})
	}
	active := func(m map[string]Restriction) []Restriction {
		var out []Restriction
		for _, u := range slices.Sorted(maps.Keys(m)) {
			if m[u].Active(now) {
				out = append(out, m[u])
			}
		}
		return out
	}
	st.Bans, st.Mutes = active(d.bans), active(d.mutes)
	return st, nil
}

func (d *memDB) history(conv string, before uint64, n int) ([]Message, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ms := d.convs[conv]
	end := sort.Search(len(ms), func(i int) bool { return ms[i].ID >= before })
	return slices.Clone(ms[max(0, end-n):end]), nil
}

func (d *memDB) pending(user string, n int) ([]Message, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	q := d.queues[user]
	return slices.Clone(q[:min(n, len(q))]), nil
}

func (d *memDB) search(words []string, rooms []string, before uint64, n int) ([]Message, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []Message
	for _, r := range rooms {
		if !strings.HasPrefix(r, "#") {
			continue
		}
		for _, m := range d.convs[r] {
			if m.ID < before && containsWords(m.Text, words) {
				out = append(out, m)
			}
		}
	}
	slices.SortFunc(out, func(a, b Message) int { return -cmpU64(a.ID, b.ID) })
	return slices.Clip(out[:min(n, len(out))]), nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func containsWords(text string, words []string) bool {
	have := make(map[string]bool)
	for _, w := range searchWords(text) {
		have[w] = true
	}
	for _, w := range words {
		if !have[w] {
			return false
		}
	}
	return true
}

// isWordRune tells what belongs to a word, as SQLite's unicode61 tokenizer
// sees it: letters, numbers and private-use characters.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Co, r)
}

func (d *memDB) userRooms(user string) ([]string, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Sorted(maps.Keys(d.members[user])), nil
}

func (d *memDB) lastRead(user string) (map[string]uint64, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := maps.Clone(d.reads[user])
	if out == nil {
		out = make(map[string]uint64)
	}
	return out, nil
}

func (d *memDB) countAfter(room string, id uint64) (int, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ms := d.convs[room]
	i := sort.Search(len(ms), func(i int) bool { return ms[i].ID > id })
	return len(ms) - i, nil
}
