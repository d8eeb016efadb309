package chat

import (
	"fmt"
	"slices"
)

// Relay links a hub to the other servers of a cluster that serve one chat
// together. Package chatcluster provides one, over NATS JetStream; this
// package knows nothing of it.
//
// The relay keeps a log, the record of every room message, action, topic
// change and direct message, in one total order that every server sees.
// With a relay, the hub does not deliver what its sessions send: it hands
// it to [Relay.Publish] and acknowledges it once the log has stored it.
// Every server, this one too, delivers a message when the relay gives it
// back through [Hub.ApplyLogged], in log order, and keeps it in its own
// [Store], which is then a view of the log.
//
// The hub calls every method on its loop: none may block. Publish and
// SetState hand their work to another goroutine; the presence methods
// queue an announcement; Where, Rooms, Members and Banned read what the
// relay already knows.
type Relay interface {
	// Publish appends m to the log; m.ID is unset. done is called exactly
	// once, on another goroutine, with m's sequence in the log (1, 2, …)
	// once the log has stored it, or with an error if it could not. Two
	// messages from the same account are stored in the order published.
	Publish(m StoredMessage, done func(seq uint64, err error))

	// SetState shares a ban, mute or MOTD change with every server; each
	// gets it through [Hub.ApplyState]. done is called once, on another
	// goroutine, when the change is stored or has failed.
	SetState(c StateChange, done func(error))

	// Banned reports the ban of user as the cluster holds it now, read at
	// its source rather than from what has reached this server. It may
	// block: the hub calls it off its loop, before a session is attached.
	Banned(user string) (r StoredRestriction, banned bool, err error)

	// DeliveredThrough reports the id of the last direct message queued
	// for user that a server delivered (a [StateDelivered] change), read
	// at its source as Banned is, and may block as it does.
	DeliveredThrough(user string) (through uint64, err error)

	// SavedRooms reports the rooms user was last in on any server (a
	// [StateRooms] change), read at its source as Banned is; found is false
	// if no server recorded any.
	SavedRooms(user string) (rooms []string, found bool, err error)

	// LastRead reports where user stopped reading each room on any server
	// (its [StateRead] changes), read at its source as Banned is; nil if
	// no server recorded any.
	LastRead(user string) (read map[string]uint64, err error)

	// Arrived and Left say that user has its first session on this server,
	// or no longer any; Joined and Parted that user entered or left room
	// here. The relay tells the other servers, with the reason of a quit
	// or part.
	Arrived(user string)
	Left(user, reason string)
	Joined(user, room string)
	Parted(user, room, reason string)

	// Kick ends user's sessions on the other servers where it has any,
	// as an admin's /kick by by, with reason, does here. done is called
	// once, on another goroutine, with the number of sessions they ended,
	// and an error if a server could not be asked; each server ends them
	// through [Hub.KickHere].
	Kick(user, by, reason string, done func(sessions int, err error))

	// SetAway announces user's away message here ("" when back); Away
	// returns the one another server announces for user, or "".
	SetAway(user, text string)
	Away(user string) string

	// Where returns the other servers where user has a session; Rooms the
	// rooms user is in there; Members the users in room on other servers.
	Where(user string) []string
	Rooms(user string) []string
	Members(room string) []string
}

// StateKind says what a [StateChange] is about.
type StateKind uint8

const (
	StateBan StateKind = iota + 1
	StateMute
	StateMOTD
	// StateDelivered: the direct messages queued for the account
	// Restriction.User were delivered through the id Through, on some
	// server; no server gives them again at a later login.
	StateDelivered
	// StateRooms: the account Restriction.User is in Rooms, on the server
	// that shares the change; its next login, on any server, rejoins them.
	StateRooms
	// StateRead: the account Restriction.User read Room through the id
	// Through; its next login, on any server, counts what is new since.
	// Servers read it at login ([Relay.LastRead]); none is applied.
	StateRead
)

