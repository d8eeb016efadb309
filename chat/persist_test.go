package chat_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"securechat/chat"
	"securechat/chat/chattest"
	"securechat/chatstore"
	"securechat/store"
)

// These tests run the hub on the in-memory store, through the same
// adapter the server uses, with clients that speak JSON over channels.

type client struct {
	t    *testing.T
	name string
	conn *chattest.Pipe
	done chan error
	seq  int

	welcome *chat.Event // or the error that refused the login
}

// login starts a session of name on h and sends hello with rooms.
func login(t *testing.T, h *chat.Hub, name string, rooms ...string) *client {
	t.Helper()
	return loginAs(t, h, chat.Identity{User: name, Admin: name == "admin"}, rooms...)
}

// loginAs is login with a whole identity, a signing key say.
func loginAs(t *testing.T, h *chat.Hub, id chat.Identity, rooms ...string) *client {
	t.Helper()
	name := id.User
	c := &client{t: t, name: name, done: make(chan error, 1),
		conn: chattest.NewPipe()}
	go func() {
		c.done <- h.Serve(context.Background(), c.conn, id)
	}()
	c.send(&chat.Request{Type: chat.TypeHello, ID: "h", V: 1, Rooms: rooms})
	c.welcome = c.wait(func(e *chat.Event) bool { return e.Type == chat.TypeWelcome || e.Type == chat.TypeError })
	return c
}

func (c *client) send(r *chat.Request) {
	c.t.Helper()
	p, err := chat.EncodeRequest(r)
	if err != nil {
		c.t.Fatal(err)
	}
	c.conn.In <- p
}

// do sends r with a fresh id and returns every event up to its ack or
// error, that one last.
func (c *client) do(r *chat.Request) []*chat.Event {
	c.t.Helper()
	c.seq++
	r.ID = fmt.Sprintf("%s-%d", c.name, c.seq)
	c.send(r)
	return c.until(func(e *chat.Event) bool { return e.ID == r.ID && (e.Type == chat.TypeAck || e.Type == chat.TypeError) })
}

func (c *client) line(text, room string) []*chat.Event {
	c.t.Helper()
	r, err := chat.ParseLine(text, room)
	if err != nil {
		c.t.Fatalf("%q: %v", text, err)
	}
	return c.do(r)
}

func (c *client) until(f func(*chat.Event) bool) []*chat.Event {
	c.t.Helper()
	var got []*chat.Event
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-c.conn.Events:
			got = append(got, e)
			if f(e) {
				return got
			}
		case <-deadline:
			c.t.Fatalf("%s: no such event; got %s", c.name, dumpEvents(got))
		}
	}
}

func (c *client) wait(f func(*chat.Event) bool) *chat.Event {
	c.t.Helper()
	got := c.until(f)
	return got[len(got)-1]
}

// quit ends the session and waits for Serve to return.
func (c *client) quit() {
	c.t.Helper()
	close(c.conn.In)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s: Serve did not return", c.name)
	}
}

func dumpEvents(es []*chat.Event) string {
	var b strings.Builder
	for _, e := range es {
		p, _ := chat.EncodeEvent(e)
		b.Write(p)
		b.WriteByte('\n')
	}
	return b.String()
}

func last(es []*chat.Event) *chat.Event { return es[len(es)-1] }

func texts(es []*chat.Event, kind string) []string {
	var out []string
	for _, e := range es {
		if e.Type == chat.TypeMsg && e.Kind == kind {
			out = append(out, e.Text)
		}
	}
	return out
}

