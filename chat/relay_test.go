package chat_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"securechat/chat"
	"securechat/chatstore"
	"securechat/store"
)

// fakeLog is a Relay whose log the test drives: Publish waits until the
// test stores or refuses the message, and the test decides when the
// stored message comes back to the hub.
type fakeLog struct {
	mu        sync.Mutex
	published chan chat.StoredMessage
	done      []func(uint64, error)
	seq       uint64
	through   uint64 // what DeliveredThrough answers
}

func newFakeLog() *fakeLog { return &fakeLog{published: make(chan chat.StoredMessage, 16)} }

func (f *fakeLog) Publish(m chat.StoredMessage, done func(uint64, error)) {
	f.mu.Lock()
	f.done = append(f.done, done)
	f.mu.Unlock()
	f.published <- m
}

// answer stores (err nil) or refuses the oldest message not answered yet
// and returns its sequence. (A relay answers on a goroutine of its own;
// done only posts to the hub, so calling it here is the same, and lets
// the test order what the hub sees.)
func (f *fakeLog) answer(err error) uint64 {
	f.mu.Lock()
	done := f.done[0]
	f.done = f.done[1:]
	var seq uint64
	if err == nil {
		f.seq++
		seq = f.seq
	}
	f.mu.Unlock()
	done(seq, err)
	return seq
}

func (f *fakeLog) SetState(c chat.StateChange, done func(error)) { go done(nil) }
func (f *fakeLog) Banned(string) (chat.StoredRestriction, bool, error) {
	return chat.StoredRestriction{}, false, nil
}
func (f *fakeLog) SavedRooms(string) ([]string, bool, error)  { return nil, false, nil }
func (f *fakeLog) LastRead(string) (map[string]uint64, error) { return nil, nil }
func (f *fakeLog) DeliveredThrough(string) (uint64, error)    { return f.through, nil }
func (f *fakeLog) Kick(_, _, _ string, done func(int, error)) { go done(0, nil) }
func (f *fakeLog) Arrived(string)                             {}
func (f *fakeLog) SetAway(string, string)                     {}
func (f *fakeLog) Away(string) string                         { return "" }
func (f *fakeLog) Left(string, string)                        {}
func (f *fakeLog) Joined(string, string)                      {}
func (f *fakeLog) Parted(string, string, string)              {}
func (f *fakeLog) Where(string) []string                      { return nil }
func (f *fakeLog) Rooms(string) []string                      { return nil }
func (f *fakeLog) Members(string) []string                    { return nil }
func (f *fakeLog) take(t *testing.T) chat.StoredMessage {
	t.Helper()
	select {
	case m := <-f.published:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("nothing published")
		return chat.StoredMessage{}
	}
}

// With a relay, a message is delivered to nobody, its sender included,
// until the log gives it back, and acked after that, with the mid the
// log's sequence makes.
func TestRelayAcksAfterTheLogStoredAndGaveBack(t *testing.T) {
	log := newFakeLog()
	h := storedHub(t, chatstore.New(memStore(t)), &chat.Config{Relay: log})
	defer h.Close()
	alice := login(t, h, "alice", "#go")
	bob := login(t, h, "bob", "#go")

	alice.send(&chat.Request{Type: chat.TypeMsg, ID: "m1", Room: "#go", Text: "hello"})
	m := log.take(t)
	if m.Kind != chat.KindMsg || m.Room != "#go" || m.From != "alice" || m.Text != "hello" {
		t.Fatalf("published %+v", m)
	}
	// Stored in the log and handled by the hub before the log gives it
	// back: the ack must still come after the message.
	seq := log.answer(nil)
	h.Flush()
	m.ID = seq
	h.ApplyLogged(m)
	got := alice.until(func(e *chat.Event) bool { return e.ID == "m1" })
	msg, ack := got[len(got)-2], got[len(got)-1]
	if msg.Text != "hello" || msg.MID != chat.LogID(seq) || ack.Type != chat.TypeAck || ack.MID != msg.MID {
		t.Errorf("alice got %s, want her message then its ack, mid %d", dumpEvents(got), chat.LogID(seq))
	}
	if e := bob.wait(isText("hello")); e.MID != chat.LogID(seq) {
		t.Errorf("bob got mid %d, want %d", e.MID, chat.LogID(seq))
	}
}

// A message the log refuses reaches nobody, and its sender gets
// not_stored without a mid (PROTOCOL.md §13.5).
func TestRelayRefusedMessageIsNotStoredWithoutMID(t *testing.T) {
	log := newFakeLog()
	h := storedHub(t, chatstore.New(memStore(t)), &chat.Config{Relay: log})
	defer h.Close()
	alice := login(t, h, "alice", "#go")
	alice.send(&chat.Request{Type: chat.TypeMsg, ID: "m1", Room: "#go", Text: "lost"})
	log.take(t)
	log.answer(errors.New("no quorum"))
	got := alice.until(func(e *chat.Event) bool { return e.ID == "m1" })
	e := got[len(got)-1]
	if e.Type != chat.TypeError || e.Code != chat.CodeNotStored || e.MID != 0 {
		t.Errorf("answer %+v, want not_stored without mid", e)
	}
	for _, x := range got {
		if x.Text == "lost" {
			t.Errorf("the refused message was delivered: %+v", x)
		}
	}
}

// TestPendingPageDeliveredElsewhere: a login on a server whose store has
// not yet applied another server's delivered mark reads a first page of
// queued direct messages that were all delivered already. The ones queued
// after the mark still arrive at this login, once each.
func TestPendingPageDeliveredElsewhere(t *testing.T) {
	s := memStore(t)
	const queued, deliveredElsewhere = 600, 550
	for i := range queued {
		m := store.Message{ID: uint64(i + 1), Time: time.Now(), Kind: store.KindDM, From: "alice", To: "bob",
			Text: fmt.Sprint("dm ", i+1), Queued: true}
		if err := s.Append(m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	relay := newFakeLog()
	relay.through = deliveredElsewhere
	h := storedHub(t, chatstore.New(s), &chat.Config{Relay: relay})
	defer h.Close()

	bob := login(t, h, "bob")
	var dms []string
	bob.wait(func(e *chat.Event) bool {
		if e.Kind == chat.KindDM {
			dms = append(dms, e.Text)
		}
		return e.Text == fmt.Sprint("dm ", queued)
	})
	if len(dms) != queued-deliveredElsewhere || dms[0] != fmt.Sprint("dm ", deliveredElsewhere+1) {
		t.Errorf("bob got %d direct messages, from %q; want the %d after the mark, from \"dm %d\"",
			len(dms), dms[0], queued-deliveredElsewhere, deliveredElsewhere+1)
	}
	bob.quit()
}
