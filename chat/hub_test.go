package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var noFlood = &Config{FloodRate: -1}

func TestLoginWelcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, &Config{MOTD: "welcome\n\x1b[31mbe nice\x1b[0m"})
		alice := hs.connect("Alice", false)
		alice.send(&Request{Type: TypeHello, ID: "h1", V: 1, Client: "test/1"})
		synctest.Wait()
		evs := alice.take()
		if len(evs) != 3 {
			t.Fatalf("want welcome, room, join; got %s", dump(evs))
		}
		w := evs[0]
		if w.Type != TypeWelcome || w.ID != "h1" || w.V != 1 || w.User != "alice" || w.Admin {
			t.Fatalf("bad welcome %+v", w)
		}
		if w.MOTD != "welcome\nbe nice" {
			t.Errorf("motd not sanitised (multi-line kept): %q", w.MOTD)
		}
		if len(w.Rooms) != 1 || w.Rooms[0].Room != "#general" || w.Rooms[0].Count != 1 {
			t.Errorf("welcome rooms = %+v", w.Rooms)
		}
		if w.Limits == nil || w.Limits.Text != MaxText || w.Limits.Burst != 5 || w.Limits.Rate != 2 || w.Limits.History != 50 {
			t.Errorf("welcome limits = %+v", w.Limits)
		}
		if r := evs[1]; r.Type != TypeRoom || r.Room != "#general" || !slices.Equal(r.Members, []string{"alice"}) {
			t.Errorf("room event = %+v", r)
		}
		j := evs[2]
		if j.Type != TypeMsg || j.Kind != KindJoin || j.Room != "#general" || j.From != "alice" || j.MID == 0 {
			t.Errorf("join event = %+v", j)
		}
		if j.TS != "2000-01-01T00:00:00.000Z" {
			t.Errorf("ts = %q, want RFC 3339 UTC with ms", j.TS)
		}
	})
}

func TestRoomMessageReachesMembersThenAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, nil)
		alice := hs.login("alice", false)
		bob := hs.login("bob", false)
		carol := hs.login("carol", false)
		alice.take()
		bob.take()
		carol.take()

		id := alice.say("#general", "hi all")
		synctest.Wait()
		a := alice.take()
		if len(a) != 2 || a[0].Type != TypeMsg || a[1].Type != TypeAck || a[1].ID != id {
			t.Fatalf("sender wants its message then the ack, got %s", dump(a))
		}
		if a[1].MID != a[0].MID {
			t.Errorf("ack mid %d does not name the message %d", a[1].MID, a[0].MID)
		}
		for _, c := range []*client{bob, carol} {
			evs := c.take()
			if len(evs) != 1 {
				t.Fatalf("%s: want one event, got %s", c.name, dump(evs))
			}
			m := evs[0]
			if m.Kind != KindMsg || m.Room != "#general" || m.From != "alice" || m.Text != "hi all" || m.MID != a[0].MID || m.History {
				t.Errorf("%s got %+v", c.name, m)
			}
		}
	})
}

func TestPresenceJoinPartQuit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, nil)
		alice := hs.login("alice", false)
		bob := hs.login("bob", false)
		bob.line("/join rust", "#general")
		synctest.Wait()
		alice.line("/join #Rust", "#general")
		synctest.Wait()
		alice.take()
		bj := ofKind(bob.take(), KindJoin)
		if len(bj) != 3 || bj[2].From != "alice" || bj[2].Room != "#rust" {
			t.Fatalf("bob wants alice's join in #rust, got %s", dump(bj))
		}

		id := alice.line("/part #rust see you", "#general")
		synctest.Wait()
		a := alice.take()
		mustAck(t, a, id)
		if p := ofKind(a, KindPart); len(p) != 1 || p[0].Room != "#rust" {
			t.Errorf("alice's sessions want their own part, got %s", dump(a))
		}
		bp := ofKind(bob.take(), KindPart)
		if len(bp) != 1 || bp[0].From != "alice" || bp[0].Text != "see you" || bp[0].Room != "#rust" {
			t.Fatalf("bob wants alice's part with reason, got %s", dump(bp))
		}

		alice.hangup()
		synctest.Wait()
		if !alice.ended() || alice.err != nil {
			t.Fatalf("clean hangup: ended=%v err=%v", alice.ended(), alice.err)
		}
		q := ofKind(bob.take(), KindQuit)
		if len(q) != 1 || q[0].From != "alice" || q[0].Room != "#general" || q[0].Text != "quit" {
			t.Fatalf("bob wants one quit in #general (alice left #rust), got %s", dump(q))
		}
		if alice.conn.closes.Load() != 1 {
			t.Errorf("Close called %d times, want 1", alice.conn.closes.Load())
		}
	})
}

// The rooms a first session names in hello replace the default room, so
// that "connect --room lobby" is in #lobby alone; with none named, or none
// valid, it is in #general.
func TestHelloRoomsReplaceDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, nil)
		bob := hs.login("bob", false)
		bob.take()
		for _, tc := range []struct {
			user  string
			rooms []string
			want  []string
		}{
			{"alice", []string{"#Lobby"}, []string{"#lobby"}},
			{"carol", []string{"#lobby", "#general"}, []string{"#general", "#lobby"}},
			{"dave", nil, []string{"#general"}},
			{"erin", []string{"bad room"}, []string{"#general"}},
		} {
			c := hs.connect(tc.user, false)
			c.send(&Request{Type: TypeHello, ID: "h", V: 1, Rooms: tc.rooms})
			synctest.Wait()
			evs := c.take()
			w := ofType(evs, TypeWelcome)
			if len(w) != 1 {
				t.Fatalf("%s: no welcome: %s", tc.user, dump(evs))
			}
			var got []string
			for _, r := range w[0].Rooms {
				got = append(got, r.Room)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s with hello rooms %q is in %q, want %q", tc.user, tc.rooms, got, tc.want)
			}
		}
		// Only those who are in #general are announced there.
		var joined []string
		for _, j := range ofKind(bob.take(), KindJoin) {
			joined = append(joined, j.From)
		}
		if !slices.Equal(joined, []string{"carol", "dave", "erin"}) {
			t.Errorf("bob saw joins of %q in #general, want carol, dave, erin", joined)
		}
		// A later session of alice names #extra: she keeps #lobby and
		// gains #extra, and is still not put in #general.
		a2 := hs.connect("alice", false)
		a2.send(&Request{Type: TypeHello, ID: "h", V: 1, Rooms: []string{"#extra"}})
		synctest.Wait()
		w := ofType(a2.take(), TypeWelcome)
		if len(w) != 1 || len(w[0].Rooms) != 2 || w[0].Rooms[0].Room != "#extra" || w[0].Rooms[1].Room != "#lobby" {
			t.Errorf("second session: %+v", w)
		}
	})
}