// StateChange is a change of the state every server of a cluster holds at
// once: a ban or mute set or lifted, or the MOTD.
type StateChange struct {
	Kind StateKind
	// Restriction is the ban or mute; its User names the account.
	Restriction StoredRestriction
	// Removed says the ban or mute was lifted.
	Removed bool
	// Text is the MOTD.
	Text string
	// Through is the id of a StateDelivered or StateRead change.
	Through uint64
	// Room is the room of a StateRead change.
	Room string
	// Rooms are the rooms of a StateRooms change.
	Rooms []string
}

// logIDShift places a log sequence in the high bits of a message id, so
// that with a relay the events only this server makes (joins, parts,
// notices) get ids of their own between two logged messages, and mid stays
// strictly increasing on every server (PROTOCOL.md §13.5): a logged
// message's mid is its sequence << logIDShift on every server, and up to
// 2^20 - 1 local events may follow it before the next.
const logIDShift = 20

// LogID is the mid of the logged message with sequence seq, on every
// server of a cluster; LogSeq is its inverse.
func LogID(seq uint64) uint64  { return seq << logIDShift }
func LogSeq(mid uint64) uint64 { return mid >> logIDShift }

// NextLogSeq is the sequence the relay's log must be followed from: one
// past the last logged message this server's store holds, so that a
// server that was down catches up on what it missed. It is fixed when the
// hub starts.
func (h *Hub) NextLogSeq() uint64 { return h.resumeSeq }

// ApplyLogged delivers m, the logged message with sequence m.ID, to this
// server's sessions and store. The relay calls it for every message of the
// log, in sequence order, from [Hub.NextLogSeq] on. It never blocks.
func (h *Hub) ApplyLogged(m StoredMessage) { h.post(func() { h.applyLogged(m) }) }

// ApplyState applies a change of the shared state made on any server,
// this one too. It never blocks.
func (h *Hub) ApplyState(c StateChange) { h.post(func() { h.applyState(c) }) }

// pendingAck is a sender waiting for the ack of a message the log has
// stored and this server has not applied yet.
type pendingAck struct {
	s  *session
	x  *answerSlot
	id string
}

// localMID is the id of an event only this server makes. With a relay it
// stays within the ids below the next logged message; should 2^20 - 1 of
// them come between two logged messages, the last id is repeated.
func (h *Hub) localMID() uint64 {
	if h.relay != nil && LogSeq(h.lastMID+1) != h.appliedSeq {
		return h.lastMID
	}
	h.lastMID++
	return h.lastMID
}

// publish hands e, which s sent with request id, to the log. Nobody sees
// it yet: every server delivers it once the log gives it back, and the
// sender's ack waits for the log to have stored it and this server to
// have delivered it, so that the sender gets its own message first.
func (h *Hub) publish(s *session, id string, e *Event, queued bool) {
	m := StoredMessage{Time: h.now, Kind: e.Kind, Room: e.Room, From: e.From, To: e.To,
		Text: e.Text, Queued: queued, Key: e.Key, Sig: e.Sig, Ctr: e.Ctr, Cts: e.Cts}
	var x *answerSlot
	if id != "" {
		x = h.reserve(s)
	}
	h.relay.Publish(m, func(seq uint64, err error) {
		h.post(func() { h.published(s, x, id, seq, err) })
	})
}

// published answers a message the log stored, or refused.
func (h *Hub) published(s *session, x *answerSlot, id string, seq uint64, err error) {
	if err != nil {
		h.stats.NotStored++
		h.logNotStored("chat: message not taken by the cluster's log", "user", s.name, "err", err)
		e := &Event{Type: TypeError, ID: id, Code: CodeNotStored,
			Text: "the message was not sent: the servers could not store it; send it again"}
		if x == nil {
			h.sendEvent(s, e)
			return
		}
		h.fill(s, x, e)
		return
	}
	if x == nil {
		return
	}
	if seq <= h.appliedSeq {
		h.fill(s, x, &Event{Type: TypeAck, ID: id, MID: LogID(seq)})
		return
	}
	h.waiting[seq] = append(h.waiting[seq], pendingAck{s: s, x: x, id: id})
}

