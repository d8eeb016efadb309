package chat

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ending says how a session ends and what others are told.
type ending struct {
	notice string // told to the session itself, best effort
	final  *Event // sent instead of a notice (a refusal)
	quit   string // reason in the quit events, if this was the user's last session
	log    string
	result error // what Serve returns
}

// attach registers a new session, possibly only to send it a refusal. It
// returns false when the hub is shutting down.
func (h *Hub) attach(s *session) bool {
	if h.shutting {
		return false
	}
	s.attachedAt, s.lastSeen = h.now, h.now
	h.sessions[s] = struct{}{}
	if !ValidUser(s.name) {
		s.refused = true
		h.end(s, ending{
			final:  &Event{Type: TypeError, Code: CodeBadName, Text: "the account name is not a valid chat name"},
			log:    "bad user name",
			result: errors.New("chat: bad user name"),
		})
		return true
	}
	if r, ok := h.bans[s.name]; ok && r.active(h.now) {
		s.refused = true
		h.end(s, ending{
			final:  &Event{Type: TypeError, Code: CodeBanned, Text: "you are banned" + untilText(r.until) + reasonText(r.reason)},
			log:    "banned",
			result: ErrBanned,
		})
		return true
	}
	a := h.accounts[s.name]
	if a != nil && h.cfg.maxSessions > 0 && a.live >= h.cfg.maxSessions {
		s.refused = true
		h.end(s, ending{
			final: &Event{Type: TypeError, Code: CodeSessionLimit,
				Text: fmt.Sprintf("%s already has %d session(s), the most allowed; end one first", s.name, a.live)},
			log:    "session limit",
			result: ErrSessionLimit,
		})
		return true
	}
	if a == nil {
		a = &account{bucket: bucket{burst: h.cfg.floodBurst, rate: h.cfg.floodRate, tokens: h.cfg.floodBurst}}
		h.accounts[s.name] = a
	}
	a.live++
	a.refs++
	s.acct, s.live = a, true
	h.log.Info("chat: session attached", "user", s.name, "session", s.id, "admin", h.isAdmin(s))
	return true
}

// isAdmin asks, now, whether s's account may moderate.
func (h *Hub) isAdmin(s *session) bool {
	if h.isAdminFunc != nil {
		return h.isAdminFunc(s.name)
	}
	return s.admin
}

// userIsAdmin is isAdmin for a logged-in user.
func (h *Hub) userIsAdmin(u *user) bool {
	if h.isAdminFunc != nil {
		return h.isAdminFunc(u.name)
	}
	return slices.ContainsFunc(u.sessions, func(s *session) bool { return s.admin })
}

// end stops a session: its last notice is queued, its writer told to
// flush and close, and the user logged out of its rooms. Idempotent.
func (h *Hub) end(s *session, e ending) {
	if s.ending {
		return
	}
	s.ending = true
	if s.live {
		s.acct.live--
		s.live = false
	}
	if s.result == nil {
		s.result = e.result
	}
	final := e.final
	if final == nil && e.notice != "" {
		final = h.newMsg(KindNotice, "", "", "", e.notice)
	}
	if final != nil {
		if b := h.encode(final); b != nil {
			if s.out.len() <= h.cfg.queue { // one beyond the bound, for this
				s.out.push(b)
			}
		}
	}
	close(s.end)
	s.flushTimer = time.AfterFunc(h.cfg.flush, s.closeConn)
	if s.loggedIn {
		h.logout(s, e.quit)
	}
	h.log.Info("chat: session ended", "user", s.name, "session", s.id, "reason", e.log)
}

// gone forgets a session whose Serve call is returning.
func (h *Hub) gone(s *session) {
	delete(h.sessions, s)
	if s.acct != nil {
		if s.acct.refs--; s.acct.refs == 0 {
			delete(h.accounts, s.name)
		}
		s.acct = nil
	}
	if s.flushTimer != nil {
		s.flushTimer.Stop()
	}
	h.checkDrained()
}

// endUser ends every session of name and returns how many.
func (h *Hub) endUser(name string, e ending) int {
	var victims []*session
	for s := range h.sessions {
		if s.name == name && !s.ending {
			victims = append(victims, s)
		}
	}
	for _, s := range victims {
		h.end(s, e)
	}
	return len(victims)
}

