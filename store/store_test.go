package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Every test in this file runs over both stores: the one behaviour, two
// implementations (as wireguard-go runs its tests over real and fake binds).
func forEachStore(t *testing.T, opts *Options, f func(t *testing.T, s *Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		s, err := Open(filepath.Join(t.TempDir(), "chat.db"), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		f(t, s)
	})
	t.Run("memory", func(t *testing.T) {
		s := OpenMemory(opts)
		t.Cleanup(func() { s.Close() })
		f(t, s)
	})
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 123_000_000, time.UTC)

// appendAll appends ms and waits for every callback, failing the test on
// any error.
func appendAll(t *testing.T, s *Store, ms ...Message) {
	t.Helper()
	for _, err := range appendErrs(t, s, ms...) {
		if err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

// appendErrs appends ms and returns each callback's error.
func appendErrs(t *testing.T, s *Store, ms ...Message) []error {
	t.Helper()
	errs := make([]error, len(ms))
	done := make(chan struct{}, len(ms))
	for i, m := range ms {
		if err := s.Append(m, func(err error) { errs[i] = err; done <- struct{}{} }); err != nil {
			t.Fatalf("Append(%d): %v", m.ID, err)
		}
	}
	for range ms {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("append callback never came")
		}
	}
	return errs
}

func roomMsg(id uint64, room, from, text string) Message {
	return Message{ID: id, Time: t0.Add(time.Duration(id) * time.Second), Kind: KindMsg, Room: room, From: from, Text: text}
}

func dm(id uint64, from, to, text string, queued bool) Message {
	return Message{ID: id, Time: t0.Add(time.Duration(id) * time.Second), Kind: KindDM, From: from, To: to, Text: text, Queued: queued}
}

func ids(ms []Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func mustSync(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestHistory(t *testing.T) {
	forEachStore(t, nil, func(t *testing.T, s *Store) {
		var ms []Message
		for i := uint64(1); i <= 20; i++ {
			room := "#a"
			if i%2 == 0 {
				room = "#b"
			}
			ms = append(ms, roomMsg(i, room, "alice", fmt.Sprint("text ", i)))
		}
		ms = append(ms, Message{ID: 21, Time: t0.Add(time.Nanosecond * 999_999), Kind: KindTopic, Room: "#a", From: "bob", Text: "new topic"})
		appendAll(t, s, ms...)

		got, err := s.History("#a", 0, 3)
		if err != nil {
			t.Fatal(err)
		}
		if want := []uint64{17, 19, 21}; !slices.Equal(ids(got), want) {
			t.Fatalf("History(#a, newest 3) = %v, want %v (oldest first)", ids(got), want)
		}
		if got[2].Kind != KindTopic || got[2].From != "bob" || got[2].Text != "new topic" || got[2].Room != "#a" {
			t.Errorf("topic event read back as %+v", got[2])
		}
		// Stored to the millisecond, in UTC.
		if want := t0.Truncate(time.Millisecond); !got[2].Time.Equal(want) || got[2].Time.Location() != time.UTC {
			t.Errorf("time read back as %v, want %v", got[2].Time, want)
		}
		if m := got[0]; m.Time != t0.Add(17*time.Second) || m.Text != "text 17" || m.Kind != KindMsg || m.Queued || m.To != "" {
			t.Errorf("message read back as %+v", m)
		}

		got, _ = s.History("#a", 17, 4)
		if want := []uint64{9, 11, 13, 15}; !slices.Equal(ids(got), want) {
			t.Errorf("History(#a, before 17, 4) = %v, want %v", ids(got), want)
		}
		got, _ = s.History("#b", 3, 50)
		if want := []uint64{2}; !slices.Equal(ids(got), want) {
			t.Errorf("History(#b, before 3) = %v, want %v", ids(got), want)
		}
		if got, _ := s.History("#none", 0, 50); len(got) != 0 {
			t.Errorf("History of an unknown room = %v", ids(got))
		}
		if got, _ := s.History("#a", 0, 0); len(got) != 0 {
			t.Errorf("History with n=0 = %v", ids(got))
		}
	})
}

func TestDMHistory(t *testing.T) {
	forEachStore(t, nil, func(t *testing.T, s *Store) {
		appendAll(t, s,
			dm(1, "alice", "bob", "hi bob", false),
			dm(2, "bob", "alice", "hi alice", false),
			dm(3, "alice", "carol", "hi carol", false),
			roomMsg(4, "#general", "alice", "hi all"),
			dm(5, "bob", "alice", "you there?", true),
		)
		for _, pair := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
			got, err := s.DMHistory(pair[0], pair[1], 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if want := []uint64{1, 2, 5}; !slices.Equal(ids(got), want) {
				t.Fatalf("DMHistory(%s, %s) = %v, want %v", pair[0], pair[1], ids(got), want)
			}
			if m := got[2]; m.Kind != KindDM || m.From != "bob" || m.To != "alice" || m.Room != "" || !m.Queued {
				t.Errorf("queued DM read back as %+v", m)
			}
		}
		got, _ := s.DMHistory("alice", "bob", 5, 1)
		if want := []uint64{2}; !slices.Equal(ids(got), want) {
			t.Errorf("DMHistory(before 5, 1) = %v, want %v", ids(got), want)
		}
		// A direct message is in no room's history.
		if got, _ := s.History("", 0, 10); len(got) != 0 {
			t.Errorf("History(\"\") = %v", ids(got))
		}
	})
}

func TestIDsIncrease(t *testing.T) {
	forEachStore(t, nil, func(t *testing.T, s *Store) {
		errs := appendErrs(t, s, roomMsg(5, "#a", "x", "five"), roomMsg(5, "#a", "x", "again"), roomMsg(3, "#b", "x", "three"), roomMsg(6, "#a", "x", "six"))
		if errs[0] != nil || errs[3] != nil {
			t.Fatalf("good appends failed: %v", errs)
		}
		for _, i := range []int{1, 2} {
			if !errors.Is(errs[i], ErrIDOrder) {
				t.Errorf("append %d: error %v, want ErrIDOrder", i, errs[i])
			}
		}
		got, _ := s.History("#a", 0, 10)
		if want := []uint64{5, 6}; !slices.Equal(ids(got), want) || got[0].Text != "five" {
			t.Errorf("history = %+v, want ids %v and the first text kept", got, want)
		}
		if got, _ := s.History("#b", 0, 10); len(got) != 0 {
			t.Errorf("a refused message was stored: %+v", got)
		}
		if id := s.LastID(); id != 6 {
			t.Errorf("LastID = %d, want 6", id)
		}
		if st := s.Stats(); st.Committed != 2 || st.Failed != 2 || st.Batches == 0 || st.Backlog != 0 {
			t.Errorf("Stats = %+v, want 2 committed, 2 failed", st)
		}
		if err := s.SetLastID(40); err != nil {
			t.Fatal(err)
		}
		if err := s.SetLastID(30); err != nil { // lower: no effect
			t.Fatal(err)
		}
		mustSync(t, s)
		if id := s.LastID(); id != 40 {
			t.Errorf("LastID after SetLastID(40) = %d", id)
		}
		if errs := appendErrs(t, s, roomMsg(40, "#a", "x", "reused")); !errors.Is(errs[0], ErrIDOrder) {
			t.Errorf("append of an id given to SetLastID: %v, want ErrIDOrder", errs[0])
		}
	})
}

func TestOfflineQueue(t *testing.T) {
	forEachStore(t, nil, func(t *testing.T, s *Store) {
		appendAll(t, s,
			dm(1, "alice", "bob", "one", true),
			dm(2, "carol", "bob", "two", true),
			dm(3, "alice", "bob", "seen live", false),
			dm(4, "bob", "alice", "for alice", true),
		)
		got, err := s.Pending("bob", 100)
		if err != nil {
			t.Fatal(err)
		}
		if want := []uint64{1, 2}; !slices.Equal(ids(got), want) {
			t.Fatalf("Pending(bob) = %v, want %v", ids(got), want)
		}
		if got[1].From != "carol" || got[1].Text != "two" || !got[1].Queued {
			t.Errorf("pending message read back as %+v", got[1])
		}
		if got, _ := s.Pending("bob", 1); !slices.Equal(ids(got), []uint64{1}) {
			t.Errorf("Pending(bob, 1) = %v, want the oldest [1]", ids(got))
		}
		if got, _ := s.Pending("bob", 0); len(got) != 0 {
			t.Errorf("Pending(bob, 0) = %v", ids(got))
		}
		// Another DM arrives between reading the queue and delivering it:
		// Delivered(through 2) must leave it queued.
		appendAll(t, s, dm(5, "carol", "bob", "late", true))
		if err := s.Delivered("bob", 2); err != nil {
			t.Fatal(err)
		}
		mustSync(t, s)
		if got, _ := s.Pending("bob", 100); !slices.Equal(ids(got), []uint64{5}) {
			t.Errorf("Pending(bob) after Delivered(2) = %v, want [5]", ids(got))
		}
		if got, _ := s.Pending("alice", 100); !slices.Equal(ids(got), []uint64{4}) {
			t.Errorf("Pending(alice) = %v, want [4]", ids(got))
		}
		// Delivered messages stay in the conversation, still marked.
		got, _ = s.DMHistory("bob", "carol", 0, 10)
		if len(got) != 2 || !got[0].Queued {
			t.Errorf("DMHistory(bob, carol) = %+v", got)
		}
		if got, _ := s.Pending("nobody", 100); len(got) != 0 {
			t.Errorf("Pending(nobody) = %v", ids(got))
		}
	})
}

func TestState(t *testing.T) {
	forEachStore(t, nil, func(t *testing.T, s *Store) {
		st, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		if st.LastID != 0 || st.MOTD != "" || len(st.Rooms)+len(st.Bans)+len(st.Mutes) != 0 {
			t.Fatalf("a new store loads %+v", st)
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		check := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		check(s.SetMOTD("welcome\nline two"))
		check(s.AddRoom("#general"))
		check(s.SetTopic("#rust", "crabs"))
		check(s.AddRoom("#rust")) // keeps the topic
		check(s.AddRoom("#gone"))
		check(s.RemoveRoom("#gone"))
		check(s.SetTopic("#go", "gophers"))
		check(s.SetTopic("#go", ""))
		check(s.Ban(Restriction{User: "mallory", By: "root", Reason: "spam"}))
		check(s.Ban(Restriction{User: "eve", Until: now.Add(time.Hour), By: "root"}))
		check(s.Ban(Restriction{User: "old", Until: now.Add(-time.Second), By: "root"}))
		check(s.Ban(Restriction{User: "lifted", By: "root"}))
		check(s.Unban("lifted"))
		check(s.Mute(Restriction{User: "eve", Until: now.Add(2 * time.Hour), By: "admin"}))
		check(s.Mute(Restriction{User: "eve", Until: now.Add(3 * time.Hour), By: "admin2"})) // replaces
		check(s.Mute(Restriction{User: "trent", By: "admin"}))
		check(s.Unmute("trent"))
		appendAll(t, s, roomMsg(7, "#general", "a", "x"))

		st, err = s.Load()
		check(err)
		if st.MOTD != "welcome\nline two" {
			t.Errorf("MOTD = %q", st.MOTD)
		}
		if want := []Room{{"#general", ""}, {"#go", ""}, {"#rust", "crabs"}}; !slices.Equal(st.Rooms, want) {
			t.Errorf("Rooms = %v, want %v", st.Rooms, want)
		}
		wantBans := []Restriction{{User: "eve", Until: now.Add(time.Hour), By: "root"}, {User: "mallory", By: "root", Reason: "spam"}}
		if !slices.EqualFunc(st.Bans, wantBans, sameRestriction) {
			t.Errorf("Bans = %+v, want %+v", st.Bans, wantBans)
		}
		wantMutes := []Restriction{{User: "eve", Until: now.Add(3 * time.Hour), By: "admin2"}}
		if !slices.EqualFunc(st.Mutes, wantMutes, sameRestriction) {
			t.Errorf("Mutes = %+v, want %+v", st.Mutes, wantMutes)
		}
		if st.LastID != 7 {
			t.Errorf("LastID = %d, want 7", st.LastID)
		}
	})
}

func sameRestriction(a, b Restriction) bool {
	return a.User == b.User && a.Until.Equal(b.Until) && a.By == b.By && a.Reason == b.Reason
}

func TestMembershipAndLastRead(t *testing.T) {
	forEachStore(t, nil, func(t *testing.T, s *Store) {
		for _, r := range []string{"#b", "#a", "#c"} {
			if err := s.Join("alice", r); err != nil {
				t.Fatal(err)
			}
		}
		s.Join("alice", "#a") // twice: no error, no duplicate
		s.Part("alice", "#c")
		s.Join("bob", "#a")
		s.SetLastRead("alice", "#a", 3)
		s.SetLastRead("alice", "#a", 2) // lower: ignored
		s.SetLastRead("alice", "#b", 1)
		appendAll(t, s, roomMsg(1, "#a", "bob", "1"), roomMsg(2, "#a", "bob", "2"), roomMsg(3, "#a", "bob", "3"),
			roomMsg(4, "#b", "bob", "4"), roomMsg(5, "#a", "bob", "5"), roomMsg(6, "#a", "bob", "6"))

		rooms, err := s.Rooms("alice")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"#a", "#b"}; !slices.Equal(rooms, want) {
			t.Errorf("Rooms(alice) = %v, want %v", rooms, want)
		}
		if rooms, _ := s.Rooms("carol"); len(rooms) != 0 {
			t.Errorf("Rooms(carol) = %v", rooms)
		}
		lr, err := s.LastRead("alice")
		if err != nil {
			t.Fatal(err)
		}
		if len(lr) != 2 || lr["#a"] != 3 || lr["#b"] != 1 {
			t.Errorf("LastRead(alice) = %v, want #a:3 #b:1", lr)
		}
		if _, ok := lr["#c"]; ok {
			t.Error("LastRead has a room alice never read")
		}
		if lr, _ := s.LastRead("bob"); len(lr) != 0 {
			t.Errorf("LastRead(bob) = %v, want none", lr)
		}
		if n, err := s.CountAfter("#a", lr["#a"]); err != nil || n != 2 {
			t.Errorf("CountAfter(#a, 3) = %d, %v; want 2", n, err)
		}
		if n, _ := s.CountAfter("#b", 0); n != 1 {
			t.Errorf("CountAfter(#b, 0) = %d, want 1", n)
		}
	})
}

func TestSearch(t *testing.T) {
	forEachStore(t, nil, func(t *testing.T, s *Store) {
		appendAll(t, s,
			roomMsg(1, "#go", "alice", "The build is broken again"),
			roomMsg(2, "#go", "bob", "who broke the BUILD?"),
			roomMsg(3, "#rust", "carol", "build fixed, broken no more"),
			dm(4, "alice", "bob", "secret build broken", false),
			roomMsg(5, "#secret", "dave", "build broken here too"),
			roomMsg(6, "#go", "alice", "rebuild: broken-ish"),
			roomMsg(7, "#go", "alice", `AND OR NOT "quoted" NEAR(build broken) col:x*`),
		)
		search := func(text string, rooms []string, before uint64, n int) []uint64 {
			t.Helper()
			got, err := s.Search(text, rooms, before, n)
			if err != nil {
				t.Fatalf("Search(%q): %v", text, err)
			}
			return ids(got)
		}
		readable := []string{"#go", "#rust"}
		for _, c := range []struct {
			text   string
			before uint64
			n      int
			want   []uint64
		}{
			{"build broken", 0, 10, []uint64{7, 3, 1}}, // every word, whole words, newest first
			{"BUILD", 0, 10, []uint64{7, 3, 2, 1}},
			{"build", 0, 2, []uint64{7, 3}},
			{"build", 3, 10, []uint64{2, 1}},
			{"broken-ish", 0, 10, []uint64{6}},
			{"secret", 0, 10, nil},                   // DMs and other rooms are not searched
			{`"quoted" AND (x)`, 0, 10, []uint64{7}}, // operators are words
			{`NEAR( col:x*`, 0, 10, []uint64{7}},
			{"  ", 0, 10, nil},
			{"missing", 0, 10, nil},
		} {
			if got := search(c.text, readable, c.before, c.n); !slices.Equal(got, c.want) {
				t.Errorf("Search(%q, before %d, %d) = %v, want %v", c.text, c.before, c.n, got, c.want)
			}
		}
		if got := search("build", []string{"#secret"}, 0, 10); !slices.Equal(got, []uint64{5}) {
			t.Errorf("Search in #secret = %v, want [5]", got)
		}
		if got := search("build", nil, 0, 10); len(got) != 0 {
			t.Errorf("Search over no rooms = %v", got)
		}
	})
}

func TestDeleteUser(t *testing.T) {
	forEachStore(t, nil, func(t *testing.T, s *Store) {
		appendAll(t, s,
			dm(1, "alice", "bob", "a to b", false),
			dm(2, "bob", "alice", "b to a", true),
			dm(3, "alice", "carol", "a to c", true),
			dm(4, "bob", "carol", "b to c", true),
			roomMsg(5, "#general", "alice", "public"),
		)
		s.Join("alice", "#general")
		s.SetLastRead("alice", "#general", 5)
		s.Ban(Restriction{User: "alice", By: "root"})
		if err := s.DeleteUser("alice"); err != nil {
			t.Fatal(err)
		}
		mustSync(t, s)
		for _, pair := range [][2]string{{"alice", "bob"}, {"carol", "alice"}} {
			if got, _ := s.DMHistory(pair[0], pair[1], 0, 10); len(got) != 0 {
				t.Errorf("DMHistory(%s, %s) after DeleteUser(alice) = %v", pair[0], pair[1], ids(got))
			}
		}
		if got, _ := s.Pending("alice", 100); len(got) != 0 {
			t.Errorf("alice's queue survived: %v", ids(got))
		}
		if got, _ := s.Pending("carol", 100); !slices.Equal(ids(got), []uint64{4}) {
			t.Errorf("Pending(carol) = %v, want only bob's [4]", ids(got))
		}
		if got, _ := s.DMHistory("bob", "carol", 0, 10); !slices.Equal(ids(got), []uint64{4}) {
			t.Errorf("an unrelated conversation changed: %v", ids(got))
		}
		if got, _ := s.History("#general", 0, 10); !slices.Equal(ids(got), []uint64{5}) {
			t.Errorf("room history = %v, want alice's room message kept", ids(got))
		}
		if r, _ := s.Rooms("alice"); len(r) != 0 {
			t.Errorf("Rooms(alice) = %v", r)
		}
		if lr, _ := s.LastRead("alice"); len(lr) != 0 {
			t.Errorf("LastRead(alice) = %v", lr)
		}
		if st, _ := s.Load(); len(st.Bans) != 1 {
			t.Errorf("the ban on the name went with the account: %+v", st.Bans)
		}
	})
}

func TestRetention(t *testing.T) {
	opts := &Options{Retention: 24 * time.Hour, MaxPerRoom: 3, PruneEvery: time.Hour}
	forEachStore(t, opts, func(t *testing.T, s *Store) {
		now := t0.Add(100 * 24 * time.Hour)
		old := now.Add(-48 * time.Hour)
		// Ids follow time, as the server gives them: 1-6 are old, 7-13 young.
		var ms []Message
		for i := uint64(1); i <= 4; i++ {
			m := roomMsg(i, "#a", "x", "m")
			m.Time = old
			ms = append(ms, m)
		}
		oldDM := dm(5, "x", "y", "read long ago", false)
		oldDM.Time = old
		oldQueued := dm(6, "x", "z", "never picked up", true)
		oldQueued.Time = old
		ms = append(ms, oldDM, oldQueued)
		for i := uint64(7); i <= 12; i++ {
			m := roomMsg(i, "#a", "x", "m")
			m.Time = now.Add(-time.Duration(13-i) * time.Minute)
			ms = append(ms, m)
		}
		young := roomMsg(13, "#b", "x", "young")
		young.Time = now
		ms = append(ms, young)
		appendAll(t, s, ms...)
		s.Ban(Restriction{User: "gone", Until: now.Add(-time.Minute)})
		s.Ban(Restriction{User: "stays", Until: now.Add(time.Minute)})

		n, err := s.Prune(now)
		if err != nil {
			t.Fatal(err)
		}
		// 4 old and 3 over the limit in #a, and the old DM.
		if n != 8 {
			t.Errorf("Prune deleted %d messages, want 8", n)
		}
		if got, _ := s.History("#a", 0, 50); !slices.Equal(ids(got), []uint64{10, 11, 12}) {
			t.Errorf("#a after pruning = %v, want [10 11 12]", ids(got))
		}
		if got, _ := s.History("#b", 0, 50); !slices.Equal(ids(got), []uint64{13}) {
			t.Errorf("#b after pruning = %v", ids(got))
		}
		if got, _ := s.DMHistory("x", "y", 0, 50); len(got) != 0 {
			t.Errorf("an old DM survived: %v", ids(got))
		}
		if got, _ := s.Pending("z", 100); !slices.Equal(ids(got), []uint64{6}) {
			t.Errorf("a queued DM was pruned before delivery: %v", ids(got))
		}
		if got, _ := s.Search("m", []string{"#a"}, 0, 50); !slices.Equal(ids(got), []uint64{12, 11, 10}) {
			t.Errorf("search after pruning = %v", ids(got))
		}
		// "gone" expired before the prune time and was deleted; Load
		// would also hide it, so look for the one that must stay.
		if st, _ := s.Load(); len(st.Bans) != 1 || st.Bans[0].User != "stays" {
			t.Errorf("bans after pruning = %+v, want only stays", st.Bans)
		}
		if n, _ := s.Prune(now); n != 0 {
			t.Errorf("a second Prune deleted %d", n)
		}
		// Pruning never lowers the id to continue from.
		if id := s.LastID(); id != 13 {
			t.Errorf("LastID = %d, want 13", id)
		}
	})
}

func TestClosed(t *testing.T) {
	forEachStore(t, nil, func(t *testing.T, s *Store) {
		called := make(chan error, 1)
		if err := s.Append(roomMsg(1, "#a", "x", "y"), func(err error) { called <- err }); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// Close commits what was queued first.
		select {
		case err := <-called:
			if err != nil {
				t.Errorf("queued append failed at Close: %v", err)
			}
		default:
			t.Error("Close returned before the queued append's callback")
		}
		if err := s.Append(roomMsg(2, "#a", "x", "y"), func(error) { t.Error("callback after Close") }); !errors.Is(err, ErrClosed) {
			t.Errorf("Append after Close: %v, want ErrClosed", err)
		}
		for name, err := range map[string]error{"SetMOTD": s.SetMOTD("x"), "Sync": s.Sync(), "Join": s.Join("a", "#b")} {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close: %v, want ErrClosed", name, err)
			}
		}
		if _, err := s.Prune(time.Now()); !errors.Is(err, ErrClosed) {
			t.Errorf("Prune after Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestBacklog(t *testing.T) {
	forEachStore(t, &Options{Backlog: 1}, func(t *testing.T, s *Store) {
		entered, release := make(chan struct{}), make(chan struct{})
		if err := s.Append(roomMsg(1, "#a", "x", "1"), func(error) { close(entered); <-release }); err != nil {
			t.Fatal(err)
		}
		<-entered // the writer is busy in our callback; the queue is empty
		second := make(chan error, 1)
		if err := s.Append(roomMsg(2, "#a", "x", "2"), func(err error) { second <- err }); err != nil {
			t.Fatalf("second Append: %v", err)
		}
		if err := s.Append(roomMsg(3, "#a", "x", "3"), func(error) { t.Error("refused append called back") }); !errors.Is(err, ErrBacklog) {
			t.Errorf("Append beyond the backlog: %v, want ErrBacklog", err)
		}
		close(release)
		if err := <-second; err != nil {
			t.Errorf("the queued append failed: %v", err)
		}
		if got, _ := s.History("#a", 0, 10); !slices.Equal(ids(got), []uint64{1, 2}) {
			t.Errorf("history = %v, want [1 2]", ids(got))
		}
	})
}

// Readers run beside the writer: each sees a consistent history that
// holds at least every message acknowledged before the read began.
func TestReadsDuringWrites(t *testing.T) {
	forEachStore(t, nil, func(t *testing.T, s *Store) {
		const total = 300
		var acked atomic.Uint64
		allDone := make(chan struct{})
		go func() {
			for id := uint64(1); id <= total; id++ {
				err := s.Append(roomMsg(id, "#a", "w", "word"), func(err error) {
					if err != nil {
						t.Errorf("append %d: %v", id, err)
					}
					acked.Store(id)
					if id == total {
						close(allDone)
					}
				})
				if err != nil { // the default backlog holds all of them
					t.Errorf("Append %d: %v", id, err)
					return
				}
			}
		}()
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for i := 0; i < 2000; i++ {
					floor := acked.Load()
					got, err := s.History("#a", 0, 50)
					if err != nil {
						t.Error(err)
						return
					}
					if floor > 0 && (len(got) == 0 || got[len(got)-1].ID < floor) {
						t.Errorf("History after %d was acknowledged ends at %v", floor, ids(got))
						return
					}
					for j := 1; j < len(got); j++ {
						if got[j].ID != got[j-1].ID+1 {
							t.Errorf("History has a gap: %v", ids(got))
							return
						}
					}
					if floor == total {
						return
					}
				}
			})
		}
		wg.Wait()
		select {
		case <-allDone:
		case <-time.After(30 * time.Second):
			t.Fatal("the appends never finished")
		}
		if got, _ := s.Search("word", []string{"#a"}, 0, 1000); len(got) != total {
			t.Errorf("Search found %d of %d", len(got), total)
		}
	})
}