// applyLogged delivers a logged message on the loop.
func (h *Hub) applyLogged(m StoredMessage) {
	seq := m.ID
	if seq <= h.appliedSeq {
		return
	}
	h.appliedSeq = seq
	m.ID = LogID(seq)
	if m.ID > h.lastMID {
		h.lastMID = m.ID
	}
	h.stats.Messages++
	e := &Event{Type: TypeMsg, MID: m.ID, TS: formatTime(m.Time), Kind: m.Kind, Room: m.Room,
		From: m.From, To: m.To, Text: m.Text, Key: m.Key, Sig: m.Sig, Ctr: m.Ctr, Cts: m.Cts}
	switch m.Kind {
	case KindMsg, KindMe, KindTopic:
		if r := h.logRoom(m.Room); r != nil {
			if m.Kind == KindTopic {
				r.topic = m.Text
				h.saveTopic(r)
			}
			h.broadcast(r, e)
		}
		h.storeLogged(m)
	case KindDM:
		h.applyDM(m, e)
	default:
		h.log.Warn("chat: logged message of unknown kind skipped", "mid", m.ID, "kind", truncateUTF8(SanitizeText(m.Kind), 16))
	}
	for _, w := range h.waiting[seq] {
		h.fill(w.s, w.x, &Event{Type: TypeAck, ID: w.id, MID: m.ID})
	}
	delete(h.waiting, seq)
}

// logRoom returns the room a logged message is for, creating it here if
// this server has no member in it yet, so that its history is at hand for
// whoever joins here later. Nil when the name is bad or no room is free.
func (h *Hub) logRoom(name string) *room {
	name = foldName(name)
	if !ValidRoom(name) {
		return nil
	}
	if r := h.rooms[name]; r != nil {
		return r
	}
	if len(h.rooms) >= h.cfg.maxRooms && !h.evictRoom() {
		return nil
	}
	r := newRoom(name, h.now)
	h.rooms[name] = r
	h.saveRoom(r, true)
	return r
}

// applyDM delivers a logged direct message to the sessions of its sender
// and recipient on this server. One queued for an account that had no
// session anywhere waits in the store for the account's next login.
func (h *Hub) applyDM(m StoredMessage, e *Event) {
	from, to := foldName(m.From), foldName(m.To)
	if m.Queued {
		e.Queued = true
		if u := h.users[from]; u != nil {
			b := h.encode(e)
			for _, s := range u.sessions {
				h.send(s, b)
			}
		}
		h.storeLogged(m)
		if h.store != nil {
			h.queuedFor[to] = m.ID
			// The account may have logged in here since it was sent.
			if u := h.users[to]; u != nil && len(u.sessions) > 0 {
				h.morePending(u.sessions[0])
			}
		}
		return
	}
	b := h.encode(e)
	if t := h.users[to]; t != nil {
		for _, s := range t.sessions {
			h.send(s, b)
		}
	}
	if from != to {
		if u := h.users[from]; u != nil {
			for _, s := range u.sessions {
				h.send(s, b)
			}
		}
	}
	h.storeLogged(m)
}

// storeLogged keeps a logged message in this server's store, the view of
// the log. Nobody waits for it: the log has it already.
func (h *Hub) storeLogged(m StoredMessage) {
	if h.store == nil {
		return
	}
	mid := m.ID
	err := h.store.Append(m, func(err error) {
		if err != nil {
			h.post(func() {
				h.stats.NotStored++
				h.logNotStored("chat: logged message not stored here", "mid", mid, "err", err)
			})
		}
	})
	if err != nil {
		h.stats.NotStored++
		h.logNotStored("chat: logged message not stored here", "mid", mid, "err", err)
		return
	}
	h.stats.Stored++
}

