package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"securechat/bench"
	"securechat/chat"
	"securechat/cipher"
	"securechat/handshake"
	"securechat/store"
	"securechat/transport"
)

// TestE2EStoredStateSurvivesRestart sets every kind of stored state on one
// server, restarts it on the same state directory, and finds each again
// through the real binary: queued DM, ban, mute, MOTD, topic, room list,
// rejoined rooms, history replay and paging, search, and the news notice.
func TestE2EStoredStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	for _, tr := range e2eTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			e.addUser("dave")
			state := filepath.Join(e.dir, "state")
			s := e.serve(tr, "127.0.0.1:0", state, "--flood-rate", "-1")

			alice := s.client("alice", []string{"hello from alice"})
			alice.expectExit(exitOK)
			carol := s.client("carol", []string{
				"/motd the stored motd",
				"/join #rust",
				"/topic #rust the rusty topic",
				"/me writes in rust before the restart",
				"in rust: ownership and borrowing",
				"/msg bob queued for you",
				"/ban dave 1h",
				"/mute bob 1h",
			})
			carol.expectExit(exitOK)
			carol.waitAny("bob is offline: the message is queued")
			// Something alice has not read yet.
			news := s.client("carol", []string{"/me in #general after alice left"}, "--room", "#general")
			news.expectExit(exitOK)

			s.stop()
			if _, err := os.Stat(filepath.Join(state, "chat.db")); err != nil {
				t.Fatalf("no database in the state directory: %v", err)
			}
			s = e.serve(tr, s.addr, state, "--flood-rate", "-1")

			// The ban: dave is refused.
			dave := s.client("dave", []string{"hi"})
			dave.exit()
			dave.waitAnyIn(dave.err, "banned")

			// The queued DM, marked, and the mute.
			bob := s.client("bob", []string{"muted words", "/history carol"})
			bob.expectExit(exitError) // the refused line
			bob.waitAny("arrived while you were offline")
			// Delivered as a replay (PROTOCOL.md §13.15: history and queued).
			bob.waitAny("[dm] (history) carol -> bob: queued for you")
			bob.waitAny("muted")
			// Once delivered, and once more from the conversation's history.
			bob.waitOut(bob.out, "the queued DM twice", func(lines []string) bool {
				n := 0
				for _, l := range lines {
					if strings.Contains(l, "[dm] (history) carol -> bob: queued for you") {
						n++
					}
				}
				return n >= 2
			})
			if n := bob.countLines("queued for you"); n != 2 {
				t.Errorf("bob saw the queued DM %d times, want once live and once in /history", n)
			}

			// MOTD, the rejoined room with its topic and history, paging
			// and search, all from the database.
			carol = s.client("carol", []string{
				"/topic #rust",
				"/history #rust 10",
				"/search ownership",
			})
			carol.expectExit(exitOK)
			carol.waitAny("the stored motd")
			carol.waitAny("[#rust] (history) carol: in rust: ownership and borrowing")
			carol.waitAny("topic of #rust: the rusty topic")
			carol.waitAny("3 message(s) of #rust; older ones: /history #rust before")
			if n := carol.countLines("(history) * carol writes in rust before the restart"); n < 2 {
				t.Errorf("the /me was replayed %d times (join and /history), want 2", n)
			}
			carol.waitAny("carol: in rust: ownership and borrowing")
			if !strings.Contains(strings.Join(carol.stdoutLines(), "\n"), "] carol: in rust: ownership") {
				t.Errorf("search found nothing")
			}

			// alice was in #general only: news there, none of #rust.
			alice = s.client("alice", []string{"/rooms"})
			alice.expectExit(exitOK)
			alice.waitAny("1 new message(s) in #general since")
			// The room list, with the topic of a room alice is not in.
			alice.waitAny("#rust (0): the rusty topic")
			if n := alice.countLines("new message(s) in #rust"); n != 0 {
				t.Errorf("alice got news of #rust, a room she was never in")
			}
			s.stop()
		})
	}
}

