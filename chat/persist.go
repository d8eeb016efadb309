package chat

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Store is where a hub keeps what must survive a restart (PROTOCOL.md
// §13.15). Package store provides one (SQLite or memory); package
// chatstore adapts it. The hub calls the change methods on its loop: they
// must queue the change and return at once, never waiting for a disk. The
// read methods block; the hub calls them only off its loop (at login,
// before the session is attached, or on a goroutine of their own).
type Store interface {
	// Load reads the state a hub starts from. NewHub calls it once.
	Load() (StoredState, error)

	// Append queues m. When it returns nil, done is called exactly once,
	// on another goroutine, when m is durable (nil) or could not be stored.
	// When it returns an error, m is not stored and done is never called.
	// done must not block.
	Append(m StoredMessage, done func(error)) error

	SetMOTD(text string) error
	SetTopic(room, topic string) error
	AddRoom(room string) error
	RemoveRoom(room string) error
	Ban(r StoredRestriction) error
	Unban(user string) error
	Mute(r StoredRestriction) error
	Unmute(user string) error
	Join(user, room string) error
	Part(user, room string) error
	SetLastRead(user, room string, id uint64) error
	Delivered(user string, through uint64) error
	SetLastID(id uint64) error
	// Sync waits until every change queued before it is committed.
	Sync() error

	// History returns up to n messages of room with ids below before (0:
	// the newest), oldest first; DMHistory the same for the direct
	// messages between a and b.
	History(room string, before uint64, n int) ([]StoredMessage, error)
	DMHistory(a, b string, before uint64, n int) ([]StoredMessage, error)
	// Pending returns the oldest n direct messages queued for user.
	Pending(user string, n int) ([]StoredMessage, error)
	// Search returns up to n messages of rooms containing every word of
	// text, newest first, with ids below before (0: the newest).
	Search(text string, rooms []string, before uint64, n int) ([]StoredMessage, error)
	Rooms(user string) ([]string, error)
	LastRead(user string) (map[string]uint64, error)
	CountAfter(room string, id uint64) (int, error)
}

// StoredMessage is a message as a Store keeps it. Kind is KindMsg, KindMe,
// KindTopic or KindDM.
type StoredMessage struct {
	ID                   uint64
	Time                 time.Time
	Kind, Room, From, To string
	Text                 string
	Queued               bool // a direct message kept for an offline recipient
	// Key, Sig, Ctr and Cts are a signed message's signature fields in
	// wire form (PROTOCOL.md §13.16.3), kept and replayed unchanged;
	// empty and zero for an unsigned one.
	Key, Sig string
	Ctr, Cts uint64
}

// StoredRestriction is a ban or a mute as a Store keeps it.
type StoredRestriction struct {
	User   string
	Until  time.Time // zero: until lifted
	By     string
	Reason string
}

// StoredRoom is an entry of the stored room list.
type StoredRoom struct{ Name, Topic string }

// StoredState is what a hub starts from.
type StoredState struct {
	LastID      uint64 // number new messages from LastID+1
	MOTD        string
	Rooms       []StoredRoom
	Bans, Mutes []StoredRestriction // active ones only
}

// Limits of the stored-history commands.
const (
	historyPage   = 50  // /history without N
	maxHistoryReq = 200 // /history N at most
	searchPage    = 20  // /search results per request
	pendingPage   = 500 // queued direct messages delivered per step
	newsRooms     = 64  // rooms whose news a login looks up
)

// loadState applies what the store remembers to a hub that has not started
// its loop yet. Reading here is fine: nothing runs on the loop so far.
func (h *Hub) loadState(cfgMOTD string) error {
	// Whatever an earlier hub on the same store queued (its last id)
	// must be in before the state is read.
	if err := h.store.Sync(); err != nil {
		return fmt.Errorf("chat: the store: %w", err)
	}
	st, err := h.store.Load()
	if err != nil {
		return fmt.Errorf("chat: loading the stored state: %w", err)
	}
	h.lastMID = st.LastID
	h.savedMID = st.LastID
	switch {
	case cfgMOTD != "":
		// A MOTD given by the operator at start replaces the stored one.
		h.storeErr("motd", h.store.SetMOTD(h.motd))
	default:
		h.motd = clampMOTD(st.MOTD)
	}
	for _, b := range st.Bans {
		h.bans[foldName(b.User)] = restriction{until: b.Until, by: b.By, reason: b.Reason}
	}
	for _, m := range st.Mutes {
		h.mutes[foldName(m.User)] = restriction{until: m.Until, by: m.By, reason: m.Reason}
	}
	for _, sr := range st.Rooms {
		name := foldName(sr.Name)
		if !ValidRoom(name) || h.rooms[name] != nil {
			continue
		}
		if len(h.rooms) >= h.cfg.maxRooms {
			h.log.Warn("chat: more stored rooms than --max-rooms allows; the rest are not loaded", "loaded", len(h.rooms))
			break
		}
		r := newRoom(name, h.now)
		r.topic = sr.Topic
		h.rooms[name] = r
		// The newest messages go into the room's ring, so that a join
		// replays them without reading the disk.
		if n := max(h.cfg.historyReplay, 1); h.cfg.historySize > 0 {
			msgs, err := h.store.History(name, 0, min(n, h.cfg.historySize))
			if err != nil {
				return fmt.Errorf("chat: loading the history of %s: %w", name, err)
			}
			for _, m := range msgs {
				e := eventOf(m)
				if b := h.encode(e); b != nil {
					h.keep(r, e, len(b)+histEntryOverhead)
				}
			}
		}
	}
	h.log.Info("chat: stored state loaded", "rooms", len(h.rooms), "bans", len(h.bans),
		"mutes", len(h.mutes), "last_mid", st.LastID)
	return nil
}

// eventOf is the msg event of a stored message, marked as history.
func eventOf(m StoredMessage) *Event {
	return &Event{Type: TypeMsg, MID: m.ID, TS: formatTime(m.Time), Kind: m.Kind,
		Room: m.Room, From: m.From, To: m.To, Text: m.Text, History: true, Queued: m.Queued,
		Key: m.Key, Sig: m.Sig, Ctr: m.Ctr, Cts: m.Cts}
}

// storeErr logs a change the store refused. The hub's memory still holds
// it, so the server goes on.
func (h *Hub) storeErr(what string, err error) {
	if err != nil {
		h.stats.NotStored++
		h.logNotStored("chat: not stored", "change", what, "err", err)
	}
}

// logNotStored logs a failed write at error level, at most one a second:
// a full disk under load fails every message, and the log must stay
// readable. The next line says how many were left out.
func (h *Hub) logNotStored(msg string, args ...any) {
	if !h.notStoredLogged.IsZero() && h.now.Sub(h.notStoredLogged) < time.Second {
		h.notStoredQuiet++
		return
	}
	if h.notStoredQuiet > 0 {
		args = append(args, "not_logged_before", h.notStoredQuiet)
	}
	h.notStoredLogged, h.notStoredQuiet = h.now, 0
	h.log.Error(msg, args...)
}

// posted is the queue of functions other goroutines (store callbacks,
// readers) hand to the loop without ever blocking.
type posted struct {
	mu   sync.Mutex
	fs   []func()
	wake chan struct{}
}

// post runs f on the loop soon. It never blocks; after the loop stopped f
// is dropped.
func (h *Hub) post(f func()) {
	h.posted.mu.Lock()
	h.posted.fs = append(h.posted.fs, f)
	h.posted.mu.Unlock()
	select {
	case h.posted.wake <- struct{}{}:
	default:
	}
}

// runPosted runs, on the loop, what was posted.
func (h *Hub) runPosted() {
	h.posted.mu.Lock()
	fs := h.posted.fs
	h.posted.fs = nil
	h.posted.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

// answerSlot is the place of one request's ack or error in its session's
// order of answers. A message is acknowledged only once it is stored, so
// answers to later requests wait behind it: acks come in request order.
type answerSlot struct {
	bs    [][]byte
	ready bool
}

// persistState is what a session brings from the store at login, read
// before it was attached.
type persistState struct {
	rooms []string // the account's rooms, to rejoin
	// roomsShared says rooms were read from the cluster: what the other
	// servers know already.
	roomsShared bool
	read        map[string]uint64 // last-read position per room
	news        map[string]news   // per room in read
	pending     []StoredMessage   // direct messages queued for the account
	answers     []*answerSlot
	quit        *ending // a /quit waiting for the answers before it
}

// news is what a user missed in a room, as the store saw it at login.
type news struct {
	count int
	since time.Time // when the last message the user saw was sent; zero: unknown
}

// preload reads, on the session's own goroutine, what its login needs.
// Failures are logged and leave that part out.
func (h *Hub) preload(name string) *persistState {
	p := &persistState{}
	if h.store == nil || !ValidUser(name) {
		return p
	}
	// What the account's last session changed (its rooms, where it
	// stopped reading) may still be on its way to the disk.
	if err := h.store.Sync(); err != nil {
		h.log.Error("chat: waiting for the store", "user", name, "err", err)
	}
	var err error
	if p.rooms, err = h.store.Rooms(name); err != nil {
		h.log.Error("chat: reading the account's rooms", "user", name, "err", err)
	}
	if p.read, err = h.store.LastRead(name); err != nil {
		h.log.Error("chat: reading last-read positions", "user", name, "err", err)
	}
	p.read = h.clusterRead(name, p.read)
	p.news = make(map[string]news)
	for _, room := range sortedKeys(p.read) {
		if len(p.news) >= newsRooms {
			break
		}
		id := p.read[room]
		n, err := h.store.CountAfter(room, id)
		if err != nil || n == 0 {
			continue
		}
		nw := news{count: n}
		// The last message of the room the user had seen.
		if last, err := h.store.History(room, id+1, 1); err == nil && len(last) == 1 {
			nw.since = last[0].Time
		}
		p.news[room] = nw
	}
	if p.pending, err = h.store.Pending(name, pendingPage); err != nil {
		h.log.Error("chat: reading queued direct messages", "user", name, "err", err)
	}
	return p
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// answer sends s the ack or error e, behind any answer still waiting for
// the store.
func (h *Hub) answer(s *session, e *Event) {
	if s.p == nil || len(s.p.answers) == 0 {
		h.sendEvent(s, e)
		return
	}
	s.p.answers = append(s.p.answers, &answerSlot{bs: [][]byte{h.encode(e)}, ready: true})
}

// reserve holds s's next answer until fill.
func (h *Hub) reserve(s *session) *answerSlot {
	x := &answerSlot{}
	s.p.answers = append(s.p.answers, x)
	return x
}

// fill gives x its answer (one event or more) and sends every answer that
// is no longer waiting.
func (h *Hub) fill(s *session, x *answerSlot, es ...*Event) {
	for _, e := range es {
		x.bs = append(x.bs, h.encode(e))
	}
	x.ready = true
	for len(s.p.answers) > 0 && s.p.answers[0].ready {
		for _, b := range s.p.answers[0].bs {
			h.send(s, b)
		}
		s.p.answers[0] = nil
		s.p.answers = s.p.answers[1:]
	}
	if len(s.p.answers) == 0 && s.p.quit != nil {
		e := *s.p.quit
		s.p.quit = nil
		h.end(s, e)
	}
}

// persist stores e, the message s sent with request id, and acknowledges
// it once it is durable. The message has been delivered already: a store
// that fails does not hold up the room, and the sender is told.
func (h *Hub) persist(s *session, id string, e *Event, queued bool) {
	if h.store == nil {
		h.ack(s, id, e.MID)
		return
	}
	m := StoredMessage{ID: e.MID, Time: h.now, Kind: e.Kind, Room: e.Room, From: e.From, To: e.To,
		Text: e.Text, Queued: queued, Key: e.Key, Sig: e.Sig, Ctr: e.Ctr, Cts: e.Cts}
	var x *answerSlot
	if id != "" {
		x = h.reserve(s)
	}
	mid := e.MID
	err := h.store.Append(m, func(err error) {
		h.post(func() { h.committed(s, x, id, mid, err) })
	})
	if err != nil {
		h.committed(s, x, id, mid, err)
	}
	h.stats.Stored++
}

// committed answers a message the store has committed, or failed to.
func (h *Hub) committed(s *session, x *answerSlot, id string, mid uint64, err error) {
	if err != nil {
		h.stats.NotStored++
		h.logNotStored("chat: message not stored", "mid", mid, "user", s.name, "err", err)
		e := &Event{Type: TypeError, ID: id, Code: CodeNotStored, MID: mid,
			Text: fmt.Sprintf("message %d was not stored (%s): whoever was online got it, nobody will later", mid, storeReason(err))}
		if x == nil {
			h.sendEvent(s, e)
			return
		}
		h.fill(s, x, e)
		return
	}
	if x != nil {
		h.fill(s, x, &Event{Type: TypeAck, ID: id, MID: mid})
	}
}

// ErrStoreFull is what a Store's errors wrap when the disk is full or
// writes are waiting for it beyond the store's backlog.
var ErrStoreFull = errors.New("chat: the store's disk is full or too slow")

// storeReason says why a write failed, without internal detail.
func storeReason(err error) string {
	if errors.Is(err, ErrStoreFull) {
		return "the server's disk is full or too slow"
	}
	return "the server could not write its database"
}

// rejoinRooms is the rooms a user's first session rejoins at login.
func (p *persistState) rejoinRooms() []string {
	if p == nil {
		return nil
	}
	return p.rooms
}

// tellNews sends s the "N new messages" notice for r, if the user has been
// in r before and missed something.
func (h *Hub) tellNews(s *session, r *room) {
	if s.p == nil || s.p.read == nil {
		return
	}
	id, ok := s.p.read[r.name]
	if !ok {
		return
	}
	nw := s.p.news[r.name]
	// The ring is exact when it reaches back to the last-read message.
	if r.history.oldest != nil && r.history.oldest.e.MID <= id {
		nw.count = 0
		for x := r.history.newest; x != nil && x.e.MID > id; x = x.prev {
			nw.count++
		}
	}
	delete(s.p.read, r.name)
	if nw.count == 0 {
		return
	}
	text := fmt.Sprintf("%d new message(s) in %s", nw.count, r.name)
	if !nw.since.IsZero() {
		text += " since " + nw.since.UTC().Format("15:04") + " UTC"
	}
	h.sendEvent(s, h.newMsg(KindNotice, r.name, "", "", text))
}

// deliverPending sends s the direct messages that waited for its account,
// marked queued, and takes them off the queue.
func (h *Hub) deliverPending(s *session, msgs []StoredMessage) {
	u := s.user
	through := h.delivered[u.name]
	var out [][]byte
	last := through
	for _, m := range msgs {
		if m.ID <= through {
			continue
		}
		// Marked history as well as queued: a replay, which a recipient
		// judges by the relaxed counter rule and no age limit
		// (PROTOCOL.md §13.16.5), since the message may be hours old.
		e := eventOf(m)
		e.Queued = true
		out = append(out, h.encode(e))
		last = max(last, m.ID)
	}
	if len(out) == 0 {
		if len(msgs) == pendingPage {
			// A whole page delivered already, on another server whose
			// mark this store has not applied yet: drop it here and
			// read on, or what lies beyond waits for the next login.
			if err := h.store.Delivered(u.name, through); err != nil {
				h.storeErr("delivered", err)
				return
			}
			h.fetchPending(u.name)
		}
		return
	}
	h.delivered[u.name] = last
	h.sendEvent(s, h.newMsg(KindNotice, "", "", "",
		fmt.Sprintf("%d direct message(s) arrived while you were offline", len(out))))
	for _, b := range out {
		h.send(s, b)
	}
	h.storeErr("delivered", h.store.Delivered(u.name, last))
	h.shareDelivered(u.name, last)
	if len(msgs) == pendingPage {
		h.fetchPending(u.name) // a long queue: the next page
	}
}

// morePending fetches what was queued for s's account after its login read
// the queue (a message sent to it while it was logging in).
func (h *Hub) morePending(s *session) {
	name := s.user.name
	if q, ok := h.queuedFor[name]; ok {
		delete(h.queuedFor, name)
		if q > h.delivered[name] {
			h.fetchPending(name)
		}
	}
}

// fetchPending reads the account's queue again, once what was delivered so
// far is committed, and delivers the rest to one of its sessions.
func (h *Hub) fetchPending(name string) {
	go func() {
		if err := h.store.Sync(); err != nil {
			return
		}
		more, err := h.store.Pending(name, pendingPage)
		if err != nil {
			h.log.Error("chat: reading queued direct messages", "user", name, "err", err)
			return
		}
		h.post(func() {
			if u := h.users[name]; u != nil && len(u.sessions) > 0 {
				h.deliverPending(u.sessions[0], more)
			}
		})
	}()
}

// saveRead records that u has seen r up to now: every message with an id
// up to the hub's last was delivered to u while it was in r. With a relay
// the other servers hear of it too, so that a login on any of them counts
// what is new since.
func (h *Hub) saveRead(u *user, r *room) {
	if h.store == nil {
		return
	}
	h.storeErr("last read", h.store.SetLastRead(u.name, r.name, h.lastMID))
	if h.relay == nil {
		return
	}
	h.relay.SetState(StateChange{Kind: StateRead, Restriction: StoredRestriction{User: u.name}, Room: r.name, Through: h.lastMID},
		func(err error) {
			if err != nil {
				h.post(func() { h.logNotStored("chat: last-read position not shared", "user", u.name, "err", err) })
			}
		})
}

// saveLastID keeps the store's id counter above ids given to events it
// does not keep (joins, notices), so that a restart does not reuse them.
func (h *Hub) saveLastID() {
	if h.store == nil || h.lastMID == h.savedMID {
		return
	}
	h.savedMID = h.lastMID
	h.storeErr("last id", h.store.SetLastID(h.lastMID))
}

func storedRestriction(name string, r restriction) StoredRestriction {
	return StoredRestriction{User: name, Until: r.until, By: r.by, Reason: r.reason}
}

// The hub's changes to what it stores, each a no-op without a store.

func (h *Hub) saveMOTD() {
	if h.store != nil {
		h.storeErr("motd", h.store.SetMOTD(h.motd))
	}
}

func (h *Hub) saveTopic(r *room) {
	if h.store != nil {
		h.storeErr("topic", h.store.SetTopic(r.name, r.topic))
	}
}

func (h *Hub) saveRoom(r *room, added bool) {
	if h.store == nil {
		return
	}
	if added {
		h.storeErr("add room", h.store.AddRoom(r.name))
	} else {
		h.storeErr("remove room", h.store.RemoveRoom(r.name))
	}
}

func (h *Hub) saveMember(u *user, r *room, joined bool) {
	if h.store == nil {
		return
	}
	if joined {
		h.storeErr("join", h.store.Join(u.name, r.name))
	} else {
		h.storeErr("part", h.store.Part(u.name, r.name))
	}
}

func (h *Hub) saveBan(name string) {
	if h.store == nil {
		return
	}
	if r, ok := h.bans[name]; ok {
		h.storeErr("ban", h.store.Ban(storedRestriction(name, r)))
	} else {
		h.storeErr("unban", h.store.Unban(name))
	}
}

func (h *Hub) saveMute(name string) {
	if h.store == nil {
		return
	}
	if r, ok := h.mutes[name]; ok {
		h.storeErr("mute", h.store.Mute(storedRestriction(name, r)))
	} else {
		h.storeErr("unmute", h.store.Unmute(name))
	}
}