func (h *Hub) logout(s *session, why string) {
	u := s.user
	u.sessions = slices.DeleteFunc(u.sessions, func(x *session) bool { return x == s })
	for r := range u.rooms {
		r.fanout = nil
	}
	if len(u.sessions) > 0 {
		return
	}
	delete(h.users, u.name)
	delete(h.sharedRooms, u.name)
	if why == "" {
		why = "quit"
	}
	h.relayLeft(u, why)
	for _, r := range u.sortedRooms() {
		h.saveRead(u, r)
		delete(r.members, u)
		r.fanout = nil
		if !h.shutting {
			h.broadcast(r, h.newMsg(KindQuit, r.name, u.name, "", why))
		}
		h.maybeDeleteRoom(r)
	}
	u.rooms = nil
	h.log.Info("chat: user offline", "user", u.name, "reason", why)
}

// send queues an encoded event for s without ever blocking. A full queue
// marks s stalled: events are dropped and counted until it has drained to
// half, then s is told how many it missed. The tick disconnects a session
// stalled for longer than cfg.slow.
func (h *Hub) send(s *session, b []byte) {
	if s.ending || b == nil {
		return
	}
	queued := s.out.len()
	if s.stalled {
		if queued > h.cfg.queue/2 {
			s.dropped++
			h.stats.Dropped++
			return
		}
		h.recovered(s)
		queued = s.out.len()
	}
	if queued >= h.cfg.queue {
		s.stalled, s.stalledSince = true, h.now
		s.dropped++
		h.stats.Dropped++
		return
	}
	s.out.push(b)
	h.stats.Delivered++
}

func (h *Hub) recovered(s *session) {
	n := s.dropped
	s.stalled, s.dropped = false, 0
	h.send(s, h.encode(h.newMsg(KindNotice, "", "", "",
		fmt.Sprintf("%d messages were not delivered to you: your client was reading too slowly", n))))
}

func (h *Hub) sendEvent(s *session, e *Event) { h.send(s, h.encode(e)) }

func (h *Hub) newMsg(kind, room, from, to, text string) *Event {
	h.stats.Messages++
	return &Event{Type: TypeMsg, MID: h.localMID(), TS: formatTime(h.now), Kind: kind, Room: room, From: from, To: to, Text: text}
}

// broadcast appends e to r's order: history, then every member's queue.
func (h *Hub) broadcast(r *room, e *Event) {
	b := h.encode(e)
	if b != nil && (e.Kind == KindMsg || e.Kind == KindMe || e.Kind == KindTopic) {
		h.keep(r, e, len(b)+histEntryOverhead)
	}
	r.lastActive = h.now
	for _, s := range r.sessions() {
		h.send(s, b)
	}
}

// keep adds e to r's history, then drops the oldest events until the
// room's count and byte budget and the server-wide byte budget hold.
func (h *Hub) keep(r *room, e *Event, cost int) {
	if h.cfg.historySize == 0 ||
		h.cfg.historyRoomBytes > 0 && cost > h.cfg.historyRoomBytes ||
		h.cfg.historyBytes > 0 && cost > h.cfg.historyBytes {
		return
	}
	// In steady state every kept event forgets one: reuse its entry.
	x := h.spareEntry
	if x != nil {
		h.spareEntry = nil
	} else {
		x = new(histEntry)
	}
	*x = histEntry{e: e, cost: cost, room: r, prev: r.history.newest, older: h.histNewest}
	if x.prev != nil {
		x.prev.next = x
	} else {
		r.history.oldest = x
	}
	r.history.newest = x
	if x.older != nil {
		x.older.newer = x
	} else {
		h.histOldest = x
	}
	h.histNewest = x
	r.history.n++
	r.history.bytes += cost
	h.histBytes += cost
	for r.history.n > h.cfg.historySize || h.cfg.historyRoomBytes > 0 && r.history.bytes > h.cfg.historyRoomBytes {
		h.forget(r.history.oldest)
	}
	for h.cfg.historyBytes > 0 && h.histBytes > h.cfg.historyBytes {
		h.forget(h.histOldest)
	}
}

// forget drops x, the oldest event of its room, and the room itself if
// nothing else keeps it.
func (h *Hub) forget(x *histEntry) {
	r := x.room
	r.history.oldest = x.next
	if x.next != nil {
		x.next.prev = nil
	} else {
		r.history.newest = nil
	}
	if x.older != nil {
		x.older.newer = x.newer
	} else {
		h.histOldest = x.newer
	}
	if x.newer != nil {
		x.newer.older = x.older
	} else {
		h.histNewest = x.older
	}
	r.history.n--
	r.history.bytes -= x.cost
	h.histBytes -= x.cost
	*x = histEntry{}
	h.spareEntry = x
	if r.history.n == 0 {
		h.maybeDeleteRoom(r)
	}
}