// TestE2EUserDelDeletesDirectMessages: user del removes an account's
// direct messages from the database, on both sides of the conversation.
func TestE2EUserDelDeletesDirectMessages(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	state := filepath.Join(e.dir, "state")
	s := e.serve("tcp", "127.0.0.1:0", state, "--flood-rate", "-1")
	bob := s.heldClient("bob")
	alice := s.client("alice", []string{"/msg bob a secret for bob"})
	alice.expectExit(exitOK)
	bob.expect("[dm] alice -> bob: a secret for bob")
	bob.closeStdin()
	bob.expectExit(exitOK)
	before := s.client("alice", []string{"/history bob"})
	before.expectExit(exitOK)
	before.waitAny("(history) alice -> bob: a secret for bob")

	out, stderr, code := e.run("user", "del", "--creds", e.creds, "--state-dir", state, "bob")
	if code != 0 || !strings.Contains(out, "deleted the direct messages of bob") {
		t.Fatalf("user del: exit %d\n%s\n%s", code, out, stderr)
	}
	after := s.client("alice", []string{"/history bob"})
	after.expectExit(exitOK)
	after.waitAny("no earlier messages in your direct messages with bob")
	if after.countLines("a secret for bob") != 0 {
		t.Error("the deleted account's direct message is still in alice's history")
	}
	s.stop()
}

var killRounds = flag.Int("kill-rounds", 2, "TestE2EKillUnderLoad: how many times the server is killed under load (20 for the full check)")

// TestE2EKillUnderLoad kills the server with SIGKILL while a client sends
// as fast as it can, -kill-rounds times in a row, and checks after each
// restart that every message whose acknowledgement reached the sender is
// in the stored history, that none is there twice, and that ids increase.
func TestE2EKillUnderLoad(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	e.addUser("k0")
	state := filepath.Join(e.dir, "state")
	s := e.serve("tcp", "127.0.0.1:0", state, "--flood-rate", "-1")
	acked := make(map[string]bool) // over all rounds
	var lastMID uint64
	for round := range *killRounds {
		c := e2eChatClient(t, s, "k0")
		acks := make(chan string, 1<<16)
		go func() {
			defer close(acks)
			for {
				ev, err := c.next()
				if err != nil {
					return
				}
				if ev.Type == chat.TypeAck {
					acks <- ev.ID
				}
			}
		}()
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%d-%d", round, i)
				if c.send(&chat.Request{Type: chat.TypeMsg, ID: id, Room: "#general", Text: id}) != nil {
					return
				}
			}
		}()
		// Kill at a moment that differs from round to round, with
		// messages in flight.
		killAt := 20 + rand.IntN(200)
		n := 0
		for id := range acks {
			acked[id] = true
			if n++; n == killAt {
				s.signal(syscall.SIGKILL)
			}
		}
		s.exit()
		c.sess.Close()
		if n < killAt {
			t.Fatalf("round %d: only %d acks before the connection ended", round, n)
		}

		s = e.serve("tcp", s.addr, state, "--flood-rate", "-1")
		r := e2eChatClient(t, s, "k0")
		stored := r.allHistory("#general")
		r.sess.Close()
		seen := make(map[string]bool)
		var prev uint64
		for _, m := range stored {
			if seen[m.Text] {
				t.Fatalf("round %d: %q is stored twice", round, m.Text)
			}
			seen[m.Text] = true
			if m.MID <= prev {
				t.Fatalf("round %d: id %d after %d", round, m.MID, prev)
			}
			prev = m.MID
		}
		if prev <= lastMID {
			t.Fatalf("round %d: the newest id %d is not above the last round's %d", round, prev, lastMID)
		}
		lastMID = prev
		for id := range acked {
			if !seen[id] {
				t.Fatalf("round %d: %s was acknowledged but is not stored", round, id)
			}
		}
		t.Logf("round %d: %d acknowledged so far, %d stored", round, len(acked), len(stored))
	}
	s.stop()
}

// e2eClient is a chat session made with the protocol packages, for tests
// that need every event (acks) rather than the client's output.
type e2eClient struct {
	t    *testing.T
	sess *handshake.Session
	seq  int
}

func e2eChatClient(t *testing.T, s *e2eServer, user string) *e2eClient {
	t.Helper()
	tr, err := transport.Lookup(s.transport)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	target := &bench.Target{Transport: tr, Addr: s.addr, Fingerprint: s.fingerprint, Prefix: user, Accounts: 1,
		Password: []byte(e2ePassword(user))}
	// Account names are Prefix plus a number; user ends in one.
	target.Prefix = strings.TrimRight(user, "0123456789")
	sess, err := target.Dial(ctx, 0)
	if err != nil {
		t.Fatalf("login as %s: %v", user, err)
	}
	c := &e2eClient{t: t, sess: sess}
	t.Cleanup(func() { sess.Close() })
	if err := c.send(&chat.Request{Type: chat.TypeHello, V: 1, ID: "h"}); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := c.next()
		if err != nil {
			t.Fatalf("%s: before welcome: %v", user, err)
		}
		if ev.Type == chat.TypeWelcome {
			return c
		}
	}
}