// /away marks the user (every session) away: /who and /whois show it, a
// direct message to them is answered with an away event, as IRC's
// RPL_AWAY; /back and the end of the user's last session clear it.
func TestAwayAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		alice := hs.login("alice", false)
		bob := hs.login("bob", false)
		admin := hs.login("root", true)
		alice.take()
		bob.take()

		away := bob.line("/away at lunch \x1b[31m", "#general")
		synctest.Wait()
		evs := bob.take()
		mustAck(t, evs, away)
		if r := ofType(evs, TypeReply); len(r) != 1 || r[0].Cmd != "away" || r[0].Away != "at lunch" || r[0].Text == "" {
			t.Fatalf("away reply: %s", dump(evs))
		}

		dm := alice.line("/msg bob are you there?", "#general")
		whois := alice.line("/whois bob", "#general")
		who := alice.line("/who", "#general")
		synctest.Wait()
		evs = alice.take()
		mustAck(t, evs, dm)
		var kinds []string
		for _, e := range evs {
			if e.Type == TypeMsg || e.ID == dm {
				kinds = append(kinds, e.Type+"/"+e.Kind)
			}
		}
		if want := []string{"msg/dm", "msg/away", "ack/"}; !slices.Equal(kinds, want) {
			t.Errorf("sender wants its dm, the away event, then the ack; got %q", kinds)
		}
		if a := ofKind(evs, KindAway); len(a) != 1 || a[0].User != "bob" || a[0].Away != "at lunch" ||
			a[0].From != "" || a[0].Text != "bob is away: at lunch" || a[0].MID == 0 {
			t.Errorf("away event: %s", dump(a))
		}
		replies := map[string]*Event{}
		for _, e := range ofType(evs, TypeReply) {
			replies[e.ID] = e
		}
		if r := replies[whois]; r == nil || r.Away != "at lunch" || !strings.Contains(r.Text, "away: at lunch") {
			t.Errorf("whois reply: %+v", r)
		}
		if r := replies[who]; r == nil || !slices.Equal(r.AwayMembers, []string{"bob"}) || !strings.HasSuffix(r.Text, "(away: bob)") {
			t.Errorf("who reply: %+v", r)
		}
		if got := bob.take(); len(ofKind(got, KindAway)) != 0 || len(ofKind(got, KindDM)) != 1 {
			t.Errorf("bob wants the dm and no away event: %s", dump(got))
		}

		// A second session of bob is told at login; /back from it
		// applies to the user.
		bob2 := hs.login("bob", false)
		if w := ofType(bob2.take(), TypeWelcome); len(w) != 1 || w[0].Away != "at lunch" {
			t.Errorf("welcome of a second session: %s", dump(w))
		}
		back := bob2.line("/back", "#general")
		synctest.Wait()
		evs = bob2.take()
		mustAck(t, evs, back)
		if r := ofType(evs, TypeReply); len(r) != 1 || r[0].Cmd != "back" || r[0].Away != "" {
			t.Errorf("back reply: %s", dump(evs))
		}
		dm = alice.line("/msg bob back yet?", "#general")
		whois = alice.line("/whois bob", "#general")
		synctest.Wait()
		evs = alice.take()
		mustAck(t, evs, dm)
		if a := ofKind(evs, KindAway); len(a) != 0 {
			t.Errorf("no away event after /back: %s", dump(a))
		}
		if r := ofType(evs, TypeReply); len(r) != 1 || r[0].ID != whois || r[0].Away != "" || strings.Contains(r[0].Text, "away") {
			t.Errorf("whois after /back: %s", dump(r))
		}

		// Without text the message is "away"; the end of the last session
		// forgets it.
		bob.line("/away", "#general")
		synctest.Wait()
		if r := ofType(bob.take(), TypeReply); len(r) != 1 || r[0].Away != "away" {
			t.Errorf("plain /away: %s", dump(r))
		}
		bob.hangup()
		bob2.hangup()
		synctest.Wait()
		bob3 := hs.login("bob", false)
		if w := ofType(bob3.take(), TypeWelcome); len(w) != 1 || w[0].Away != "" {
			t.Errorf("away survived the last session: %s", dump(w))
		}

		// A muted user may not publish an away message.
		admin.line("/mute bob", "#general")
		synctest.Wait()
		muted := bob3.line("/away buy my stuff", "#general")
		synctest.Wait()
		mustFail(t, bob3.take(), muted, CodeMuted)
	})
}

func TestMultipleSessionsQuitOnLast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, nil)
		bob := hs.login("bob", false)
		a1 := hs.login("alice", false)
		a1.line("/join #x", "#general")
		synctest.Wait()
		bob.take()
		a2 := hs.login("alice", false)
		evs := a2.take()
		w := ofType(evs, TypeWelcome)
		if len(w) != 1 || len(w[0].Rooms) != 2 {
			t.Fatalf("second session inherits both rooms: %s", dump(evs))
		}
		if rs := ofType(evs, TypeRoom); len(rs) != 2 || rs[0].Room != "#general" || rs[1].Room != "#x" {
			t.Errorf("second session wants room state for both rooms: %s", dump(rs))
		}
		if j := ofKind(bob.take(), KindJoin); len(j) != 0 {
			t.Errorf("a second session must not announce a second join: %s", dump(j))
		}

		// A message in #x reaches both sessions of alice.
		a2.say("#x", "from two")
		synctest.Wait()
		if m := ofKind(a1.take(), KindMsg); len(m) != 1 || m[0].Text != "from two" {
			t.Errorf("first session misses the room message: %s", dump(m))
		}

		a1.hangup()
		synctest.Wait()
		if q := ofKind(bob.take(), KindQuit); len(q) != 0 {
			t.Fatalf("quit announced while alice is still online: %s", dump(q))
		}
		a2.hangup()
		synctest.Wait()
		if q := ofKind(bob.take(), KindQuit); len(q) != 1 || q[0].From != "alice" {
			t.Fatalf("want alice's quit after her last session: %s", dump(q))
		}
	})
}

func TestDirectMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, nil)
		a1 := hs.login("alice", false)
		a2 := hs.login("alice", false)
		b1 := hs.login("bob", false)
		b2 := hs.login("bob", false)
		carol := hs.login("carol", false)
		for _, c := range []*client{a1, a2, b1, b2, carol} {
			c.take()
		}
		id := a1.line("/msg Bob psst", "#general")
		synctest.Wait()
		a := a1.take()
		ack := mustAck(t, a, id)
		for _, c := range []*client{a1, a2, b1, b2} {
			evs := a
			if c != a1 {
				evs = c.take()
			}
			dm := ofKind(evs, KindDM)
			if len(dm) != 1 || dm[0].From != "alice" || dm[0].To != "bob" || dm[0].Text != "psst" || dm[0].MID != ack.MID || dm[0].Room != "" {
				t.Errorf("%s: want the DM once, got %s", c.name, dump(evs))
			}
		}
		if evs := carol.take(); len(evs) != 0 {
			t.Errorf("carol saw a DM not for her: %s", dump(evs))
		}

		// The cmd form does the same; an offline user is an error.
		id = b1.id()
		b1.send(&Request{Type: TypeCmd, ID: id, Cmd: "msg", Args: []string{"alice", "hi"}})
		id2 := b1.line("/msg dave hello?", "")
		id3 := b1.id()
		b1.send(&Request{Type: TypeMsg, ID: id3, To: "alice", Kind: KindMe, Text: "waves"})
		synctest.Wait()
		evs := b1.take()
		mustAck(t, evs, id)
		mustFail(t, evs, id2, CodeOffline)
		mustFail(t, evs, id3, CodeBadRequest)
		if dm := ofKind(a2.take(), KindDM); len(dm) != 1 || dm[0].From != "bob" {
			t.Errorf("cmd msg not delivered: %s", dump(dm))
		}
	})
}