func (h *Hub) ack(s *session, id string, mid uint64) {
	if id != "" {
		h.answer(s, &Event{Type: TypeAck, ID: id, MID: mid})
	}
}

func (h *Hub) reply(s *session, id string, e *Event) {
	e.Type, e.ID = TypeReply, id
	h.sendEvent(s, e)
}

func (h *Hub) fail(s *session, id, code, format string, args ...any) {
	h.answer(s, &Event{Type: TypeError, ID: id, Code: code, Text: fmt.Sprintf(format, args...)})
}

func (h *Hub) failErr(s *session, id string, err error) {
	var ce *Error
	var fe *floodError
	switch {
	case errors.As(err, &fe):
		h.answer(s, &Event{Type: TypeError, ID: id, Code: CodeFlood, RetryMS: fe.wait.Milliseconds(),
			Text: fmt.Sprintf("too many messages: wait %s", fe.wait.Round(time.Millisecond))})
	case errors.As(err, &ce):
		h.fail(s, id, ce.Code, "%s", ce.Text)
	default:
		h.fail(s, id, CodeBadRequest, "bad request")
	}
}

// handle answers one request from a session's reader.
func (h *Hub) handle(m inbound) {
	s := m.s
	defer func() {
		s.inflight.Add(-1)
		s.poke()
	}()
	if s.ending {
		return
	}
	s.lastSeen = h.now
	h.stats.Requests++
	req, id := m.req, ""
	if req != nil {
		id = req.ID
	}
	if m.err != nil {
		h.failErr(s, id, m.err)
		return
	}
	switch req.Type {
	case TypePing:
		h.sendEvent(s, &Event{Type: TypePong, ID: id})
	case TypePong:
	case TypeHello:
		h.hello(s, req)
	case TypeMsg, TypeCmd:
		if !s.loggedIn {
			h.fail(s, id, CodeHelloRequired, "send hello first")
		} else if req.Type == TypeMsg {
			h.message(s, req, m.sigErr)
		} else {
			h.command(s, req)
		}
	default:
		h.fail(s, id, CodeUnknownType, "unknown message type %q", truncateUTF8(SanitizeText(req.Type), 32))
	}
}

