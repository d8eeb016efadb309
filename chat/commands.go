package chat

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// command dispatches a cmd request through commandTable.
func (h *Hub) command(s *session, req *Request) {
	c := lookupCommand(req.Cmd)
	if c == nil || c.local {
		h.fail(s, req.ID, CodeUnknownCommand, "unknown command /%s: see /help", truncateUTF8(SanitizeText(req.Cmd), 32))
		return
	}
	// The role is asked now, not remembered from login: an account whose
	// admin role was taken away loses these commands at once.
	if c.admin && !h.isAdmin(s) {
		h.fail(s, req.ID, CodeForbidden, "/%s is for admins only", c.name)
		return
	}
	req.Cmd = c.name
	if len(req.Args) < c.minArgs || len(req.Args) > c.maxArgs {
		h.fail(s, req.ID, CodeBadRequest, "usage: %s", c.usage)
		return
	}
	if c.inRoom {
		req.Room = foldName(req.Room)
		if !ValidRoom(req.Room) {
			h.fail(s, req.ID, CodeBadRoom, "%s", badRoom(truncateUTF8(SanitizeText(req.Room), 40)).Text)
			return
		}
	}
	c.run(h, s, req)
}

// arg returns args[i], or "" when absent.
func arg(req *Request, i int) string {
	if i < len(req.Args) {
		return req.Args[i]
	}
	return ""
}

func (h *Hub) cmdJoin(s *session, req *Request) {
	r, added, err := h.addMember(s.user, req.Room)
	if err != nil {
		h.fail(s, req.ID, err.Code, "%s", err.Text)
		return
	}
	if added {
		h.announceJoin(s.user, r)
		h.tellNews(s, r)
	}
	h.ack(s, req.ID, 0)
}

func (h *Hub) cmdPart(s *session, req *Request) {
	r := h.memberRoom(s, req.ID, req.Room)
	if r == nil {
		return
	}
	h.part(s.user, r, clampReason(arg(req, 0)))
	h.ack(s, req.ID, 0)
}

func (h *Hub) cmdMsg(s *session, req *Request) {
	h.message(s, &Request{Type: TypeMsg, ID: req.ID, To: req.Args[0], Text: req.Args[1]}, nil) // unsigned: §13.16.3
}

func (h *Hub) cmdMe(s *session, req *Request) {
	h.message(s, &Request{Type: TypeMsg, ID: req.ID, Room: req.Room, Kind: KindMe, Text: req.Args[0]}, nil) // unsigned: §13.16.3
}

func (h *Hub) cmdRooms(s *session, req *Request) {
	rooms := slices.Sorted(maps.Keys(h.rooms))
	size := func(i int) int { return len(rooms[i]) + 2*len(h.rooms[rooms[i]].topic) + 40 }
	runs := chunk(len(rooms), size, listBudget)
	for i, run := range runs {
		e := &Event{Cmd: "rooms", More: i < len(runs)-1, Rooms: []RoomInfo{}}
		var text strings.Builder
		for _, name := range rooms[run[0]:run[1]] {
			r := h.rooms[name]
			e.Rooms = append(e.Rooms, RoomInfo{Room: name, Topic: r.topic, Count: len(r.members)})
			fmt.Fprintf(&text, "%s (%d)", name, len(r.members))
			if r.topic != "" {
				fmt.Fprintf(&text, ": %s", r.topic)
			}
			text.WriteByte('\n')
		}
		e.Text = strings.TrimSuffix(text.String(), "\n")
		h.reply(s, req.ID, e)
	}
	h.ack(s, req.ID, 0)
}

func (h *Hub) cmdTopic(s *session, req *Request) {
	if len(req.Args) == 0 {
		r := h.rooms[req.Room]
		if r == nil {
			h.fail(s, req.ID, CodeNoSuchRoom, "there is no room %s", req.Room)
			return
		}
		text := "no topic is set in " + r.name
		if r.topic != "" {
			text = "topic of " + r.name + ": " + r.topic
		}
		h.reply(s, req.ID, &Event{Cmd: "topic", Room: r.name, Topic: r.topic, Text: text})
		h.ack(s, req.ID, 0)
		return
	}
	r := h.memberRoom(s, req.ID, req.Room)
	if r == nil {
		return
	}
	if m, ok := h.muted(s); ok {
		h.fail(s, req.ID, CodeMuted, "you are muted%s", untilText(m.until))
		return
	}
	topic := req.Args[0]
	if len(topic) > MaxTopic {
		h.fail(s, req.ID, CodeTooLong, "the topic is %d bytes; the limit is %d", len(topic), MaxTopic)
		return
	}
	topic = strings.TrimSpace(SanitizeText(topic))
	if h.relay != nil {
		// Set on every server, this one too, when the log gives it back.
		h.publish(s, req.ID, &Event{Type: TypeMsg, Kind: KindTopic, Room: r.name, From: s.name, Text: topic}, false)
		return
	}
	r.topic = topic
	h.saveTopic(r)
	e := h.newMsg(KindTopic, r.name, s.name, "", topic)
	h.broadcast(r, e)
	h.persist(s, req.ID, e, false)
}

