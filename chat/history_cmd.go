package chat

import (
	"fmt"
	"strconv"
	"strings"
)

// parseHistory: /history [#ROOM|NAME] [N] and /history [#ROOM|NAME] before
// ID [N]. A NAME asks for the direct messages with that user.
func parseHistory(c *command, rest, room string) (*Request, error) {
	req := &Request{Type: TypeCmd, Cmd: c.name}
	w, after := cutWord(rest)
	switch {
	case strings.HasPrefix(w, "#"):
		req.Room = foldName(w)
		if !ValidRoom(req.Room) {
			return nil, badRoom(req.Room)
		}
		rest = after
	case w != "" && w != "before" && !isDigits(w):
		req.To = foldName(w)
		rest = after
	default:
		if room == "" {
			return nil, ErrNoRoom
		}
		req.Room = room
	}
	args := strings.Fields(rest)
	if _, _, err := historyArgs(args); err != nil {
		return nil, errUsage
	}
	req.Args = args
	return req, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// historyArgs reads [N] or before ID [N].
func historyArgs(args []string) (before uint64, n int, err *Error) {
	bad := errorf(CodeBadRequest, "usage: /history [ROOM|NAME] [before ID] [N]")
	n = historyPage
	if len(args) > 0 && args[0] == "before" {
		if len(args) < 2 {
			return 0, 0, bad
		}
		id, perr := strconv.ParseUint(args[1], 10, 53)
		if perr != nil || id == 0 {
			return 0, 0, bad
		}
		before, args = id, args[2:]
	}
	switch len(args) {
	case 0:
	case 1:
		v, perr := strconv.Atoi(args[0])
		if perr != nil || v < 1 {
			return 0, 0, bad
		}
		n = min(v, maxHistoryReq)
	default:
		return 0, 0, bad
	}
	return before, n, nil
}

func (h *Hub) cmdHistory(s *session, req *Request) {
	before, n, err := historyArgs(req.Args)
	if err != nil {
		h.fail(s, req.ID, err.Code, "%s", err.Text)
		return
	}
	if req.To != "" {
		h.dmHistory(s, req, before, n)
		return
	}
	r := h.memberRoom(s, req.ID, req.Room)
	if r == nil {
		return
	}
	// The newest messages come from the room's ring; what the ring no
	// longer holds, from the store, on a goroutine of its own.
	var recent []*Event
	for x := r.history.newest; x != nil && len(recent) < n; x = x.prev {
		if before == 0 || x.e.MID < before {
			recent = append(recent, x.e)
		}
	}
	for i, j := 0, len(recent)-1; i < j; i, j = i+1, j-1 {
		recent[i], recent[j] = recent[j], recent[i]
	}
	if len(recent) == n || h.store == nil {
		h.sendHistory(s, req, r.name, "", recent)
		h.ack(s, req.ID, 0)
		return
	}
	below := before
	if len(recent) > 0 {
		below = recent[0].MID
	}
	x := h.reserve(s)
	room, need := r.name, n-len(recent)
	go func() {
		msgs, err := h.store.History(room, below, need)
		h.post(func() {
			if err != nil {
				h.log.Error("chat: reading history", "room", room, "err", err)
				h.fill(s, x, &Event{Type: TypeError, ID: req.ID, Code: CodeUnsupported, Text: "the history could not be read"})
				return
			}
			events := make([]*Event, 0, len(msgs)+len(recent))
			for _, m := range msgs {
				events = append(events, eventOf(m))
			}
			h.sendHistory(s, req, room, "", append(events, recent...))
			h.fill(s, x, &Event{Type: TypeAck, ID: req.ID})
		})
	}()
}

func (h *Hub) dmHistory(s *session, req *Request, before uint64, n int) {
	to := foldName(req.To)
	if !ValidUser(to) {
		h.fail(s, req.ID, CodeBadName, "%q is not a user name", truncateUTF8(SanitizeText(req.To), 40))
		return
	}
	if h.store == nil {
		h.fail(s, req.ID, CodeUnsupported, "this server keeps no direct messages")
		return
	}
	x := h.reserve(s)
	me := s.name
	go func() {
		msgs, err := h.store.DMHistory(me, to, before, n)
		h.post(func() {
			if err != nil {
				h.log.Error("chat: reading direct message history", "user", me, "err", err)
				h.fill(s, x, &Event{Type: TypeError, ID: req.ID, Code: CodeUnsupported, Text: "the history could not be read"})
				return
			}
			events := make([]*Event, 0, len(msgs))
			for _, m := range msgs {
				events = append(events, eventOf(m))
			}
			h.sendHistory(s, req, "", to, events)
			h.fill(s, x, &Event{Type: TypeAck, ID: req.ID})
		})
	}()
}

// sendHistory sends s the events of a history page, oldest first and
// marked as history, then a reply naming the oldest one for the next page.
func (h *Hub) sendHistory(s *session, req *Request, room, to string, events []*Event) {
	for _, e := range events {
		c := *e
		c.History = true
		h.sendEvent(s, &c)
	}
	where := room
	if to != "" {
		where = "your direct messages with " + to
	}
	reply := &Event{Cmd: "history", Room: room, To: to, Text: "no earlier messages in " + where}
	if len(events) > 0 {
		reply.MID = events[0].MID
		reply.Text = fmt.Sprintf("%d message(s) of %s; older ones: /history %s before %d",
			len(events), where, strings.TrimSpace(room+to), events[0].MID)
	}
	h.reply(s, req.ID, reply)
}

// parseSearch: /search TEXT [#ROOM].
func parseSearch(c *command, rest, _ string) (*Request, error) {
	text := strings.TrimSpace(rest)
	req := &Request{Type: TypeCmd, Cmd: c.name}
	if i := strings.LastIndexAny(text, " \t"); i >= 0 && strings.HasPrefix(text[i+1:], "#") {
		req.Room = foldName(text[i+1:])
		if !ValidRoom(req.Room) {
			return nil, badRoom(req.Room)
		}
		text = strings.TrimSpace(text[:i])
	}
	if text == "" {
		return nil, errUsage
	}
	req.Args = []string{text}
	return req, nil
}

func (h *Hub) cmdSearch(s *session, req *Request) {
	if h.store == nil {
		h.fail(s, req.ID, CodeUnsupported, "this server keeps no searchable history")
		return
	}
	text := strings.TrimSpace(req.Args[0])
	if text == "" || len(text) > MaxTopic {
		h.fail(s, req.ID, CodeBadRequest, "usage: /search TEXT [#ROOM], TEXT at most %d bytes", MaxTopic)
		return
	}
	// Only the rooms the user is in: the ones it may read.
	var rooms []string
	if req.Room != "" {
		r := h.memberRoom(s, req.ID, req.Room)
		if r == nil {
			return
		}
		rooms = []string{r.name}
	} else {
		for _, r := range s.user.sortedRooms() {
			rooms = append(rooms, r.name)
		}
	}
	if len(rooms) == 0 {
		h.fail(s, req.ID, CodeNotMember, "you are in no room to search")
		return
	}
	x := h.reserve(s)
	go func() {
		msgs, err := h.store.Search(text, rooms, 0, searchPage)
		h.post(func() {
			if err != nil {
				h.log.Error("chat: search", "user", s.name, "err", err)
				h.fill(s, x, &Event{Type: TypeError, ID: req.ID, Code: CodeUnsupported, Text: "the search failed"})
				return
			}
			h.sendSearch(s, req, text, msgs)
			h.fill(s, x, &Event{Type: TypeAck, ID: req.ID})
		})
	}()
}

// sendSearch replies with the hits, newest first, one line each.
func (h *Hub) sendSearch(s *session, req *Request, text string, msgs []StoredMessage) {
	if len(msgs) == 0 {
		h.reply(s, req.ID, &Event{Cmd: "search", Room: req.Room, Text: "nothing found for " + text})
		return
	}
	line := func(m StoredMessage) string {
		return fmt.Sprintf("%s %s [%d] %s: %s", m.Room, m.Time.UTC().Format("2006-01-02 15:04"), m.ID, m.From, m.Text)
	}
	runs := chunk(len(msgs), func(i int) int { return 2*len(line(msgs[i])) + 16 }, listBudget)
	for i, run := range runs {
		var b strings.Builder
		for j, m := range msgs[run[0]:run[1]] {
			if j > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(line(m))
		}
		h.reply(s, req.ID, &Event{Cmd: "search", Room: req.Room, More: i < len(runs)-1, Text: b.String()})
	}
}