func (h *Hub) hello(s *session, req *Request) {
	if s.loggedIn {
		h.fail(s, req.ID, CodeBadRequest, "hello was already received")
		return
	}
	if req.V < 1 {
		h.fail(s, req.ID, CodeVersion, "this server speaks chat protocol version 1 to %d", Version)
		h.end(s, ending{log: fmt.Sprintf("client version %d", req.V),
			result: fmt.Errorf("chat: client speaks version %d only", req.V)})
		return
	}
	s.loggedIn = true
	u := h.users[s.name]
	first := u == nil
	if first {
		u = &user{name: s.name, rooms: make(map[*room]struct{}), since: h.now}
		h.users[s.name] = u
	}
	s.user = u
	u.sessions = append(u.sessions, s)
	if first {
		h.relayArrived(u)
		if s.p != nil && s.p.roomsShared {
			h.sharedRooms[u.name] = slices.Sorted(slices.Values(s.p.rooms))
		}
	}
	for r := range u.rooms {
		r.fanout = nil
	}
	inherited := u.sortedRooms()

	// The rooms the client names replace the default room: a user who
	// asked for #lobby is in #lobby (and, with a store, in the rooms it
	// was in at its last session), and a reconnecting client gets back
	// the rooms it was in.
	var want, rejoined []string
	for _, name := range req.Rooms {
		if name = foldName(name); ValidRoom(name) {
			want = append(want, name)
		} else {
			h.sendEvent(s, &Event{Type: TypeError, Code: CodeBadRoom, Text: badRoom(truncateUTF8(name, 40)).Text})
		}
	}
	if first {
		// The rooms the account was in before come back, beside those
		// the client names. Its own sessions learn of them from the
		// welcome and the room events, not from a join event: a client
		// takes a room it sees itself join as its current one, which
		// should stay the room it asked for.
		var back []string
		for _, name := range s.p.rejoinRooms() {
			if name = foldName(name); ValidRoom(name) && !slices.Contains(want, name) && !slices.Contains(back, name) {
				back = append(back, name)
			}
		}
		rejoined = back
		want = append(back, want...)
	}
	if first && len(want) == 0 {
		want = append(want, h.cfg.defaultRoom)
	}
	var joined []*room
	// The rooms a login ends up in are told to the other servers once.
	h.holdRooms = true
	for _, name := range want {
		r, added, err := h.addMember(u, name)
		if err != nil {
			h.sendEvent(s, &Event{Type: TypeError, Code: err.Code, Text: err.Text})
			continue
		}
		if added {
			joined = append(joined, r)
		}
	}
	h.holdRooms = false
	h.shareRooms(u)

	w := &Event{Type: TypeWelcome, ID: req.ID, V: min(req.V, Version), User: u.name, Admin: h.isAdmin(s), MOTD: h.motd, Away: u.away, Key: s.keyB64,
		Limits: &Limits{Text: MaxText, Topic: MaxTopic, History: h.cfg.historyReplay, Ping: int(h.cfg.pingInterval / time.Second)}}
	if h.cfg.floodRate >= 0 {
		w.Limits.Burst, w.Limits.Rate = int(h.cfg.floodBurst), h.cfg.floodRate
	}
	for _, r := range u.sortedRooms() {
		w.Rooms = append(w.Rooms, RoomInfo{Room: r.name, Count: len(r.members)})
	}
	h.sendEvent(s, w)
	for _, r := range inherited {
		h.sendRoomState(s, r)
	}
	for _, r := range joined {
		if slices.Contains(rejoined, r.name) {
			h.announceRejoin(u, r)
		} else {
			h.announceJoin(u, r)
		}
		h.tellNews(s, r)
	}
	if s.p != nil {
		h.deliverPending(s, s.p.pending)
		s.p.pending = nil
		h.morePending(s)
	}
	h.log.Info("chat: login", "user", u.name, "session", s.id, "sessions", len(u.sessions),
		"client", truncateUTF8(SanitizeText(req.Client), 64))
}

// addMember puts u into the room called name, creating it if needed, and
// reports whether u was not in it before. Nobody is told yet.
func (h *Hub) addMember(u *user, name string) (*room, bool, *Error) {
	r := h.rooms[name]
	if r != nil {
		if _, ok := r.members[u]; ok {
			return r, false, nil
		}
	}
	if len(u.rooms) >= maxRoomsPerUser {
		return nil, false, errorf(CodeRoomLimit, "you are in %d rooms, the most allowed", maxRoomsPerUser)
	}
	if r == nil {
		if len(h.rooms) >= h.cfg.maxRooms && !h.evictRoom() {
			return nil, false, errorf(CodeRoomLimit, "the server has %d rooms, the most allowed", h.cfg.maxRooms)
		}
		r = newRoom(name, h.now)
		h.rooms[name] = r
		h.saveRoom(r, true)
	}
	r.members[u] = struct{}{}
	r.fanout = nil
	u.rooms[r] = struct{}{}
	h.saveMember(u, r, true)
	h.relayMember(u, r, true, "")
	h.shareRooms(u)
	return r, true, nil
}

// evictRoom deletes the empty room (kept for its history) that was quiet
// the longest, to make space for a new one.
func (h *Hub) evictRoom() bool {
	var oldest *room
	for _, r := range h.rooms {
		if len(r.members) == 0 && r.name != h.cfg.defaultRoom && (oldest == nil || r.lastActive.Before(oldest.lastActive)) {
			oldest = r
		}
	}
	if oldest == nil {
		return false
	}
	delete(h.rooms, oldest.name)
	h.saveRoom(oldest, false)
	for oldest.history.n > 0 {
		h.forget(oldest.history.oldest)
	}
	return true
}

// maybeDeleteRoom forgets an empty room that has nothing worth keeping.
func (h *Hub) maybeDeleteRoom(r *room) {
	if len(r.members) == 0 && r.history.len() == 0 && r.topic == "" && r.name != h.cfg.defaultRoom && h.rooms[r.name] == r {
		delete(h.rooms, r.name)
		h.saveRoom(r, false)
	}
}

// announceJoin tells u's sessions about r (state and history), then the
// room that u joined.
func (h *Hub) announceJoin(u *user, r *room) {
	for _, s := range u.sessions {
		h.sendRoomState(s, r)
	}
	h.broadcast(r, h.newMsg(KindJoin, r.name, u.name, "", ""))
}

