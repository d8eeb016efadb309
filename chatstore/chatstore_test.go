package chatstore

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"securechat/chat"
	"securechat/store"
)

// A full disk and a stalled writer reach the chat service as
// chat.ErrStoreFull, which it tells senders as such; other errors do not.
func TestWrapMarksFullDisk(t *testing.T) {
	for _, err := range []error{store.ErrDiskFull, store.ErrBacklog} {
		if w := wrap(err); !errors.Is(w, chat.ErrStoreFull) || !errors.Is(w, err) {
			t.Errorf("wrap(%v) = %v: want both chat.ErrStoreFull and the original", err, w)
		}
	}
	if w := wrap(store.ErrIDOrder); errors.Is(w, chat.ErrStoreFull) {
		t.Errorf("wrap(ErrIDOrder) = %v: not a full disk", w)
	}
	if wrap(nil) != nil {
		t.Error("wrap(nil) is not nil")
	}
}

// What goes in through the adapter comes back out of it, on SQLite.
func TestRoundTrip(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "chat.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := New(st)
	now := time.Now().UTC().Truncate(time.Millisecond)
	done := make(chan error, 1)
	m := chat.StoredMessage{ID: 7, Time: now, Kind: chat.KindDM, From: "alice", To: "bob", Text: "hi", Queued: true}
	if err := a.Append(m, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	until := now.Add(time.Hour)
	a.Ban(chat.StoredRestriction{User: "eve", Until: until, By: "carol", Reason: "spam"})
	a.SetMOTD("hello")
	a.SetTopic("#rust", "ownership")
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := a.Pending("bob", 10)
	if err != nil || len(got) != 1 || got[0] != m {
		t.Errorf("Pending = %+v, %v; want %+v", got, err, m)
	}
	stt, err := a.Load()
	if err != nil {
		t.Fatal(err)
	}
	if stt.LastID != 7 || stt.MOTD != "hello" || len(stt.Rooms) != 1 || stt.Rooms[0] != (chat.StoredRoom{Name: "#rust", Topic: "ownership"}) ||
		len(stt.Bans) != 1 || stt.Bans[0] != (chat.StoredRestriction{User: "eve", Until: until, By: "carol", Reason: "spam"}) {
		t.Errorf("Load = %+v", stt)
	}
}