func (h *Hub) cmdWho(s *session, req *Request) {
	r := h.rooms[req.Room]
	if r == nil && h.relay != nil && len(h.relay.Members(req.Room)) > 0 {
		r = newRoom(req.Room, h.now) // only on other servers: not kept here
	}
	if r == nil {
		h.fail(s, req.ID, CodeNoSuchRoom, "there is no room %s", req.Room)
		return
	}
	names := h.roomMembers(r)
	away := make(map[string]bool)
	for u := range r.members {
		if u.away != "" {
			away[u.name] = true
		}
	}
	if h.relay != nil {
		for _, n := range names {
			if h.users[n] == nil && h.relay.Away(n) != "" {
				away[n] = true
			}
		}
	}
	// Each name may appear twice in a part: in members and away_members.
	runs := chunk(len(names), func(i int) int { return 2 * (len(names[i]) + 3) }, listBudget)
	for i, run := range runs {
		part := names[run[0]:run[1]]
		e := &Event{Cmd: "who", Room: r.name, Members: part, More: i < len(runs)-1,
			Text: fmt.Sprintf("%s (%d): %s", r.name, len(names), strings.Join(part, " "))}
		for _, n := range part {
			if away[n] {
				e.AwayMembers = append(e.AwayMembers, n)
			}
		}
		if len(e.AwayMembers) > 0 {
			e.Text += " (away: " + strings.Join(e.AwayMembers, " ") + ")"
		}
		h.reply(s, req.ID, e)
	}
	h.ack(s, req.ID, 0)
}

func (h *Hub) cmdWhois(s *session, req *Request) {
	name := h.targetName(s, req)
	if name == "" {
		return
	}
	u := h.users[name]
	if u == nil && h.relay != nil {
		if nodes := h.relay.Where(name); len(nodes) > 0 {
			h.remoteWhois(s, req, name, nodes)
			return
		}
	}
	if u == nil {
		h.fail(s, req.ID, CodeOffline, "%s is not online", name)
		return
	}
	var joined []string
	for _, r := range u.sortedRooms() {
		joined = append(joined, r.name)
	}
	if h.relay != nil {
		joined = append(joined, h.relay.Rooms(name)...)
		slices.Sort(joined)
		joined = slices.Compact(joined)
	}
	admin := h.userIsAdmin(u)
	text := fmt.Sprintf("%s is online in %d session(s) since %s", u.name, len(u.sessions), formatTime(u.since))
	if admin {
		text += ", admin"
	}
	if len(joined) > 0 {
		text += ", in " + strings.Join(joined, " ")
	}
	if u.away != "" {
		text += ", away: " + u.away
	}
	var keys []string
	for _, x := range u.sessions {
		if x.keyB64 != "" && !slices.Contains(keys, x.keyB64) {
			keys = append(keys, x.keyB64)
		}
	}
	h.reply(s, req.ID, &Event{Cmd: "whois", User: u.name, Admin: admin, Sessions: len(u.sessions),
		Since: formatTime(u.since), Joined: joined, Away: u.away, Keys: keys, Text: text})
	h.ack(s, req.ID, 0)
}

// remoteWhois answers /whois for a user whose sessions are all on other
// servers: this one knows where and in which rooms, not since when.
func (h *Hub) remoteWhois(s *session, req *Request, name string, nodes []string) {
	joined := h.relay.Rooms(name)
	admin := h.isAdminFunc != nil && h.isAdminFunc(name)
	text := fmt.Sprintf("%s is online on %s", name, strings.Join(nodes, " "))
	if admin {
		text += ", admin"
	}
	if len(joined) > 0 {
		text += ", in " + strings.Join(joined, " ")
	}
	away := h.relay.Away(name)
	if away != "" {
		text += ", away: " + away
	}
	h.reply(s, req.ID, &Event{Cmd: "whois", User: name, Admin: admin, Sessions: len(nodes), Joined: joined, Away: away, Text: text})
	h.ack(s, req.ID, 0)
}