// answerShared answers a command that changed shared state (c, in force
// on this server already) with reply and its ack: at once on a server
// alone; with a relay, once every server can see c, or with an error if
// it could not be shared.
func (h *Hub) answerShared(s *session, req *Request, c StateChange, reply *Event) {
	if h.relay == nil {
		h.sendEvent(s, reply)
		h.ack(s, req.ID, 0)
		return
	}
	x := h.reserve(s)
	h.relay.SetState(c, func(err error) {
		h.post(func() {
			if err != nil {
				h.logNotStored("chat: state change not shared", "user", s.name, "err", err)
				h.fill(s, x, &Event{Type: TypeError, ID: req.ID, Code: CodeNotStored,
					Text: "done on this server only: the other servers could not be told; try again"})
				return
			}
			h.fill(s, x, reply, &Event{Type: TypeAck, ID: req.ID})
		})
	})
}

// applyState applies a shared change: each server ends the sessions of an
// account banned anywhere, and tells its own sessions of a mute.
func (h *Hub) applyState(c StateChange) {
	name := foldName(c.Restriction.User)
	r := restriction{until: c.Restriction.Until, by: c.Restriction.By, reason: c.Restriction.Reason}
	switch c.Kind {
	case StateBan:
		if !ValidUser(name) {
			return
		}
		if c.Removed {
			if _, ok := h.bans[name]; ok {
				delete(h.bans, name)
				h.saveBan(name)
			}
			return
		}
		if !r.active(h.now) {
			return
		}
		if old, ok := h.bans[name]; !ok || !old.same(r) {
			h.bans[name] = r
			h.saveBan(name)
		}
		n := h.endUser(name, ending{
			final: &Event{Type: TypeError, Code: CodeBanned,
				Text: "you were banned by " + r.by + untilText(r.until) + reasonText(r.reason)},
			quit:   "banned by " + r.by + reasonText(r.reason),
			log:    "banned by " + r.by,
			result: fmt.Errorf("%w: banned by %s", ErrDisconnected, r.by),
		})
		if n > 0 {
			h.log.Info("chat: ban from another server", "by", r.by, "user", name, "sessions", n)
		}
	case StateMute:
		if !ValidUser(name) {
			return
		}
		if c.Removed {
			if _, ok := h.mutes[name]; ok {
				delete(h.mutes, name)
				h.saveMute(name)
				h.tell(name, "you were unmuted")
			}
			return
		}
		if old, ok := h.mutes[name]; !ok || !old.same(r) {
			h.mutes[name] = r
			h.saveMute(name)
			h.tell(name, "you were muted by "+r.by+untilText(r.until))
		}
	case StateDelivered:
		if !ValidUser(name) || c.Through <= h.delivered[name] {
			return
		}
		h.delivered[name] = c.Through
		if h.store != nil {
			h.storeErr("delivered", h.store.Delivered(name, c.Through))
		}
	case StateMOTD:
		if text := clampMOTD(c.Text); text != h.motd {
			h.motd = text
			h.saveMOTD()
		}
	}
}

// same reports whether r and o are the same restriction, whatever clock
// readings or locations their times carry.
func (r restriction) same(o restriction) bool {
	return r.until.Equal(o.until) && r.by == o.by && r.reason == o.reason
}

// shareMOTD tells the other servers of a MOTD set here, logging a failure.
func (h *Hub) shareMOTD() {
	if h.relay == nil {
		return
	}
	h.relay.SetState(StateChange{Kind: StateMOTD, Text: h.motd}, func(err error) {
		if err != nil {
			h.post(func() { h.logNotStored("chat: MOTD not shared", "err", err) })
		}
	})
}

// clusterBan asks the relay, off the loop, whether user is banned now, and
// brings this server's copy in line with the answer, so that attach
// refuses a ban made on another server an instant ago and admits a user
// unbanned there an instant ago. The state watcher brings the same change
// a moment later; the cluster's answer is the newer one.
func (h *Hub) clusterBan(user string) {
	if h.relay == nil || !ValidUser(user) {
		return
	}
	sr, banned, err := h.relay.Banned(user)
	if err != nil {
		h.log.Warn("chat: could not ask the cluster for bans; using what this server knows", "user", user, "err", err)
		return
	}
	if !banned {
		h.call(func() {
			if _, ok := h.bans[user]; ok {
				delete(h.bans, user)
				h.saveBan(user)
			}
		})
		return
	}
	h.call(func() {
		r := restriction{until: sr.Until, by: sr.By, reason: sr.Reason}
		if old, ok := h.bans[user]; !ok || !old.same(r) {
			h.bans[user] = r
			h.saveBan(user)
		}
	})
}