func storedHub(t *testing.T, st chat.Store, cfg *chat.Config) *chat.Hub {
	t.Helper()
	if cfg == nil {
		cfg = &chat.Config{}
	}
	cfg.FloodRate = -1
	cfg.Store = st
	if cfg.UserExists == nil {
		cfg.UserExists = func(u string) bool { return u != "nobody" }
	}
	cfg.IsAdmin = func(u string) bool { return u == "admin" }
	h, err := chat.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func memStore(t *testing.T) *store.Store {
	s := store.OpenMemory(nil)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreOfflineDMQueuedThenDeliveredMarked(t *testing.T) {
	s := memStore(t)
	h := storedHub(t, chatstore.New(s), nil)
	defer h.Close()
	alice := login(t, h, "alice")
	got := alice.line("/msg bob see you at 5", "#general")
	if a := last(got); a.Type != chat.TypeAck || a.MID == 0 {
		t.Fatalf("a DM to an offline account: want an ack, got %s", dumpEvents(got))
	}
	notices := strings.Join(texts(got, chat.KindNotice), "\n")
	if !strings.Contains(notices, "bob is offline") || !strings.Contains(notices, "queued") {
		t.Errorf("the sender was not told the DM is queued: %s", dumpEvents(got))
	}
	if got := alice.line("/msg nobody hello", "#general"); last(got).Code != chat.CodeOffline {
		t.Errorf("a DM to no account: want offline, got %s", dumpEvents(got))
	}

	bob := login(t, h, "bob")
	dm := bob.wait(func(e *chat.Event) bool { return e.Kind == chat.KindDM })
	if dm.From != "alice" || dm.Text != "see you at 5" || !dm.Queued {
		t.Errorf("delivered DM = %+v, want from alice, marked queued", dm)
	}
	bob.quit()
	// Delivered once: the next login gets nothing.
	bob = login(t, h, "bob")
	got = bob.line("/history alice", "#general")
	if dms := texts(got, chat.KindDM); len(dms) != 1 || dms[0] != "see you at 5" {
		t.Errorf("DM history with alice = %q, want the one message", dms)
	}
	for _, e := range got {
		if e.Kind == chat.KindDM && !e.History {
			t.Errorf("the DM was delivered twice: %s", dumpEvents(got))
		}
	}
	bob.quit()
	alice.quit()
}

// Everything the hub stores comes back in a new hub on the same store, as
// after a restart.
func TestStoreStateSurvivesNewHub(t *testing.T) {
	s := memStore(t)
	h := storedHub(t, chatstore.New(s), &chat.Config{})
	admin := login(t, h, "admin")
	for _, line := range []string{"/ban bob 1h spam", "/mute carol 2h", "/motd be kind", "/join #rust", "/topic #rust ownership"} {
		if a := last(admin.line(line, "#general")); a.Type != chat.TypeAck {
			t.Fatalf("%s: %+v", line, a)
		}
	}
	if a := last(admin.do(&chat.Request{Type: chat.TypeMsg, Room: "#rust", Text: "first"})); a.Type != chat.TypeAck {
		t.Fatalf("msg: %+v", a)
	}
	dave := login(t, h, "dave")
	dave.quit()
	admin.quit()
	h.Close()

	h = storedHub(t, chatstore.New(s), &chat.Config{})
	defer h.Close()
	if !h.Banned("bob") {
		t.Error("the ban did not survive")
	}
	carol := login(t, h, "carol")
	if got := carol.line("hi", "#general"); last(got).Code != chat.CodeMuted {
		t.Errorf("the mute did not survive: %s", dumpEvents(got))
	}
	// Someone writes in #rust while admin is away.
	carol.line("/join #rust", "#general")
	carol.line("/unmute carol", "#general") // not an admin: refused
	writer := login(t, h, "erin", "#rust")
	writer.do(&chat.Request{Type: chat.TypeMsg, Room: "#rust", Text: "while you were out"})

	admin = login(t, h, "admin")
	got := admin.until(func(e *chat.Event) bool { return e.Kind == chat.KindNotice && strings.Contains(e.Text, "new message") })
	welcome := admin.welcome
	if welcome.MOTD != "be kind" {
		t.Errorf("welcome after restart = %+v, want the stored MOTD", welcome)
	}
	var rooms []string
	for _, r := range welcome.Rooms {
		rooms = append(rooms, r.Room)
	}
	if strings.Join(rooms, " ") != "#general #rust" {
		t.Errorf("rejoined rooms %q, want #general #rust", rooms)
	}
	var topic string
	for _, e := range got {
		if e.Type == chat.TypeRoom && e.Room == "#rust" {
			topic = e.Topic
		}
	}
	if topic != "ownership" {
		t.Errorf("topic of #rust after restart = %q", topic)
	}
	for _, e := range got {
		if e.Kind == chat.KindJoin && e.From == "admin" {
			t.Errorf("admin's session was sent its own join of %s, a rejoined room", e.Room)
		}
	}
	if h := texts(got, chat.KindMsg); len(h) == 0 || h[0] != "first" {
		t.Errorf("replayed history %q, want it to start with the stored message", h)
	}
	if n := last(got); !strings.Contains(n.Text, "1 new message(s) in #rust since") {
		t.Errorf("news notice = %q", n.Text)
	}
	// Dave was in #general only: no news of #rust for him, ever.
	dave = login(t, h, "dave", "#rust")
	got = dave.line("/who #rust", "")
	for _, e := range got {
		if e.Kind == chat.KindNotice && strings.Contains(e.Text, "new message") {
			t.Errorf("news for a room dave was never in: %q", e.Text)
		}
	}
	for _, c := range []*client{dave, admin, writer, carol} {
		c.quit()
	}
}

func TestStoreHistoryPaging(t *testing.T) {
	s := memStore(t)
	// A ring of 5: older pages come from the store.
	h := storedHub(t, chatstore.New(s), &chat.Config{HistorySize: 5, HistoryReplay: 5})
	defer h.Close()
	alice := login(t, h, "alice")
	var mids []uint64
	for i := range 30 {
		a := last(alice.do(&chat.Request{Type: chat.TypeMsg, Room: "#general", Text: fmt.Sprintf("m%d", i)}))
		mids = append(mids, a.MID)
	}
	got := alice.line("/history 12", "#general")
	page := texts(got, chat.KindMsg)
	want := []string{}
	for i := 18; i < 30; i++ {
		want = append(want, fmt.Sprintf("m%d", i))
	}
	if strings.Join(page, " ") != strings.Join(want, " ") {
		t.Fatalf("/history 12 = %q, want %q", page, want)
	}
	reply := got[len(got)-2]
	if reply.Type != chat.TypeReply || reply.Cmd != "history" || reply.MID != mids[18] {
		t.Fatalf("history reply = %+v, want mid %d", reply, mids[18])
	}
	got = alice.line(fmt.Sprintf("/history before %d 10", reply.MID), "#general")
	page = texts(got, chat.KindMsg)
	if len(page) != 10 || page[0] != "m8" || page[9] != "m17" {
		t.Errorf("next page = %q, want m8..m17", page)
	}
	got = alice.line(fmt.Sprintf("/history before %d", mids[0]), "#general")
	if page := texts(got, chat.KindMsg); len(page) != 0 || !strings.Contains(got[len(got)-2].Text, "no earlier") {
		t.Errorf("before the first message: %s", dumpEvents(got))
	}
	if got := alice.line("/history #elsewhere", "#general"); last(got).Code != chat.CodeNotMember {
		t.Errorf("history of a room alice is not in: %s", dumpEvents(got))
	}
	alice.quit()
}

func TestStoreSearchOnlyReadableRooms(t *testing.T) {
	s := memStore(t)
	h := storedHub(t, chatstore.New(s), nil)
	defer h.Close()
	alice := login(t, h, "alice", "#a")
	bob := login(t, h, "bob", "#b")
	alice.do(&chat.Request{Type: chat.TypeMsg, Room: "#a", Text: "ripe banana in a"})
	bob.do(&chat.Request{Type: chat.TypeMsg, Room: "#b", Text: "green banana in b"})
	got := alice.line("/search banana", "#a")
	var text string
	for _, e := range got {
		if e.Type == chat.TypeReply && e.Cmd == "search" {
			text += e.Text
		}
	}
	if !strings.Contains(text, "ripe banana") || strings.Contains(text, "green banana") {
		t.Errorf("alice's search = %q, want #a's message only", text)
	}
	if got := alice.line("/search banana #b", "#a"); last(got).Code != chat.CodeNotMember {
		t.Errorf("search of #b by a non-member: %s", dumpEvents(got))
	}
	alice.quit()
	bob.quit()
}

// failingStore fails every message it is given, as a full disk does.
type failingStore struct{ chatstore.Adapter }

func (f failingStore) Append(m chat.StoredMessage, done func(error)) error {
	go done(fmt.Errorf("%w: disk full", chat.ErrStoreFull))
	return nil
}

func TestStoreFailureDeliversAndTellsSender(t *testing.T) {
	s := memStore(t)
	h := storedHub(t, failingStore{chatstore.New(s)}, nil)
	defer h.Close()
	alice := login(t, h, "alice")
	bob := login(t, h, "bob")
	got := alice.do(&chat.Request{Type: chat.TypeMsg, Room: "#general", Text: "not kept"})
	e := last(got)
	if e.Type != chat.TypeError || e.Code != chat.CodeNotStored || e.MID == 0 || !strings.Contains(e.Text, "disk is full") {
		t.Errorf("sender's answer = %+v, want error not_stored naming the message", e)
	}
	if m := bob.wait(func(e *chat.Event) bool { return e.Kind == chat.KindMsg }); m.Text != "not kept" {
		t.Errorf("the room got %+v", m)
	}
	// The room goes on.
	if a := last(bob.do(&chat.Request{Type: chat.TypeCmd, Cmd: "who", Room: "#general"})); a.Type != chat.TypeAck {
		t.Errorf("who after a failed write: %+v", a)
	}
	if st := h.Stats(); st.NotStored == 0 {
		t.Errorf("NotStored = 0 after a failed write")
	}
	alice.quit()
	bob.quit()
}

// Acks keep request order even when a stored message waits for its commit
// and a later request is answered at once.
func TestStoreAcksInRequestOrder(t *testing.T) {
	s := memStore(t)
	slow := &slowStore{Adapter: chatstore.New(s), release: make(chan struct{})}
	h := storedHub(t, slow, nil)
	defer h.Close()
	alice := login(t, h, "alice")
	alice.send(&chat.Request{Type: chat.TypeMsg, ID: "m1", Room: "#general", Text: "one"})
	alice.send(&chat.Request{Type: chat.TypeCmd, ID: "w2", Cmd: "who", Room: "#general"})
	// The who reply may come, its ack may not, before m1's.
	time.Sleep(50 * time.Millisecond)
	close(slow.release)
	var order []string
	for len(order) < 2 {
		e := alice.wait(func(e *chat.Event) bool { return e.Type == chat.TypeAck })
		order = append(order, e.ID)
	}
	if order[0] != "m1" || order[1] != "w2" {
		t.Errorf("acks in order %q, want m1 w2", order)
	}
	alice.quit()
}

type slowStore struct {
	chatstore.Adapter
	release chan struct{}
}

func (s *slowStore) Append(m chat.StoredMessage, done func(error)) error {
	return s.Adapter.Append(m, func(err error) {
		go func() { <-s.release; done(err) }()
	})
}

// A user who logs in after a restart and reads a room's news is not told
// the same news at the next login.
func TestStoreNewsOnceAfterRestart(t *testing.T) {
	s := memStore(t)
	h := storedHub(t, chatstore.New(s), nil)
	alice := login(t, h, "alice")
	alice.quit()
	bob := login(t, h, "bob")
	bob.do(&chat.Request{Type: chat.TypeMsg, Room: "#general", Text: "news for alice"})
	bob.quit()
	h.Close()

	h = storedHub(t, chatstore.New(s), nil)
	defer h.Close()
	alice = login(t, h, "alice")
	alice.until(func(e *chat.Event) bool {
		return e.Kind == chat.KindNotice && strings.Contains(e.Text, "1 new message")
	})
	alice.quit()
	alice = login(t, h, "alice")
	got := alice.do(&chat.Request{Type: chat.TypeCmd, Cmd: "who", Room: "#general"})
	for _, e := range got {
		if e.Kind == chat.KindNotice && strings.Contains(e.Text, "new message") {
			t.Errorf("the same news again at the next login: %q", e.Text)
		}
	}
	alice.quit()
}

// /quit right after a message: the message's ack (which waits for the
// store) and the quit's ack both arrive before the session ends.
func TestStoreQuitWaitsForAcks(t *testing.T) {
	s := memStore(t)
	slow := &slowStore{Adapter: chatstore.New(s), release: make(chan struct{})}
	h := storedHub(t, slow, nil)
	defer h.Close()
	alice := login(t, h, "alice")
	alice.send(&chat.Request{Type: chat.TypeMsg, ID: "m1", Room: "#general", Text: "last words"})
	alice.send(&chat.Request{Type: chat.TypeCmd, ID: "q", Cmd: "quit"})
	close(slow.release)
	var acks []string
	for len(acks) < 2 {
		acks = append(acks, alice.wait(func(e *chat.Event) bool { return e.Type == chat.TypeAck }).ID)
	}
	if acks[0] != "m1" || acks[1] != "q" {
		t.Errorf("acks %q, want m1 then q", acks)
	}
	select {
	case err := <-alice.done:
		if err != nil {
			t.Errorf("Serve after /quit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end after /quit")
	}
}