// defaultAway is the away message of a plain /away.
const defaultAway = "away"

func (h *Hub) cmdAway(s *session, req *Request) {
	if len(req.Args) > 0 {
		if m, ok := h.muted(s); ok {
			h.fail(s, req.ID, CodeMuted, "you are muted%s", untilText(m.until))
			return
		}
	}
	// An away message is shown like a reason: one line, cut to MaxReason.
	text := strings.TrimSpace(clampReason(arg(req, 0)))
	if text == "" {
		text = defaultAway
	}
	s.user.away = text
	if h.relay != nil {
		h.relay.SetAway(s.name, text)
	}
	h.reply(s, req.ID, &Event{Cmd: "away", User: s.name, Away: text, Text: "you are marked away: " + text})
	h.ack(s, req.ID, 0)
}

func (h *Hub) cmdBack(s *session, req *Request) {
	text := "you are no longer marked away"
	if s.user.away == "" {
		text = "you were not marked away"
	}
	s.user.away = ""
	if h.relay != nil {
		h.relay.SetAway(s.name, "")
	}
	h.reply(s, req.ID, &Event{Cmd: "back", User: s.name, Text: text})
	h.ack(s, req.ID, 0)
}

// awayEvent tells the sender of a direct message that its recipient u is
// away, as IRC's RPL_AWAY does.
func (h *Hub) awayEvent(u *user) *Event { return h.awayEventOf(u.name, u.away) }

// awayEventOf is awayEvent for a user with the away message text, which
// may be on another server.
func (h *Hub) awayEventOf(name, text string) *Event {
	e := h.newMsg(KindAway, "", "", "", name+" is away: "+text)
	e.User, e.Away = name, text
	return e
}

func (h *Hub) cmdNick(s *session, req *Request) {
	h.fail(s, req.ID, CodeUnsupported, "names are account names and cannot be changed; you are %s", s.name)
}

func (h *Hub) cmdMOTD(s *session, req *Request) {
	if len(req.Args) == 0 {
		text := h.motd
		if text == "" {
			text = "there is no message of the day"
		}
		h.reply(s, req.ID, &Event{Cmd: "motd", MOTD: h.motd, Text: text})
		h.ack(s, req.ID, 0)
		return
	}
	if !h.isAdmin(s) {
		h.fail(s, req.ID, CodeForbidden, "only admins can set the message of the day")
		return
	}
	if len(req.Args[0]) > MaxMOTD {
		h.fail(s, req.ID, CodeTooLong, "the message of the day is %d bytes; the limit is %d", len(req.Args[0]), MaxMOTD)
		return
	}
	h.motd = clampMOTD(req.Args[0])
	h.saveMOTD()
	h.log.Info("chat: motd set", "by", s.name)
	reply := &Event{Type: TypeReply, ID: req.ID, Cmd: "motd", MOTD: h.motd, Text: "message of the day updated"}
	h.answerShared(s, req, StateChange{Kind: StateMOTD, Text: h.motd}, reply)
}

func (h *Hub) cmdHelp(s *session, req *Request) {
	var cmds []CommandInfo
	if len(req.Args) == 1 {
		c := lookupCommand(strings.TrimSpace(req.Args[0]))
		if c == nil || c.local {
			h.fail(s, req.ID, CodeUnknownCommand, "unknown command %s", truncateUTF8(SanitizeText(req.Args[0]), 32))
			return
		}
		cmds = []CommandInfo{c.info()}
	} else {
		admin := h.isAdmin(s)
		for _, c := range Commands() {
			if !c.Admin || admin {
				cmds = append(cmds, c)
			}
		}
	}
	h.reply(s, req.ID, &Event{Cmd: "help", Commands: cmds, Text: formatHelp(cmds)})
	h.ack(s, req.ID, 0)
}

func (h *Hub) cmdQuit(s *session, req *Request) {
	reason := clampReason(arg(req, 0))
	h.ack(s, req.ID, 0)
	if s.p != nil && len(s.p.answers) > 0 {
		// Messages sent before are still being stored: their acks, and
		// this one, go out first.
		s.p.quit = &ending{quit: reason, log: "quit"}
		return
	}
	h.end(s, ending{quit: reason, log: "quit"})
}