func TestHistoryReplay(t *testing.T) {
	for _, tc := range []struct {
		size, replay, want int
	}{
		{size: 10, replay: 5, want: 5},
		{size: 10, replay: 20, want: 10}, // capped by the ring
		{size: -1, replay: 5, want: 0},   // no history
	} {
		t.Run(fmt.Sprintf("size=%d,replay=%d", tc.size, tc.replay), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hs := newHarness(t, &Config{HistorySize: tc.size, HistoryReplay: tc.replay, FloodRate: -1})
				alice := hs.login("alice", false)
				var mids []uint64
				for i := range 12 {
					alice.say("#general", fmt.Sprintf("m%d", i))
				}
				alice.line("/topic the topic", "#general")
				synctest.Wait()
				for _, e := range ofType(alice.take(), TypeMsg) {
					if e.Kind == KindMsg || e.Kind == KindTopic {
						mids = append(mids, e.MID)
					}
				}
				bob := hs.login("bob", false)
				evs := bob.take()
				var hist []*Event
				for i, e := range evs {
					if e.History {
						hist = append(hist, e)
						if evs[i-1].Type != TypeRoom && !evs[i-1].History {
							t.Errorf("history must follow the room event")
						}
					}
				}
				if len(hist) != tc.want {
					t.Fatalf("want %d history events, got %d: %s", tc.want, len(hist), dump(evs))
				}
				for i, e := range hist {
					if want := mids[len(mids)-tc.want+i]; e.MID != want {
						t.Errorf("history[%d] mid %d, want %d (the newest, oldest first)", i, e.MID, want)
					}
				}
				if tc.want > 0 && hist[len(hist)-1].Kind != KindTopic {
					t.Errorf("topic changes are history too")
				}
				join := ofKind(evs, KindJoin)
				if len(join) != 1 || join[0].History {
					t.Errorf("the live join is not history: %s", dump(join))
				}
				alice.say("#general", "live")
				synctest.Wait()
				if m := ofKind(bob.take(), KindMsg); len(m) != 1 || m[0].History {
					t.Errorf("live message marked as history: %s", dump(m))
				}
			})
		})
	}
}

func TestTotalOrderUnderConcurrentSenders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, &Config{FloodRate: -1, SendQueue: 1024})
		const senders, each = 4, 50
		var cs []*client
		for i := range 6 {
			cs = append(cs, hs.login(fmt.Sprintf("u%d", i), false))
		}
		for _, c := range cs {
			c.take()
		}
		var wg sync.WaitGroup
		for i := range senders {
			wg.Go(func() {
				for j := range each {
					cs[i].say("#general", fmt.Sprintf("%d/%d", i, j))
				}
			})
		}
		wg.Wait()
		synctest.Wait()
		var ref []uint64
		for k, c := range cs {
			var seq []uint64
			next := make([]int, senders)
			var last uint64
			for _, e := range ofKind(c.take(), KindMsg) {
				seq = append(seq, e.MID)
				if e.MID <= last {
					t.Fatalf("%s: mid %d after %d", c.name, e.MID, last)
				}
				last = e.MID
				var i, j int
				fmt.Sscanf(e.Text, "%d/%d", &i, &j)
				if j != next[i] {
					t.Fatalf("%s: sender %d's message %d arrived before %d", c.name, i, j, next[i])
				}
				next[i]++
			}
			if len(seq) != senders*each {
				t.Fatalf("%s got %d messages, want %d", c.name, len(seq), senders*each)
			}
			if k == 0 {
				ref = seq
			} else if !slices.Equal(seq, ref) {
				t.Fatalf("%s saw a different order than %s", c.name, cs[0].name)
			}
		}
	})
}

func TestTextLimitAndUTF8(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		alice := hs.login("alice", false)
		bob := hs.login("bob", false)
		alice.take()
		bob.take()
		ok := alice.say("#general", strings.Repeat("é", MaxText/2)) // 4096 bytes
		long := alice.say("#general", strings.Repeat("a", MaxText+1))
		empty := alice.say("#general", "\x1b[2J\x07")
		alice.sendRaw([]byte(`{"t":"msg","id":"bad","room":"#general","text":"` + "\xff\xfe" + `"}`))
		synctest.Wait()
		evs := alice.take()
		mustAck(t, evs, ok)
		mustFail(t, evs, long, CodeTooLong)
		mustFail(t, evs, empty, CodeEmpty)
		if e := ofType(evs, TypeError); len(e) != 3 || e[2].Code != CodeBadUTF8 || e[2].ID != "" {
			t.Errorf("invalid UTF-8 wants an error without id (the record cannot be parsed): %s", dump(e))
		}
		if m := ofKind(bob.take(), KindMsg); len(m) != 1 || len(m[0].Text) != MaxText {
			t.Errorf("bob wants only the 4096-byte message: %s", dump(m))
		}
	})
}

func TestEscapeSequencesCannotReachMembers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		alice := hs.login("alice", false)
		bob := hs.login("bob", false)
		bob.take()
		alice.say("#general", "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m \u202eevil\u202c \u009b31mx\ttab\r\nline")
		alice.line("/topic \x1b[5mblink\x1b[0m", "#general")
		alice.send(&Request{Type: TypeCmd, Cmd: "part", Room: "#general", Args: []string{"\x1b[Hbye"}})
		synctest.Wait()
		evs := bob.take()
		want := []string{"red evil x tab  line", "blink", "bye"}
		if len(evs) != len(want) {
			t.Fatalf("got %s", dump(evs))
		}
		for i, e := range evs {
			if e.Text != want[i] {
				t.Errorf("event %d text %q, want %q", i, e.Text, want[i])
			}
			if strings.ContainsAny(e.Text, "\x1b\x07\u009b\u202e\r\n\t") {
				t.Errorf("control left in %q", e.Text)
			}
		}
	})
}

func TestFloodLimitTokenBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, nil) // defaults: burst 5, 2 per second
		alice := hs.login("alice", false)
		// The first hello is free (the login paid for it).
		alice.take()
		var ids []string
		for i := range 7 {
			ids = append(ids, alice.say("#general", fmt.Sprint(i)))
		}
		synctest.Wait()
		evs := alice.take()
		for _, id := range ids[:5] {
			mustAck(t, evs, id)
		}
		for _, id := range ids[5:] {
			e := mustFail(t, evs, id, CodeFlood)
			if e.RetryMS <= 0 || e.RetryMS > 500 {
				t.Errorf("retry_ms = %d, want (0, 500]", e.RetryMS)
			}
		}
		// Refill: 2 per second.
		time.Sleep(500 * time.Millisecond)
		a, b := alice.say("#general", "a"), alice.say("#general", "b")
		synctest.Wait()
		evs = alice.take()
		mustAck(t, evs, a)
		mustFail(t, evs, b, CodeFlood)
		// After a long pause the burst is back, but no more than the burst.
		time.Sleep(time.Minute)
		ids = ids[:0]
		for i := range 6 {
			ids = append(ids, alice.say("#general", fmt.Sprint(i)))
		}
		synctest.Wait()
		evs = alice.take()
		for _, id := range ids[:5] {
			mustAck(t, evs, id)
		}
		mustFail(t, evs, ids[5], CodeFlood)
	})
}