func (c *e2eClient) send(r *chat.Request) error {
	p, err := chat.EncodeRequest(r)
	if err != nil {
		return err
	}
	return c.sess.WriteMessage(p)
}

// next returns the next chat event.
func (c *e2eClient) next() (*chat.Event, error) {
	for {
		typ, p, err := c.sess.ReadRecord()
		if err != nil {
			return nil, err
		}
		if typ == cipher.TypeApp {
			return chat.DecodeEvent(p)
		}
	}
}

// allHistory pages back through room's stored history with /history
// before, and returns it oldest first.
func (c *e2eClient) allHistory(room string) []*chat.Event {
	c.t.Helper()
	c.sess.SetReadDeadline(time.Now().Add(e2eWait))
	// Whatever the login brought (the replay on join) comes before the pong.
	if err := c.send(&chat.Request{Type: chat.TypePing, ID: "drain"}); err != nil {
		c.t.Fatal(err)
	}
	for {
		ev, err := c.next()
		if err != nil {
			c.t.Fatalf("reading: %v", err)
		}
		if ev.Type == chat.TypePong && ev.ID == "drain" {
			break
		}
	}
	var all []*chat.Event
	args := []string{"200"}
	for page := 0; ; page++ {
		id := fmt.Sprintf("page-%d", page)
		if err := c.send(&chat.Request{Type: chat.TypeCmd, ID: id, Cmd: "history", Room: room, Args: args}); err != nil {
			c.t.Fatal(err)
		}
		var got []*chat.Event
		var oldest uint64
		for {
			ev, err := c.next()
			if err != nil {
				c.t.Fatalf("reading history: %v", err)
			}
			if ev.Type == chat.TypeMsg && ev.History && ev.Kind == chat.KindMsg && ev.Room == room {
				got = append(got, ev)
			}
			if ev.Type == chat.TypeReply && ev.ID == id {
				oldest = ev.MID
			}
			if ev.ID == id && ev.Type == chat.TypeError {
				c.t.Fatalf("history: %s", ev.Text)
			}
			if ev.ID == id && ev.Type == chat.TypeAck {
				break
			}
		}
		all = append(got, all...)
		if oldest == 0 {
			return all
		}
		args = []string{"before", strconv.FormatUint(oldest, 10), "200"}
	}
}