// targetName returns the user named by args[0] for a moderation command,
// or answers with an error and returns "".
func (h *Hub) targetName(s *session, req *Request) string {
	name := foldName(req.Args[0])
	if !ValidUser(name) {
		h.fail(s, req.ID, CodeBadName, "%q is not a user name", truncateUTF8(SanitizeText(req.Args[0]), 40))
		return ""
	}
	return name
}

// notSelf refuses moderation of oneself.
func (h *Hub) notSelf(s *session, req *Request, name string) bool {
	if name == s.name {
		h.fail(s, req.ID, CodeForbidden, "you cannot /%s yourself", req.Cmd)
		return false
	}
	return true
}

// duration parses the optional duration argument i; ok is false after an
// error was sent.
func (h *Hub) duration(s *session, req *Request, i int) (until time.Time, ok bool) {
	d := arg(req, i)
	if d == "" {
		return time.Time{}, true
	}
	dur, err := ParseDuration(d)
	if err != nil {
		h.fail(s, req.ID, CodeBadRequest, "%s", err.(*Error).Text)
		return time.Time{}, false
	}
	return h.now.Add(dur), true
}

func (h *Hub) cmdKick(s *session, req *Request) {
	name := h.targetName(s, req)
	if name == "" || !h.notSelf(s, req, name) {
		return
	}
	reason := clampReason(arg(req, 1))
	n := h.endUser(name, kickEnding(s.name, reason))
	if h.relay != nil && len(h.relay.Where(name)) > 0 {
		// The user has sessions on other servers too: they end them,
		// and the answer waits for theirs.
		x := h.reserve(s)
		h.relay.Kick(name, s.name, reason, func(there int, err error) {
			h.post(func() { h.kicked(s, x, req.ID, name, n, there, err) })
		})
		return
	}
	if n == 0 {
		h.fail(s, req.ID, CodeOffline, "%s is not online", name)
		return
	}
	h.log.Info("chat: kick", "by", s.name, "user", name, "sessions", n)
	h.reply(s, req.ID, &Event{Cmd: "kick", User: name, Sessions: n, Text: fmt.Sprintf("kicked %s (%d session(s))", name, n)})
	h.ack(s, req.ID, 0)
}

// kickEnding ends a session kicked by by.
func kickEnding(by, reason string) ending {
	return ending{
		final:  &Event{Type: TypeError, Code: CodeKicked, Text: "you were kicked by " + by + reasonText(reason)},
		quit:   "kicked by " + by + reasonText(reason),
		log:    "kicked by " + by,
		result: fmt.Errorf("%w: kicked by %s", ErrDisconnected, by),
	}
}

func (h *Hub) cmdBan(s *session, req *Request) {
	name := h.targetName(s, req)
	if name == "" || !h.notSelf(s, req, name) {
		return
	}
	until, ok := h.duration(s, req, 1)
	if !ok {
		return
	}
	reason := clampReason(arg(req, 2))
	h.bans[name] = restriction{until: until, by: s.name, reason: reason}
	h.saveBan(name)
	n := h.endUser(name, ending{
		final: &Event{Type: TypeError, Code: CodeBanned,
			Text: "you were banned by " + s.name + untilText(until) + reasonText(reason)},
		quit:   "banned by " + s.name + reasonText(reason),
		log:    "banned by " + s.name,
		result: fmt.Errorf("%w: banned by %s", ErrDisconnected, s.name),
	})
	h.log.Info("chat: ban", "by", s.name, "user", name, "until", until, "sessions", n)
	reply := &Event{Type: TypeReply, ID: req.ID, Cmd: "ban", User: name, Sessions: n,
		Text: fmt.Sprintf("banned %s%s (%d session(s) ended)", name, untilText(until), n)}
	// In a cluster, answered once every server holds the ban: a login
	// anywhere after the answer is refused.
	h.answerShared(s, req, StateChange{Kind: StateBan, Restriction: storedRestriction(name, h.bans[name])}, reply)
}