// announceRejoin is announceJoin for a room u comes back to from its last
// session: the other members get the join event, u's sessions only the
// room's state and history.
func (h *Hub) announceRejoin(u *user, r *room) {
	for _, s := range u.sessions {
		h.sendRoomState(s, r)
	}
	b := h.encode(h.newMsg(KindJoin, r.name, u.name, "", ""))
	r.lastActive = h.now
	for _, s := range r.sessions() {
		if s.user != u {
			h.send(s, b)
		}
	}
}

// sendRoomState sends s the room event(s) for r, then r's recent history
// marked as such.
func (h *Hub) sendRoomState(s *session, r *room) {
	names := h.roomMembers(r)
	runs := chunk(len(names), func(i int) int { return len(names[i]) + 3 }, listBudget)
	for i, run := range runs {
		e := &Event{Type: TypeRoom, Room: r.name, Members: names[run[0]:run[1]], More: i < len(runs)-1}
		if i == 0 {
			e.Topic = r.topic
		}
		h.sendEvent(s, e)
	}
	for _, e := range r.history.last(h.cfg.historyReplay) {
		c := *e
		c.History = true
		h.sendEvent(s, &c)
	}
}

func (h *Hub) part(u *user, r *room, reason string) {
	h.broadcast(r, h.newMsg(KindPart, r.name, u.name, "", reason))
	h.saveRead(u, r)
	h.saveMember(u, r, false)
	h.relayMember(u, r, false, reason)
	delete(r.members, u)
	delete(u.rooms, r)
	r.fanout = nil
	h.shareRooms(u)
	h.maybeDeleteRoom(r)
}

// checkText applies the message limits: at most limit bytes as sent, and
// something left after sanitising.
func checkText(text string, limit int, what string) (string, *Error) {
	if len(text) > limit {
		return "", errorf(CodeTooLong, "%s is %d bytes; the limit is %d", what, len(text), limit)
	}
	text = SanitizeText(text)
	if strings.TrimSpace(text) == "" {
		return "", errorf(CodeEmpty, "%s is empty", what)
	}
	return text, nil
}

// muted returns the active mute of s's user, if any.
func (h *Hub) muted(s *session) (restriction, bool) {
	r, ok := h.mutes[s.name]
	return r, ok && r.active(h.now)
}

// signature says whether a msg request may go on, answering it with
// bad_signature if not, and copies a signed request's fields into e
// unchanged (PROTOCOL.md §13.16.4). The reader has verified it already.
func (h *Hub) signature(s *session, req *Request, sigErr error) bool {
	if sigErr != nil {
		h.log.Info("chat: signed message refused", "user", s.name, "session", s.id, "err", sigErr)
		h.fail(s, req.ID, CodeBadSignature, "the message's signature is not valid for this session: sign the text as the server sends it, with the key you logged in with")
		return false
	}
	return true
}

// sign puts a signed request's key, signature, counter and clock into e.
func sign(e *Event, s *session, req *Request) {
	if req.Sig != "" {
		e.Key, e.Sig, e.Ctr, e.Cts = s.keyB64, req.Sig, req.Ctr, req.Cts
	}
}