// addUser adds an account with a throwaway password.
func (e *e2eEnv) addUser(u string) {
	e.t.Helper()
	if err := os.WriteFile(e.passwordFile(u), []byte(e2ePassword(u)+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	if _, stderr, code := e.run("user", "add", "--creds", e.creds, "--password-file", e.passwordFile(u),
		"--argon2-params", e2eArgon2, u); code != 0 {
		e.t.Fatalf("user add %s: exit %d\n%s", u, code, stderr)
	}
}

var store1M = flag.Int("store-messages", 0, "TestE2EStoreLarge: stored messages to measure the server with (1000000 for the BENCHMARKS.md figures; 0 skips)")

// TestE2EStoreLarge fills a database with -store-messages messages in 100
// rooms, starts the real server on it and measures, end to end over TCP:
// the time from start to serving, /history 50 pages that the store must
// answer, /search over 50 rooms, and the database size per message. It
// logs the figures and asserts only that every answer came.
func TestE2EStoreLarge(t *testing.T) {
	if *store1M <= 0 {
		t.Skip("give -store-messages N to run it")
	}
	e := newE2EEnv(t)
	e.addUser("k0")
	state := filepath.Join(e.dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(state, "chat.db")
	st, err := store.Open(dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	words := strings.Fields("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu")
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	base := time.Now().Add(-24 * time.Hour)
	for id := 1; id <= *store1M; {
		var b strings.Builder
		for i := range 4 + r.IntN(8) {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[int(r.ExpFloat64()*4)%len(words)])
		}
		room := fmt.Sprintf("#room%d", r.IntN(100))
		if id%10 == 0 {
			room = "#general"
		}
		m := store.Message{ID: uint64(id), Time: base.Add(time.Duration(id) * time.Millisecond), Kind: store.KindMsg,
			Room: room, From: "k0", Text: b.String()}
		switch err := st.Append(m, nil); {
		case errors.Is(err, store.ErrBacklog):
			st.Sync()
			continue
		case err != nil:
			t.Fatal(err)
		}
		id++
	}
	for i := range 100 {
		st.AddRoom(fmt.Sprintf("#room%d", i))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	fill := time.Since(start)
	var size int64
	for _, f := range []string{"chat.db", "chat.db-wal"} {
		if fi, err := os.Stat(filepath.Join(state, f)); err == nil {
			size += fi.Size()
		}
	}

	t0 := time.Now()
	s := e.serve("tcp", "127.0.0.1:0", state, "--flood-rate", "-1")
	startup := time.Since(t0)
	c := e2eChatClient(t, s, "k0")
	c.sess.SetReadDeadline(time.Now().Add(5 * time.Minute))
	for i := range 49 {
		c.roundTrip(&chat.Request{Type: chat.TypeCmd, Cmd: "join", Room: fmt.Sprintf("#room%d", i)})
	}
	var hist, search []time.Duration
	for i := range 300 {
		before := 1 + r.IntN(*store1M)
		d := c.roundTrip(&chat.Request{Type: chat.TypeCmd, Cmd: "history", Room: "#general",
			Args: []string{"before", strconv.Itoa(before), "50"}})
		hist = append(hist, d)
		if i%3 == 0 {
			q := words[r.IntN(8)] + " " + words[8+r.IntN(8)]
			search = append(search, c.roundTrip(&chat.Request{Type: chat.TypeCmd, Cmd: "search", Args: []string{q}}))
		}
	}
	s.stop()
	t.Logf("%d messages: filled through the store in %v; %.0f bytes per message (chat.db + wal %d MiB)",
		*store1M, fill.Round(time.Millisecond), float64(size)/float64(*store1M), size>>20)
	t.Logf("serve start-up to the serving line: %v", startup.Round(time.Millisecond))
	t.Logf("/history 50 (from the store), %d requests: %s", len(hist), percentiles(hist))
	t.Logf("/search, two words, 50 rooms, %d requests: %s", len(search), percentiles(search))
}

// roundTrip sends r and waits for its ack; it returns how long that took.
func (c *e2eClient) roundTrip(r *chat.Request) time.Duration {
	c.t.Helper()
	c.seq++
	r.ID = fmt.Sprintf("rt-%d", c.seq)
	start := time.Now()
	if err := c.send(r); err != nil {
		c.t.Fatal(err)
	}
	for {
		ev, err := c.next()
		if err != nil {
			c.t.Fatal(err)
		}
		if ev.ID == r.ID && ev.Type == chat.TypeError {
			c.t.Fatalf("%s: %s %s", r.Cmd, ev.Code, ev.Text)
		}
		if ev.ID == r.ID && ev.Type == chat.TypeAck {
			return time.Since(start)
		}
	}
}

func percentiles(ds []time.Duration) string {
	slices.Sort(ds)
	at := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return fmt.Sprintf("p50 %v, p99 %v, max %v", at(0.5).Round(10*time.Microsecond),
		at(0.99).Round(10*time.Microsecond), ds[len(ds)-1].Round(10*time.Microsecond))
}

// TestE2EStoreUnusableAtStart: a database the server cannot open stops it
// at start with an error naming the file, before it listens.
func TestE2EStoreUnusableAtStart(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	state := filepath.Join(e.dir, "state")
	// A directory where the database file should be: no SQLite can use it.
	if err := os.MkdirAll(filepath.Join(state, "chat.db"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := e.start("server", "", "serve", "--listen", "127.0.0.1:0", "--creds", e.creds, "--state-dir", state)
	if code := p.exit(); code != exitError {
		t.Fatalf("serve on an unusable database: exit %d, want %d", code, exitError)
	}
	errText := p.stderr()
	if !strings.Contains(errText, filepath.Join(state, "chat.db")) || !strings.Contains(errText, "--store memory") {
		t.Errorf("the error does not name the database and the way out:\n%s", errText)
	}
	if strings.Contains(p.stdout(), "serving") {
		t.Error("the server listened although its database is unusable")
	}
}