func (h *Hub) cmdUnban(s *session, req *Request) {
	name := h.targetName(s, req)
	if name == "" {
		return
	}
	if r, ok := h.bans[name]; !ok || !r.active(h.now) {
		h.fail(s, req.ID, CodeNotFound, "%s is not banned", name)
		return
	}
	delete(h.bans, name)
	h.saveBan(name)
	h.log.Info("chat: unban", "by", s.name, "user", name)
	reply := &Event{Type: TypeReply, ID: req.ID, Cmd: "unban", User: name, Text: "unbanned " + name}
	h.answerShared(s, req, StateChange{Kind: StateBan, Restriction: StoredRestriction{User: name}, Removed: true}, reply)
}

func (h *Hub) cmdMute(s *session, req *Request) {
	name := h.targetName(s, req)
	if name == "" || !h.notSelf(s, req, name) {
		return
	}
	until, ok := h.duration(s, req, 1)
	if !ok {
		return
	}
	h.mutes[name] = restriction{until: until, by: s.name}
	h.saveMute(name)
	h.tell(name, "you were muted by "+s.name+untilText(until))
	h.log.Info("chat: mute", "by", s.name, "user", name, "until", until)
	reply := &Event{Type: TypeReply, ID: req.ID, Cmd: "mute", User: name, Text: "muted " + name + untilText(until)}
	h.answerShared(s, req, StateChange{Kind: StateMute, Restriction: storedRestriction(name, h.mutes[name])}, reply)
}

func (h *Hub) cmdUnmute(s *session, req *Request) {
	name := h.targetName(s, req)
	if name == "" {
		return
	}
	if r, ok := h.mutes[name]; !ok || !r.active(h.now) {
		h.fail(s, req.ID, CodeNotFound, "%s is not muted", name)
		return
	}
	delete(h.mutes, name)
	h.saveMute(name)
	h.tell(name, "you were unmuted by "+s.name)
	h.log.Info("chat: unmute", "by", s.name, "user", name)
	reply := &Event{Type: TypeReply, ID: req.ID, Cmd: "unmute", User: name, Text: "unmuted " + name}
	h.answerShared(s, req, StateChange{Kind: StateMute, Restriction: StoredRestriction{User: name}, Removed: true}, reply)
}

// tell sends a notice to every logged-in session of name.
func (h *Hub) tell(name, text string) {
	u := h.users[name]
	if u == nil {
		return
	}
	b := h.encode(h.newMsg(KindNotice, "", "", "", text))
	for _, s := range u.sessions {
		h.send(s, b)
	}
}

func (h *Hub) cmdBans(s *session, req *Request) {
	list := func(m map[string]restriction) []Restriction {
		out := []Restriction{}
		for _, name := range slices.Sorted(maps.Keys(m)) {
			if r := m[name]; r.active(h.now) {
				x := Restriction{User: name, By: r.by, Reason: r.reason}
				if !r.until.IsZero() {
					x.Until = formatTime(r.until)
				}
				out = append(out, x)
			}
		}
		return out
	}
	describe := func(what string, rs []Restriction) string {
		var b strings.Builder
		for i, r := range rs {
			if i > 0 {
				b.WriteByte('\n')
			}
			fmt.Fprintf(&b, "%s %s by %s", what, r.User, r.By)
			if r.Until != "" {
				fmt.Fprintf(&b, " until %s", r.Until)
			}
			if r.Reason != "" {
				fmt.Fprintf(&b, ": %s", r.Reason)
			}
		}
		return b.String()
	}
	bans, mutes := list(h.bans), list(h.mutes)
	size := func(rs []Restriction) func(int) int {
		return func(i int) int {
			return 2 * (len(rs[i].User) + len(rs[i].By) + len(rs[i].Until) + 2*len(rs[i].Reason) + 60)
		}
	}
	var events []*Event
	if len(bans) > 0 {
		for _, run := range chunk(len(bans), size(bans), listBudget) {
			part := bans[run[0]:run[1]]
			events = append(events, &Event{Cmd: "bans", Bans: part, Text: describe("banned", part)})
		}
	}
	if len(mutes) > 0 {
		for _, run := range chunk(len(mutes), size(mutes), listBudget) {
			part := mutes[run[0]:run[1]]
			events = append(events, &Event{Cmd: "bans", Mutes: part, Text: describe("muted", part)})
		}
	}
	if len(events) == 0 {
		events = append(events, &Event{Cmd: "bans", Text: "nobody is banned or muted"})
	}
	for i, e := range events {
		e.More = i < len(events)-1
		h.reply(s, req.ID, e)
	}
	h.ack(s, req.ID, 0)
}