// KickHere ends user's sessions on this server for a /kick by by, with
// reason, made on another server, and returns how many it ended. It waits
// for the hub's loop; it returns 0 once the hub has stopped.
func (h *Hub) KickHere(user, by, reason string) int {
	name := foldName(user)
	if !ValidUser(name) {
		return 0
	}
	n := 0
	h.call(func() {
		n = h.endUser(name, kickEnding(by, clampReason(reason)))
		if n > 0 {
			h.log.Info("chat: kick from another server", "by", by, "user", name, "sessions", n)
		}
	})
	return n
}

// kicked answers the admin s, whose /kick of name ended here sessions
// here, once the other servers have answered too.
func (h *Hub) kicked(s *session, x *answerSlot, id, name string, here, there int, err error) {
	if err != nil {
		h.log.Warn("chat: kick not delivered to every server", "user", name, "err", err)
	}
	n := here + there
	switch {
	case n == 0 && err != nil:
		// offline, as the protocol answers a kick that ended nothing.
		h.fill(s, x, &Event{Type: TypeError, ID: id, Code: CodeOffline,
			Text: name + " is on another server, which could not be reached: try again, or /ban"})
		return
	case n == 0:
		h.fill(s, x, &Event{Type: TypeError, ID: id, Code: CodeOffline, Text: name + " is not online"})
		return
	}
	h.log.Info("chat: kick", "by", s.name, "user", name, "sessions", n, "here", here)
	text := fmt.Sprintf("kicked %s (%d session(s))", name, n)
	if err != nil {
		text += "; a server could not be reached, and its sessions may go on"
	}
	h.fill(s, x, &Event{Type: TypeReply, ID: id, Cmd: "kick", User: name, Sessions: n, Text: text},
		&Event{Type: TypeAck, ID: id})
}

// shareDelivered tells the other servers that user's queued direct
// messages were delivered here through the id through.
func (h *Hub) shareDelivered(user string, through uint64) {
	if h.relay == nil {
		return
	}
	h.relay.SetState(StateChange{Kind: StateDelivered, Restriction: StoredRestriction{User: user}, Through: through}, func(err error) {
		if err != nil {
			h.post(func() { h.logNotStored("chat: delivered mark not shared", "user", user, "err", err) })
		}
	})
}

// clusterRooms asks the relay, off the loop, for the rooms s's account
// was last in on any server, which its login rejoins in place of those
// this server's store recorded.
func (h *Hub) clusterRooms(s *session) {
	if h.relay == nil || s.p == nil || !ValidUser(s.name) {
		return
	}
	rooms, found, err := h.relay.SavedRooms(s.name)
	if err != nil {
		h.log.Warn("chat: could not ask the cluster for the account's rooms; using this server's", "user", s.name, "err", err)
		return
	}
	if found {
		s.p.rooms, s.p.roomsShared = rooms, true
	}
}

// shareRooms tells the other servers which rooms u is in, when that is
// not what they were last told, so that a login that only rejoins the
// same rooms writes nothing.
func (h *Hub) shareRooms(u *user) {
	if h.relay == nil || h.holdRooms {
		return
	}
	var rooms []string
	for _, r := range u.sortedRooms() {
		rooms = append(rooms, r.name)
	}
	if old, ok := h.sharedRooms[u.name]; ok && slices.Equal(old, rooms) {
		return
	}
	h.sharedRooms[u.name] = rooms
	h.relay.SetState(StateChange{Kind: StateRooms, Restriction: StoredRestriction{User: u.name}, Rooms: rooms}, func(err error) {
		if err != nil {
			h.post(func() { h.logNotStored("chat: rooms not shared", "user", u.name, "err", err) })
		}
	})
}