// TestFloodBucketSharedByAccount checks that more sessions do not buy an
// account more requests: its sessions draw on one bucket, other accounts
// on their own.
func TestFloodBucketSharedByAccount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, nil) // defaults: burst 5, 2 per second
		a1 := hs.login("alice", false)
		a2 := hs.login("alice", false)
		bob := hs.login("bob", false)
		var ids1, ids2, bobIDs []string
		for i := range 3 {
			ids1 = append(ids1, a1.say("#general", fmt.Sprint("one ", i)))
			ids2 = append(ids2, a2.say("#general", fmt.Sprint("two ", i)))
		}
		for i := range 5 {
			bobIDs = append(bobIDs, bob.say("#general", fmt.Sprint("bob ", i)))
		}
		synctest.Wait()
		acks, floods := 0, 0
		for _, c := range []struct {
			cl  *client
			ids []string
		}{{a1, ids1}, {a2, ids2}} {
			evs := c.cl.all()
			for _, id := range c.ids {
				switch e := answer(t, evs, id); {
				case e.Type == TypeAck:
					acks++
				case e.Code == CodeFlood:
					floods++
				default:
					t.Errorf("%s: %s %s", id, e.Code, e.Text)
				}
			}
		}
		if acks != 5 || floods != 1 {
			t.Errorf("alice's two sessions got %d acks and %d flood errors for 6 requests; want 5 and 1 (one bucket of 5)", acks, floods)
		}
		evs := bob.all()
		for _, id := range bobIDs {
			mustAck(t, evs, id)
		}
	})
}

// TestSessionsPerAccountCapped checks MaxSessionsPerUser: one session
// over the cap is refused with session_limit, other accounts are not
// affected, and a slot freed by a session that ended can be used again.
func TestSessionsPerAccountCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, &Config{MaxSessionsPerUser: 2})
		a1 := hs.login("alice", false)
		hs.login("alice", false)
		a3 := hs.connect("alice", false) // counted before its hello
		synctest.Wait()
		if !a3.ended() || !errors.Is(a3.err, ErrSessionLimit) {
			t.Fatalf("third session: ended=%v err=%v, want ErrSessionLimit", a3.ended(), a3.err)
		}
		if evs := a3.all(); len(evs) != 1 || evs[0].Type != TypeError || evs[0].Code != CodeSessionLimit ||
			!strings.Contains(evs[0].Text, "2 session(s)") {
			t.Errorf("the refused session wants one session_limit error: %s", dump(evs))
		}
		if bob := hs.login("bob", false); len(ofType(bob.all(), TypeWelcome)) != 1 {
			t.Errorf("another account is not limited by alice's sessions: %s", dump(bob.all()))
		}
		a1.hangup()
		<-a1.done
		if a4 := hs.login("alice", false); len(ofType(a4.all(), TypeWelcome)) != 1 {
			t.Errorf("a slot freed by an ended session must be usable: %s", dump(a4.all()))
		}
		if st := hs.h.Stats(); st.Sessions != 3 {
			t.Errorf("sessions = %d, want 3", st.Sessions)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, nil) // default: 10
		for i := range 10 {
			if c := hs.login("alice", false); len(ofType(c.all(), TypeWelcome)) != 1 {
				t.Fatalf("session %d of 10 refused: %s", i+1, dump(c.all()))
			}
		}
		if c := hs.login("alice", false); !c.ended() || !errors.Is(c.err, ErrSessionLimit) {
			t.Errorf("session 11: ended=%v err=%v, want ErrSessionLimit (default cap 10)", c.ended(), c.err)
		}
	})
}

// TestAdminRoleAskedAtEachCommand checks that the hub asks Config.IsAdmin
// at every admin command instead of trusting the role at login: a role
// taken away applies at once to a session already logged in.
func TestAdminRoleAskedAtEachCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		admins := map[string]bool{"root": true}
		hs := newHarness(t, &Config{FloodRate: -1, IsAdmin: func(user string) bool {
			mu.Lock()
			defer mu.Unlock()
			return admins[user]
		}})
		root := hs.login("root", true)
		bob := hs.login("bob", false)
		if w := ofType(root.take(), TypeWelcome); len(w) != 1 || !w[0].Admin {
			t.Fatalf("welcome.admin for an admin: %s", dump(w))
		}
		mute := root.line("/mute bob", "#general")
		synctest.Wait()
		mustAck(t, root.take(), mute)

		mu.Lock()
		delete(admins, "root")
		admins["bob"] = true
		mu.Unlock()
		var ids []string
		for _, l := range []string{"/kick bob", "/ban bob 1h", "/unmute bob", "/bans", "/motd new motd"} {
			ids = append(ids, root.line(l, "#general"))
		}
		whois, help := root.line("/whois root", "#general"), root.line("/help", "#general")
		synctest.Wait()
		evs := root.take()
		for _, id := range ids {
			mustFail(t, evs, id, CodeForbidden)
		}
		for _, r := range ofType(evs, TypeReply) {
			if r.ID == whois && r.Admin {
				t.Errorf("whois still shows root as admin")
			}
			if r.ID == help {
				for _, c := range r.Commands {
					if c.Admin {
						t.Errorf("help for a former admin lists %s", c.Name)
					}
				}
			}
		}
		if bob.ended() {
			t.Fatalf("a former admin's kick or ban took effect: %v", bob.err)
		}
		// Promoted after login: bob's session gains the commands.
		bans := bob.line("/bans", "#general")
		synctest.Wait()
		mustAck(t, bob.take(), bans)
	})
}

func TestFloodLimitCanBeRaised(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, &Config{FloodBurst: 100, FloodRate: 50})
		alice := hs.login("alice", false)
		alice.take()
		var ids []string
		for i := range 99 {
			ids = append(ids, alice.say("#general", fmt.Sprint(i)))
		}
		synctest.Wait()
		evs := alice.take()
		if testing.Verbose() {
			for _, e := range evs {
				t.Logf("%s %s %s %s", e.Type, e.ID, e.Kind, e.Text)
			}
			t.Logf("ended=%v err=%v stats=%+v", alice.ended(), alice.err, hs.h.Stats())
		}
		for _, id := range ids {
			mustAck(t, evs, id)
		}
	})
}

func TestSlowConsumerNeverDelaysOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, &Config{FloodRate: -1, SendQueue: 8, SlowConsumerTimeout: 10 * time.Second, FlushTimeout: time.Second})
		alice := hs.login("alice", false)
		bob := hs.login("bob", false)
		carol := hs.login("carol", false)
		alice.take()
		bob.take()
		carol.conn.stall.Store(true) // carol stops reading

		// Rounds small enough for the readers' queues, so that only carol's
		// can overflow.
		start := time.Now()
		const n = 100
		for i := range n {
			alice.say("#general", fmt.Sprint(i))
			if i%3 == 2 {
				synctest.Wait()
			}
		}
		synctest.Wait()
		if time.Since(start) != 0 {
			t.Fatalf("fake time moved")
		}
		// Everyone else has everything, at the same instant: carol's stalled
		// writer held nothing up.
		if m := ofKind(bob.take(), KindMsg); len(m) != n {
			t.Fatalf("bob got %d of %d messages while carol stalled", len(m), n)
		}
		if a := ofType(alice.take(), TypeAck); len(a) != n {
			t.Fatalf("alice got %d of %d acks", len(a), n)
		}
		if st := hs.h.Stats(); st.Dropped == 0 {
			t.Errorf("carol's full queue must drop events, stats %+v", st)
		}
		// The stats see carol's full queue, and every request alice sent.
		if st := hs.h.Stats(); st.MaxQueued != 8 || st.Queued < 8 || st.Requests < n {
			t.Errorf("want MaxQueued 8, Queued at least 8, Requests at least %d; stats %+v", n, st)
		}

		time.Sleep(9 * time.Second)
		if carol.ended() {
			t.Fatalf("carol disconnected before SlowConsumerTimeout")
		}
		// The bound: timeout + one tick (timeout/4) + FlushTimeout.
		time.Sleep(1*time.Second + 10*time.Second/4 + time.Second)
		if !carol.ended() {
			t.Fatalf("carol still connected after the bound")
		}
		if !errors.Is(carol.err, ErrDisconnected) {
			t.Errorf("Serve = %v, want ErrDisconnected", carol.err)
		}
		q := ofKind(bob.take(), KindQuit)
		if len(q) != 1 || q[0].From != "carol" || q[0].Text != "connection too slow" {
			t.Errorf("bob wants carol's quit: %s", dump(q))
		}
		if st := hs.h.Stats(); st.SlowDisconnects != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestSlowConsumerRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, &Config{FloodRate: -1, SendQueue: 8})
		alice := hs.login("alice", false)
		gate := make(chan struct{})
		conn := newFakeConn(t)
		conn.gate = gate
		carol := hs.connectConn("carol", false, conn)
		carol.send(&Request{Type: TypeHello, V: 1})
		synctest.Wait()
		for i := range 30 {
			alice.say("#general", fmt.Sprint(i))
			if i%3 == 2 {
				synctest.Wait()
			}
		}
		synctest.Wait()
		time.Sleep(5 * time.Second) // less than SlowConsumerTimeout
		close(gate)                 // carol reads again
		synctest.Wait()
		time.Sleep(3 * time.Second) // a tick notices the queue drained
		alice.say("#general", "after")
		synctest.Wait()
		if carol.ended() {
			t.Fatalf("carol recovered but was disconnected: %v", carol.err)
		}
		evs := carol.take()
		notices := ofKind(evs, KindNotice)
		if len(notices) != 1 || !strings.Contains(notices[0].Text, "were not delivered") {
			t.Fatalf("want one notice about dropped messages: %s", dump(evs))
		}
		got := len(ofKind(evs, KindMsg))
		var dropped int
		fmt.Sscanf(notices[0].Text, "%d", &dropped)
		if dropped == 0 || got+dropped != 31 {
			t.Errorf("got %d messages + %d dropped, want 31 in all", got, dropped)
		}
		if m := ofKind(evs, KindMsg); m[len(m)-1].Text != "after" {
			t.Errorf("the newest message must arrive after recovery")
		}
	})
}

func TestWriterCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		gate := make(chan struct{}, 1)
		conn := newFakeConn(t)
		conn.gate = gate
		alice := hs.connectConn("alice", false, conn)
		alice.send(&Request{Type: TypeHello, V: 1})
		synctest.Wait() // the writer now waits in its first WriteMessages
		for i := range 10 {
			alice.say("#general", fmt.Sprint(i))
		}
		synctest.Wait()
		gate <- struct{}{}
		synctest.Wait()
		gate <- struct{}{}
		synctest.Wait()
		conn.mu.Lock()
		batches := append([]int(nil), conn.batches...)
		conn.mu.Unlock()
		// The first call took what was queued when the writer woke (part of
		// the login); the second everything that piled up behind it.
		if len(batches) != 2 || batches[0]+batches[1] != 23 || batches[1] < 20 {
			t.Fatalf("want everything pending coalesced into one call; got %v", batches)
		}
	})
}

func TestModerationNeedsAdmin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		bob := hs.login("bob", false)
		hs.login("carol", false)
		bob.take()
		var ids []string
		for _, l := range []string{"/kick carol", "/ban carol 1h", "/unban carol", "/mute carol", "/unmute carol", "/bans", "/motd new motd"} {
			ids = append(ids, bob.line(l, "#general"))
		}
		synctest.Wait()
		evs := bob.take()
		for _, id := range ids {
			mustFail(t, evs, id, CodeForbidden)
		}
		id := bob.line("/help", "#general")
		synctest.Wait()
		evs = bob.take()
		mustAck(t, evs, id)
		for _, c := range ofType(evs, TypeReply)[0].Commands {
			if c.Admin {
				t.Errorf("non-admin help lists %s", c.Name)
			}
		}
	})
}

func TestKick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		root := hs.login("root", true)
		b1 := hs.login("bob", false)
		b2 := hs.login("bob", false)
		root.take()
		id := root.line("/kick bob spamming", "#general")
		self := root.line("/kick root", "#general")
		ghost := root.line("/kick nobody", "#general")
		synctest.Wait()
		evs := root.take()
		mustAck(t, evs, id)
		mustFail(t, evs, self, CodeForbidden)
		mustFail(t, evs, ghost, CodeOffline)
		if r := ofType(evs, TypeReply); len(r) != 1 || r[0].Sessions != 2 {
			t.Errorf("kick reply = %s", dump(r))
		}
		q := ofKind(evs, KindQuit)
		if len(q) != 1 || q[0].Text != "kicked by root: spamming" {
			t.Errorf("quit = %s", dump(q))
		}
		for _, b := range []*client{b1, b2} {
			if !b.ended() || !errors.Is(b.err, ErrDisconnected) {
				t.Errorf("bob session not ended: %v", b.err)
			}
			all := b.all()
			last := all[len(all)-1]
			if last.Type != TypeError || last.Code != CodeKicked || last.Text != "you were kicked by root: spamming" {
				t.Errorf("bob's last event = %+v", last)
			}
		}
		// A kick is not a ban.
		b3 := hs.login("bob", false)
		if w := ofType(b3.take(), TypeWelcome); len(w) != 1 {
			t.Errorf("bob cannot log in again after a kick")
		}
	})
}

func TestBanExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		root := hs.login("root", true)
		bob := hs.login("bob", false)
		root.take()
		id := root.line("/ban bob 1m flooding", "#general")
		synctest.Wait()
		evs := root.take()
		mustAck(t, evs, id)
		if !bob.ended() || !errors.Is(bob.err, ErrDisconnected) {
			t.Fatalf("banned bob still connected: %v", bob.err)
		}
		if !hs.h.Banned("bob") || !hs.h.Banned("BOB") || hs.h.Banned("carol") {
			t.Fatalf("Banned wrong")
		}
		list := root.line("/bans", "")
		synctest.Wait()
		r := ofType(root.take(), TypeReply)
		if len(r) != 1 || len(r[0].Bans) != 1 || r[0].Bans[0].User != "bob" || r[0].Bans[0].Reason != "flooding" ||
			r[0].Bans[0].Until != "2000-01-01T00:01:00.000Z" {
			t.Fatalf("bans reply for %s = %s", list, dump(r))
		}

		again := hs.connect("bob", false)
		synctest.Wait()
		if !again.ended() || again.err != ErrBanned {
			t.Fatalf("banned login: ended=%v err=%v", again.ended(), again.err)
		}
		if e := again.all(); len(e) != 1 || e[0].Type != TypeError || e[0].Code != CodeBanned ||
			!strings.Contains(e[0].Text, "until 2000-01-01T00:01:00.000Z: flooding") {
			t.Fatalf("refused login wants one banned error: %s", dump(e))
		}

		time.Sleep(61 * time.Second)
		if hs.h.Banned("bob") {
			t.Fatalf("ban did not expire")
		}
		back := hs.login("bob", false)
		if w := ofType(back.take(), TypeWelcome); len(w) != 1 {
			t.Fatalf("bob cannot log in after the ban expired")
		}

		// Permanent ban, then unban.
		root.line("/ban bob", "")
		synctest.Wait()
		time.Sleep(2 * time.Hour)
		if !hs.h.Banned("bob") {
			t.Fatalf("permanent ban expired")
		}
		id = root.line("/unban bob", "")
		id2 := root.line("/unban bob", "")
		synctest.Wait()
		evs = root.take()
		mustAck(t, evs, id)
		mustFail(t, evs, id2, CodeNotFound)
		if hs.h.Banned("bob") {
			t.Fatalf("unban did not lift the ban")
		}
	})
}