func (h *Hub) message(s *session, req *Request, sigErr error) {
	id, u := req.ID, s.user
	kind := req.Kind
	if kind == "" {
		kind = KindMsg
	}
	if kind != KindMsg && kind != KindMe {
		h.fail(s, id, CodeBadRequest, `kind must be "msg" or "me"`)
		return
	}
	if (req.Room == "") == (req.To == "") {
		h.fail(s, id, CodeBadRequest, `a msg needs exactly one of "room" and "to"`)
		return
	}
	text, err := checkText(req.Text, MaxText, "the message")
	if err != nil {
		h.fail(s, id, err.Code, "%s", err.Text)
		return
	}
	if m, ok := h.muted(s); ok {
		h.fail(s, id, CodeMuted, "you are muted%s", untilText(m.until))
		return
	}
	if req.Room != "" {
		r := h.memberRoom(s, id, req.Room)
		if r == nil || !h.signature(s, req, sigErr) {
			return
		}
		if h.relay != nil {
			e := &Event{Type: TypeMsg, Kind: kind, Room: r.name, From: u.name, Text: text}
			sign(e, s, req)
			h.publish(s, id, e, false)
			return
		}
		e := h.newMsg(kind, r.name, u.name, "", text)
		sign(e, s, req)
		h.broadcast(r, e)
		h.log.Debug("chat: message", "room", r.name, "from", u.name, "mid", e.MID, "text", text)
		h.persist(s, id, e, false)
		return
	}
	if kind == KindMe {
		h.fail(s, id, CodeBadRequest, "/me works in rooms only")
		return
	}
	to := foldName(req.To)
	if !ValidUser(to) {
		h.fail(s, id, CodeBadName, "%q is not a user name", truncateUTF8(SanitizeText(req.To), 40))
		return
	}
	if !h.signature(s, req, sigErr) {
		return
	}
	target := h.users[to]
	if h.relay != nil {
		h.relayDM(s, req, target, to, text)
		return
	}
	if target == nil {
		if h.store == nil || h.userExists == nil || !h.userExists(to) {
			h.fail(s, id, CodeOffline, "%s is not online", to)
			return
		}
		h.queueDM(s, req, to, text)
		return
	}
	e := h.newMsg(KindDM, "", u.name, to, text)
	sign(e, s, req)
	b := h.encode(e)
	for _, t := range target.sessions {
		h.send(t, b)
	}
	if target != u {
		for _, t := range u.sessions {
			h.send(t, b)
		}
		if target.away != "" {
			h.sendEvent(s, h.awayEvent(target))
		}
	}
	h.log.Debug("chat: direct message", "from", u.name, "to", to, "mid", e.MID, "text", text)
	h.persist(s, id, e, false)
}

// relayDM sends a direct message through the cluster's log: the servers
// where its sender and recipient have sessions deliver it when they apply
// it. For an account with no session anywhere it is queued, as queueDM
// does on a server of its own.
func (h *Hub) relayDM(s *session, req *Request, target *user, to, text string) {
	u, id := s.user, req.ID
	online := target != nil || len(h.relay.Where(to)) > 0
	if !online && (h.store == nil || h.userExists == nil || !h.userExists(to)) {
		h.fail(s, id, CodeOffline, "%s is not online", to)
		return
	}
	e := &Event{Type: TypeMsg, Kind: KindDM, From: u.name, To: to, Text: text}
	sign(e, s, req)
	if !online {
		h.sendEvent(s, h.newMsg(KindNotice, "", "", "", to+" is offline: the message is queued and will be delivered at their next login"))
	} else if target != nil && target != u && target.away != "" {
		h.sendEvent(s, h.awayEvent(target))
	} else if target == nil {
		if away := h.relay.Away(to); away != "" {
			h.sendEvent(s, h.awayEventOf(to, away))
		}
	}
	h.log.Debug("chat: direct message to the log", "from", u.name, "to", to, "queued", !online, "text", text)
	h.publish(s, id, e, !online)
}

// queueDM keeps a direct message for an account that is offline: it is
// delivered, marked queued, at the account's next login. The sender's
// sessions get their copy, marked queued, and a notice saying so.
func (h *Hub) queueDM(s *session, req *Request, to, text string) {
	u, id := s.user, req.ID
	e := h.newMsg(KindDM, "", u.name, to, text)
	sign(e, s, req)
	e.Queued = true
	b := h.encode(e)
	for _, t := range u.sessions {
		h.send(t, b)
	}
	h.sendEvent(s, h.newMsg(KindNotice, "", "", "", to+" is offline: the message is queued and will be delivered at their next login"))
	h.queuedFor[to] = e.MID
	h.log.Debug("chat: direct message queued", "from", u.name, "to", to, "mid", e.MID, "text", text)
	h.persist(s, id, e, true)
}

// memberRoom returns the room called name if s's user is in it, else
// answers the request with an error and returns nil.
func (h *Hub) memberRoom(s *session, id, name string) *room {
	name = foldName(name)
	if !ValidRoom(name) {
		h.fail(s, id, CodeBadRoom, "%s", badRoom(truncateUTF8(SanitizeText(name), 40)).Text)
		return nil
	}
	r := h.rooms[name]
	if r == nil {
		h.fail(s, id, CodeNotMember, "you are not in %s", name)
		return nil
	}
	if _, ok := r.members[s.user]; !ok {
		h.fail(s, id, CodeNotMember, "you are not in %s: /join %s", name, name)
		return nil
	}
	return r
}

func untilText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " until " + formatTime(t)
}

func reasonText(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}