// clusterDelivered asks the relay, off the loop, how far the direct
// messages queued for user were delivered on any server, and records it
// here, so that a login here does not give again what a login on another
// server got an instant ago.
func (h *Hub) clusterDelivered(user string) {
	if h.relay == nil || h.store == nil || !ValidUser(user) {
		return
	}
	through, err := h.relay.DeliveredThrough(user)
	if err != nil {
		h.log.Warn("chat: could not ask the cluster what was delivered; using what this server knows", "user", user, "err", err)
		return
	}
	h.call(func() {
		if through > h.delivered[user] {
			h.delivered[user] = through
		}
	})
}

// clusterRead adds to read, the last-read positions of user's account in
// this server's store, the ones the cluster holds from the other servers,
// the later of the two for each room. It asks the relay on the calling
// goroutine (the session's, before it is attached).
func (h *Hub) clusterRead(user string, read map[string]uint64) map[string]uint64 {
	if h.relay == nil {
		return read
	}
	shared, err := h.relay.LastRead(user)
	if err != nil {
		h.log.Warn("chat: could not ask the cluster where the account stopped reading; using this server's", "user", user, "err", err)
		return read
	}
	if read == nil && len(shared) > 0 {
		read = make(map[string]uint64, len(shared))
	}
	for room, id := range shared {
		if id > read[room] {
			read[room] = id
		}
	}
	return read
}

// relayArrived and relayLeft tell the relay about a user's presence here.
func (h *Hub) relayArrived(u *user) {
	if h.relay != nil {
		h.relay.Arrived(u.name)
	}
}

func (h *Hub) relayLeft(u *user, why string) {
	if h.relay != nil {
		h.relay.Left(u.name, why)
	}
}

// relayMember tells the relay that u entered r here, or left it for
// reason.
func (h *Hub) relayMember(u *user, r *room, in bool, reason string) {
	if h.relay == nil || len(u.sessions) == 0 {
		return
	}
	if in {
		h.relay.Joined(u.name, r.name)
	} else {
		h.relay.Parted(u.name, r.name, reason)
	}
}

// roomMembers is everyone in r: here, and with a relay on other servers.
func (h *Hub) roomMembers(r *room) []string {
	names := r.memberNames()
	if h.relay == nil {
		return names
	}
	names = append(names, h.relay.Members(r.name)...)
	slices.Sort(names)
	return slices.Compact(names)
}

// Flush returns once the hub has handled what was handed to it before the
// call: log messages and state changes from [Hub.ApplyLogged] and
// [Hub.ApplyState], acks, store callbacks.
func (h *Hub) Flush() { h.call(h.runPosted) }

// Membership changes on other servers, as [Hub.RemoteMember] reports them.
const (
	RemoteJoined = iota + 1 // user entered the room
	RemoteParted            // user left the room, and is still online
	RemoteQuit              // user's last session on the cluster ended
)

// RemoteMember tells this server's members of room that user, whose
// sessions are on other servers, joined, parted or quit it (change, one
// of RemoteJoined, RemoteParted and RemoteQuit; reason is shown with a
// part or quit), as they see their own server's users do. The relay
// reports a change once for the cluster: not when the user is in the room
// on another server still, or already. It never blocks.
func (h *Hub) RemoteMember(room, user string, change int, reason string) {
	h.post(func() {
		r := h.rooms[foldName(room)]
		if r == nil || h.shutting {
			return
		}
		name := foldName(user)
		if u := h.users[name]; u != nil {
			if _, here := r.members[u]; here {
				return // its own joins and parts are told from here
			}
		}
		if change == RemoteQuit && h.users[name] != nil {
			change = RemoteParted // still online here
		}
		switch change {
		case RemoteJoined:
			h.broadcast(r, h.newMsg(KindJoin, r.name, name, "", ""))
		case RemoteParted:
			h.broadcast(r, h.newMsg(KindPart, r.name, name, "", clampReason(reason)))
		case RemoteQuit:
			h.broadcast(r, h.newMsg(KindQuit, r.name, name, "", clampReason(reason)))
		}
	})
}