func TestMute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		root := hs.login("root", true)
		bob := hs.login("bob", false)
		alice := hs.login("alice", false)
		root.line("/mute bob 30s", "")
		synctest.Wait()
		if n := ofKind(bob.take(), KindNotice); len(n) != 1 || !strings.HasPrefix(n[0].Text, "you were muted by root until") {
			t.Errorf("bob wants a mute notice: %s", dump(n))
		}
		alice.take()
		m1 := bob.say("#general", "can you hear me")
		m2 := bob.line("/msg alice hello?", "#general")
		m3 := bob.line("/topic muted topic", "#general")
		m4 := bob.line("/join #other", "#general")
		synctest.Wait()
		evs := bob.take()
		mustFail(t, evs, m1, CodeMuted)
		mustFail(t, evs, m2, CodeMuted)
		mustFail(t, evs, m3, CodeMuted)
		mustAck(t, evs, m4) // muted users can still join and read
		if got := alice.take(); len(ofKind(got, KindMsg))+len(ofKind(got, KindDM))+len(ofKind(got, KindTopic)) != 0 {
			t.Fatalf("a muted message got through: %s", dump(got))
		}
		time.Sleep(31 * time.Second)
		m5 := bob.say("#general", "back")
		synctest.Wait()
		mustAck(t, bob.take(), m5)
		if m := ofKind(alice.take(), KindMsg); len(m) != 1 {
			t.Errorf("mute did not expire")
		}
		// Unmute before expiry.
		root.line("/mute bob", "")
		synctest.Wait()
		id := root.line("/unmute bob", "")
		synctest.Wait()
		mustAck(t, root.take(), id)
		m6 := bob.say("#general", "free")
		synctest.Wait()
		mustAck(t, bob.take(), m6)
	})
}

func TestMOTD(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, &Config{MOTD: "from the file"})
		root := hs.login("root", true)
		if w := ofType(root.take(), TypeWelcome); w[0].MOTD != "from the file" {
			t.Fatalf("motd at login = %q", w[0].MOTD)
		}
		id := root.line("/motd be excellent", "")
		show := root.line("/motd", "")
		synctest.Wait()
		evs := root.take()
		mustAck(t, evs, id)
		mustAck(t, evs, show)
		if r := ofType(evs, TypeReply); len(r) != 2 || r[1].MOTD != "be excellent" {
			t.Errorf("motd replies = %s", dump(r))
		}
		bob := hs.login("bob", false)
		if w := ofType(bob.take(), TypeWelcome); w[0].MOTD != "be excellent" {
			t.Errorf("new motd not shown at login: %q", w[0].MOTD)
		}
		hs.h.SetMOTD("reloaded\x1b[2J")
		carol := hs.login("carol", false)
		if w := ofType(carol.take(), TypeWelcome); w[0].MOTD != "reloaded" {
			t.Errorf("SetMOTD: %q", w[0].MOTD)
		}
	})
}

func TestCommands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		alice := hs.login("alice", true)
		bob := hs.login("bob", false)
		bob.line("/join #go", "#general")
		synctest.Wait()
		alice.take()
		bob.take()

		topic := bob.line("/topic #go gophers only", "#general")
		synctest.Wait() // two sessions' requests have no order between them
		rooms := alice.line("/rooms", "#general")
		show := alice.line("/topic #go", "#general")
		who := alice.line("/who", "#general")
		whois := alice.line("/whois bob", "#general")
		nick := alice.line("/nick queen", "#general")
		badRoom := alice.id()
		alice.send(&Request{Type: TypeCmd, ID: badRoom, Cmd: "join", Room: "#no way"})
		notIn := alice.line("/part #go", "#general")
		noRoom := alice.line("/who #nowhere", "#general")
		help := alice.line("/help ban", "#general")
		unknown := alice.line("/frobnicate now", "#general")
		synctest.Wait()
		evs := alice.take()
		for _, id := range []string{rooms, show, who, whois, help} {
			mustAck(t, evs, id)
		}
		mustFail(t, evs, nick, CodeUnsupported)
		mustFail(t, evs, badRoom, CodeBadRoom)
		mustFail(t, evs, notIn, CodeNotMember)
		mustFail(t, evs, noRoom, CodeNoSuchRoom)
		mustFail(t, evs, unknown, CodeUnknownCommand)
		mustAck(t, bob.take(), topic)

		replies := map[string]*Event{}
		for _, e := range ofType(evs, TypeReply) {
			replies[e.ID] = e
		}
		if r := replies[rooms]; r == nil || len(r.Rooms) != 2 || r.Rooms[0] != (RoomInfo{Room: "#general", Count: 2}) || r.Rooms[1].Room != "#go" || r.Rooms[1].Count != 1 {
			t.Errorf("rooms reply %+v", r)
		}
		if r := replies[show]; r == nil || r.Topic != "gophers only" {
			t.Errorf("topic reply %+v", r)
		}
		if r := replies[who]; r == nil || !slices.Equal(r.Members, []string{"alice", "bob"}) {
			t.Errorf("who reply %+v", r)
		}
		if r := replies[whois]; r == nil || r.User != "bob" || r.Sessions != 1 || !slices.Equal(r.Joined, []string{"#general", "#go"}) {
			t.Errorf("whois reply %+v", r)
		}
		if r := replies[help]; r == nil || len(r.Commands) != 1 || r.Commands[0].Name != "ban" || !r.Commands[0].Admin {
			t.Errorf("help reply %+v", r)
		}

		// /quit ends only this session, with the reason for the others.
		q := bob.line("/quit off to lunch", "#general")
		synctest.Wait()
		mustAck(t, bob.all(), q)
		if !bob.ended() || bob.err != nil {
			t.Fatalf("quit: ended=%v err=%v", bob.ended(), bob.err)
		}
		if e := ofKind(alice.take(), KindQuit); len(e) != 1 || e[0].Text != "off to lunch" {
			t.Errorf("quit reason: %s", dump(e))
		}
	})
}

func TestProtocolErrorsKeepSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		bob := hs.login("bob", false)
		alice := hs.connect("alice", false)
		early := alice.id()
		alice.send(&Request{Type: TypeMsg, ID: early, Room: "#general", Text: "too early"})
		alice.send(&Request{Type: TypePing, ID: "p0"})
		alice.send(&Request{Type: TypeHello, V: 3, Rooms: []string{"#Extra", "bad room", "#general"}})
		synctest.Wait()
		evs := alice.take()
		mustFail(t, evs, early, CodeHelloRequired)
		if p := ofType(evs, TypePong); len(p) != 1 || p[0].ID != "p0" {
			t.Errorf("ping before hello: %s", dump(evs))
		}
		w := ofType(evs, TypeWelcome)
		if len(w) != 1 || w[0].V != 1 || len(w[0].Rooms) != 2 || w[0].Rooms[0].Room != "#extra" {
			t.Fatalf("welcome: %s", dump(evs))
		}
		if e := ofType(evs, TypeError); len(e) != 2 || e[1].Code != CodeBadRoom {
			t.Errorf("bad hello room wants an error: %s", dump(e))
		}
		bob.take()

		alice.sendRaw([]byte(`{"t":"frob","id":"x1","future":true}`))
		alice.sendRaw([]byte(`{"t":"msg","id":"x2","room":"#general","text":"hi","future":{"a":[1,{"b":null}]},"Text":"ignored"}`))
		alice.sendRaw([]byte(`{"t":"msg","id":"x3","room":5}`))
		alice.sendRaw([]byte(`{"t":"msg","id":"x4","id":"x5"}`))
		alice.sendRaw([]byte(`[1,2]`))
		alice.sendRaw([]byte(`{"t":"hello","id":"x6","v":1}`))
		alice.send(&Request{Type: TypeMsg, ID: "x7", Room: "#general", To: "bob", Text: "both"})
		alice.send(&Request{Type: TypeMsg, ID: "x8", Room: "#general", Kind: "shout", Text: "hey"})
		alice.send(&Request{Type: TypeCmd, ID: "x9", Cmd: "kick", Args: []string{"bob", "a", "b"}})
		synctest.Wait()
		evs = alice.take()
		mustFail(t, evs, "x1", CodeUnknownType)
		mustAck(t, evs, "x2")
		mustFail(t, evs, "x3", CodeBadRequest)
		mustFail(t, evs, "x6", CodeBadRequest)
		mustFail(t, evs, "x7", CodeBadRequest)
		mustFail(t, evs, "x8", CodeBadRequest)
		mustFail(t, evs, "x9", CodeForbidden)
		if e := ofType(evs, TypeError); len(e) != 8 {
			t.Errorf("want 8 errors (duplicate key and non-object without id): %s", dump(e))
		}
		if m := ofKind(bob.take(), KindMsg); len(m) != 1 || m[0].Text != "hi" {
			t.Errorf("unknown fields must be ignored: %s", dump(m))
		}
		if alice.ended() {
			t.Fatalf("protocol errors must not disconnect")
		}
	})
}

func TestVersionTooOld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, nil)
		alice := hs.connect("alice", false)
		alice.send(&Request{Type: TypeHello, ID: "h"})
		synctest.Wait()
		mustFail(t, alice.all(), "h", CodeVersion)
		if !alice.ended() || alice.err == nil {
			t.Fatalf("no common version must end the session")
		}
	})
}

func TestPingKeepaliveAndTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, &Config{PingInterval: 10 * time.Second, PingTimeout: 5 * time.Second, HelloTimeout: 10 * time.Second})
		alive := hs.login("alive", false)
		dead := hs.connect("dead", false)
		dead.conn.autoPong.Store(false)
		dead.send(&Request{Type: TypeHello, V: 1})
		silent := hs.connect("silent", false) // never says hello
		synctest.Wait()

		time.Sleep(11 * time.Second)
		synctest.Wait()
		p := ofType(dead.all(), TypePing)
		if len(p) != 1 || p[0].ID == "" {
			t.Fatalf("idle session wants a ping: %s", dump(dead.all()))
		}
		if !silent.ended() || !errors.Is(silent.err, ErrDisconnected) {
			t.Errorf("no hello within HelloTimeout must disconnect: %v", silent.err)
		}
		// Bound: interval + timeout + one tick (5s/4).
		time.Sleep(5*time.Second + 5*time.Second/4)
		if !dead.ended() || !errors.Is(dead.err, ErrDisconnected) {
			t.Fatalf("dead peer not dropped: ended=%v err=%v", dead.ended(), dead.err)
		}
		time.Sleep(time.Minute)
		if alive.ended() {
			t.Fatalf("a client answering pings was dropped: %v", alive.err)
		}
		if n := len(ofType(alive.all(), TypePing)); n < 4 {
			t.Errorf("alive got %d pings in 76s", n)
		}
	})
}

// TestHelloDeadlineIndependentOfPing checks that the keepalive settings
// do not move the hello deadline: short pings leave it at its 30 s default,
// and long pings do not stretch a short HelloTimeout.
func TestHelloDeadlineIndependentOfPing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, &Config{PingInterval: 2 * time.Second, PingTimeout: 2 * time.Second})
		silent := hs.connect("silent", false)
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if silent.ended() {
			t.Fatalf("a 2 s ping timeout ended a session after 20 s without hello: %v (the default hello deadline is 30 s)", silent.err)
		}
		time.Sleep(10*time.Second + time.Second) // + a tick of the housekeeping
		synctest.Wait()
		if !silent.ended() || !errors.Is(silent.err, ErrDisconnected) {
			t.Errorf("no hello within 30 s must disconnect: ended=%v err=%v", silent.ended(), silent.err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, &Config{PingInterval: time.Hour, PingTimeout: time.Hour, HelloTimeout: 3 * time.Second})
		silent := hs.connect("silent", false)
		time.Sleep(3*time.Second + time.Second)
		synctest.Wait()
		if !silent.ended() || !errors.Is(silent.err, ErrDisconnected) {
			t.Errorf("no hello within HelloTimeout (3 s) must disconnect even with hour-long pings: ended=%v err=%v",
				silent.ended(), silent.err)
		}
	})
}

func TestDisconnectUser(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, nil)
		alice := hs.login("alice", false)
		b1 := hs.login("bob", false)
		b2 := hs.login("bob", false)
		alice.take()
		if n := hs.h.Disconnect("bob", "account deleted"); n != 2 {
			t.Fatalf("Disconnect = %d, want 2", n)
		}
		synctest.Wait()
		for _, b := range []*client{b1, b2} {
			all := b.all()
			if !b.ended() || all[len(all)-1].Text != "disconnected by the server: account deleted" {
				t.Errorf("bob's session: ended=%v last=%+v", b.ended(), all[len(all)-1])
			}
		}
		if q := ofKind(alice.take(), KindQuit); len(q) != 1 || q[0].Text != "disconnected: account deleted" {
			t.Errorf("alice wants bob's quit: %s", dump(q))
		}
		if n := hs.h.Disconnect("bob", "again"); n != 0 {
			t.Errorf("Disconnect of an offline user = %d", n)
		}
	})
}

func TestShutdownNoticeAndDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		alice := hs.login("alice", false)
		bob := hs.login("bob", false)
		for i := range 20 {
			alice.say("#general", fmt.Sprint(i))
		}
		// No Wait: the shutdown races the fan-out, and must still drain.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if err := hs.h.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if time.Since(start) != 0 {
			t.Errorf("a drain with readers took %v of fake time", time.Since(start))
		}
		for _, c := range []*client{alice, bob} {
			<-c.done
			if c.err != ErrClosed {
				t.Errorf("%s: Serve = %v, want ErrClosed", c.name, c.err)
			}
			all := c.all()
			last := all[len(all)-1]
			if last.Kind != KindNotice || last.Text != "the server is shutting down" {
				t.Errorf("%s: last event %+v", c.name, last)
			}
			if !c.conn.isClosed() {
				t.Errorf("%s: conn not closed", c.name)
			}
			if q := ofKind(all, KindQuit); len(q) != 0 {
				t.Errorf("no quit storm at shutdown: %s", dump(q))
			}
		}
		// Every message alice's requests created before the shutdown was
		// delivered: bob's messages equal alice's acks.
		if a, m := len(ofType(alice.all(), TypeAck)), len(ofKind(bob.all(), KindMsg)); a != m {
			t.Errorf("alice has %d acks but bob %d messages", a, m)
		}
		late := hs.connect("carol", false)
		<-late.done
		if late.err != ErrClosed {
			t.Errorf("Serve after shutdown = %v", late.err)
		}
	})
}

func TestShutdownDeadlineClosesStalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, &Config{FlushTimeout: time.Hour})
		alice := hs.login("alice", false)
		stuck := hs.login("stuck", false)
		stuck.conn.stall.Store(true)
		alice.say("#general", "x") // stuck's writer now blocks
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		if err := hs.h.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want deadline exceeded", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("Shutdown took %v, want the ctx deadline", d)
		}
		<-stuck.done
		<-alice.done
		if !stuck.conn.isClosed() {
			t.Errorf("stalled conn not closed")
		}
	})
}

func TestServeContextCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		conn := newFakeConn(t)
		done := make(chan error, 1)
		go func() { done <- hs.h.Serve(ctx, conn, Identity{User: "alice"}) }()
		conn.in <- mustEncode(t, &Request{Type: TypeHello, V: 1})
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve = %v, want context.Canceled", err)
		}
		if !conn.isClosed() {
			t.Errorf("conn not closed")
		}
	})
}

func TestInvalidIdentityRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, nil)
		c := hs.connect("no spaces allowed", false)
		synctest.Wait()
		if !c.ended() || c.err == nil {
			t.Fatalf("invalid account name accepted")
		}
		if e := c.all(); len(e) != 1 || e[0].Code != CodeBadName {
			t.Errorf("want one bad_name error: %s", dump(e))
		}
	})
}

func TestMessageBodiesOnlyAtDebug(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, nil)
		alice := hs.login("alice", false)
		hs.login("bob", false)
		alice.say("#general", "the secret plan")
		alice.line("/msg bob another secret", "#general")
		synctest.Wait()
		logs := hs.logs.String()
		if !strings.Contains(logs, "secret plan") {
			t.Fatalf("debug log lacks the message (test is not testing): %s", logs)
		}
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "secret") && !strings.Contains(line, "level=DEBUG") {
				t.Errorf("message body above debug: %s", line)
			}
		}
	})
}

func TestRoomLimitEvictsQuietEmptyRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, &Config{MaxRooms: 3, FloodRate: -1})
		alice := hs.login("alice", false)
		alice.line("/join #a", "")
		alice.say("#a", "keep me")
		alice.line("/part #a", "")
		synctest.Wait()
		time.Sleep(time.Second)
		alice.line("/join #b", "")
		synctest.Wait()
		full := alice.line("/join #c", "") // #general, #a (empty, history), #b: #a goes
		synctest.Wait()
		mustAck(t, alice.take(), full)
		rooms := alice.line("/rooms", "")
		synctest.Wait()
		r := ofType(alice.take(), TypeReply)
		var names []string
		for _, ri := range r[0].Rooms {
			names = append(names, ri.Room)
		}
		if !slices.Equal(names, []string{"#b", "#c", "#general"}) {
			t.Errorf("rooms after eviction for %s: %v", rooms, names)
		}
		no := alice.line("/join #d", "") // all three have members now
		synctest.Wait()
		mustFail(t, alice.take(), no, CodeRoomLimit)
	})
}

func mustEncode(t *testing.T, r *Request) []byte {
	t.Helper()
	p, err := EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCommandEdgeCases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := newHarness(t, noFlood)
		root := hs.login("root", true)
		bob := hs.login("bob", false)
		bob.take()
		me := root.id()
		root.send(&Request{Type: TypeCmd, ID: me, Cmd: "ME", Room: "#general", Args: []string{"waves"}})
		badDur := root.id()
		root.send(&Request{Type: TypeCmd, ID: badDur, Cmd: "ban", Args: []string{"bob", "forever"}})
		badName := root.line("/whois b@d", "")
		noRoom := root.say("#nowhere", "hello?")
		notIn := root.say("#general2", "x")
		usage := root.id()
		root.send(&Request{Type: TypeCmd, ID: usage, Cmd: "whois"})
		long := strings.Repeat("é", MaxReason) // 512 bytes: cut to 256 on a rune boundary
		part := root.id()
		root.send(&Request{Type: TypeCmd, ID: part, Cmd: "part", Room: "#general", Args: []string{long}})
		synctest.Wait()
		evs := root.take()
		if a := mustAck(t, evs, me); a.MID == 0 {
			t.Errorf("cmd me ack lacks the mid")
		}
		mustFail(t, evs, badDur, CodeBadRequest)
		mustFail(t, evs, badName, CodeBadName)
		mustFail(t, evs, noRoom, CodeNotMember)
		mustFail(t, evs, notIn, CodeNotMember)
		mustFail(t, evs, usage, CodeBadRequest)
		mustAck(t, evs, part)
		got := bob.take()
		if m := ofKind(got, KindMe); len(m) != 1 || m[0].Text != "waves" || m[0].From != "root" {
			t.Errorf("cmd me: %s", dump(got))
		}
		p := ofKind(got, KindPart)
		if len(p) != 1 || len(p[0].Text) != MaxReason || p[0].Text != long[:MaxReason] {
			t.Errorf("reason not cut to %d bytes on a character boundary: %d bytes", MaxReason, len(p[0].Text))
		}
		if hs.h.Banned("bob") {
			t.Errorf("a ban with a bad duration was applied")
		}
	})
}

func TestTruncateUTF8(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 3, "hel"},
		{"héllo", 2, "h"}, // é is 2 bytes: do not split it
		{"héllo", 3, "hé"},
		{"☃☃", 4, "☃"},
	} {
		if got := truncateUTF8(tc.in, tc.n); got != tc.want {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestFastSenderLosesNoReplies: a client that sends far more requests than
// its queue holds, while its writer is slow, must still get every echo and
// every ack. The hub stops reading its requests while its queue is more
// than half full instead of dropping what it owes it.
func TestFastSenderLosesNoReplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const queue, n = 8, 200
		hs := newHarness(t, &Config{FloodRate: -1, SendQueue: queue})
		conn := newFakeConn(t)
		conn.gate = make(chan struct{})
		alice := hs.connectConn("alice", false, conn)
		stop := make(chan struct{})
		go func() { // a slow reader: one write at a time, when the test says
			for {
				select {
				case conn.gate <- struct{}{}:
				case <-stop:
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		defer close(stop)
		alice.send(&Request{Type: TypeHello, V: 1})
		ids := make([]string, n)
		for i := range n {
			ids[i] = alice.say("#general", fmt.Sprint(i))
		}
		time.Sleep(time.Duration(4*n) * 10 * time.Millisecond)
		synctest.Wait()
		evs := alice.take()
		if testing.Verbose() {
			for _, e := range evs {
				t.Logf("%s %s %s %s", e.Type, e.ID, e.Kind, e.Text)
			}
			t.Logf("ended=%v err=%v stats=%+v", alice.ended(), alice.err, hs.h.Stats())
		}
		for _, id := range ids {
			mustAck(t, evs, id)
		}
		if m := ofKind(evs, KindMsg); len(m) != n {
			t.Fatalf("alice saw %d of her %d messages", len(m), n)
		}
		if st := hs.h.Stats(); st.Dropped != 0 {
			t.Fatalf("dropped %d events for a sender that kept reading", st.Dropped)
		}
	})
}
