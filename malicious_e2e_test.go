package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"securechat/chat"
	"securechat/handshake"
	"securechat/msgsig"
)

// The tests in this file run the real client binary against a malicious
// server: a test double that speaks the real protocol (handshake, records,
// chat layer) and relays what it likes. Whatever it forges, moves, replays
// or strips, the client must not show it as verified.

type anyPasswordVerifier struct{}

func (anyPasswordVerifier) Verify(context.Context, string, []byte) error { return nil }

// evilServer accepts connections, runs the server side of the handshake
// and hands each session to serve.
type evilServer struct {
	addr string
}

// evilSession is one session of an evilServer.
type evilSession struct {
	t    *testing.T
	sess *handshake.Session
}

func (c *evilSession) send(ev *chat.Event) {
	c.t.Helper()
	p, err := chat.EncodeEvent(ev)
	if err != nil {
		c.t.Errorf("encode %+v: %v", ev, err)
		return
	}
	c.sess.WriteMessage(p) // a client that has gone is the test's to notice
}

// next returns the next request other than a pong, or nil at the end.
func (c *evilSession) next() *chat.Request {
	for {
		p, err := c.sess.ReadMessage()
		if err != nil {
			return nil
		}
		req, err := chat.DecodeRequest(p)
		if err != nil {
			c.t.Errorf("the client sent a bad request %q: %v", p, err)
			return nil
		}
		if req.Type != chat.TypePong {
			return req
		}
	}
}

// answerAll acks every request until the client goes; commands get an
// empty reply, so that a script client's wait for them ends.
func (c *evilSession) answerAll(reply func(req *chat.Request) *chat.Event) {
	for req := c.next(); req != nil; req = c.next() {
		if req.Type == chat.TypeCmd {
			if ev := reply(req); ev != nil {
				ev.ID = req.ID
				c.send(ev)
				continue
			}
			c.send(&chat.Event{Type: chat.TypeReply, ID: req.ID, Cmd: req.Cmd})
			continue
		}
		c.send(&chat.Event{Type: chat.TypeAck, ID: req.ID, MID: 999})
	}
}

func startEvilServer(t *testing.T, serve func(c *evilSession)) *evilServer {
	t.Helper()
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sess, err := handshake.Server(ctx, conn, &handshake.ServerConfig{
					HostKey: hostKey, Verifier: anyPasswordVerifier{}, Transport: "tcp"})
				if err != nil {
					return
				}
				defer sess.Close()
				stop := context.AfterFunc(ctx, func() { sess.Abort() })
				defer stop()
				c := &evilSession{t: t, sess: sess}
				hello := c.next()
				if hello == nil || hello.Type != chat.TypeHello {
					t.Errorf("first request %+v, want hello", hello)
					return
				}
				c.send(&chat.Event{Type: chat.TypeWelcome, ID: hello.ID, V: 1, User: "bob",
					Rooms: []chat.RoomInfo{{Room: "#general", Count: 2}, {Room: "#other", Count: 2}}})
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	return &evilServer{addr: ln.Addr().String()}
}

// signer signs as one user with one key at a clock the test sets.
type signer struct {
	t    *testing.T
	from string
	priv ed25519.PrivateKey
}

func newSigner(t *testing.T, from string) *signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{t: t, from: from, priv: priv}
}

func (s *signer) pub() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

// event returns a msg event of kind to target (a room, or a dm's
// recipient), signed as s.from signed it at time at.
func (s *signer) event(kind, target, text string, at time.Time) *chat.Event {
	s.t.Helper()
	sender := &msgsig.Sender{Signer: s.priv, Now: func() time.Time { return at }}
	sg, err := sender.Sign(kind, target, s.from, text)
	if err != nil {
		s.t.Fatal(err)
	}
	ev := &chat.Event{Type: chat.TypeMsg, MID: 1, TS: time.Now().UTC().Format(time.RFC3339Nano), Kind: kind,
		From: s.from, Text: text, Key: sg.Key, Sig: sg.Sig, Ctr: sg.Ctr, Cts: sg.Cts}
	if kind == chat.KindDM {
		ev.To = target
	} else {
		ev.Room = target
	}
	return ev
}

// maliciousCase is one thing the malicious server does, and the mark the
// recipient must give it.
type maliciousCase struct {
	name   string
	ev     *chat.Event
	sig    string // the mark wanted: never "verified" for an attack
	reason string
}

// maliciousScript is what the malicious server sends bob (who logged in by
// password and pins alice on first sight): alice's genuine messages, which
// verify, and each attack on them, which must not.
func maliciousScript(t *testing.T) []maliciousCase {
	alice := newSigner(t, "alice")
	mallory := newSigner(t, "alice") // another key, signing as "alice"
	now := time.Now()
	copyOf := func(ev *chat.Event) *chat.Event { c := *ev; return &c }

	// Offline DMs and history, signed two hours ago.
	dm := alice.event(chat.KindDM, "bob", "offline dm", now.Add(-2*time.Hour))
	dm.History = true
	hist := alice.event(chat.KindMsg, "#general", "from history", now.Add(-2*time.Hour+time.Second))
	hist.History = true
	dupDM, dupHist := copyOf(dm), copyOf(hist)

	// A message alice signed an hour ago that bob never saw, shown now.
	stale := alice.event(chat.KindMsg, "#general", "signed an hour ago", now.Add(-time.Hour))
	hello := alice.event(chat.KindMsg, "#general", "hello", now)

	forged := mallory.event(chat.KindMsg, "#general", "send me your password", now)
	forged.Key = msgsig.EncodeKey(alice.pub()) // claimed to be alice's key

	otherRoom := copyOf(hello)
	otherRoom.Room = "#other"
	again := copyOf(hello)

	stripped := &chat.Event{Type: chat.TypeMsg, MID: 1, TS: hello.TS, Kind: chat.KindMsg, Room: "#general",
		From: "alice", Text: "unsigned but from alice"}

	toDave := alice.event(chat.KindDM, "dave", "for dave only", now)
	redirected := copyOf(toDave)
	redirected.To = "bob"

	changed := mallory.event(chat.KindMsg, "#general", "new key, trust me", now)
	fresh := alice.event(chat.KindMsg, "#general", "still alice", now.Add(time.Second))

	return []maliciousCase{
		{"offline DM replayed verified", dm, "verified", ""},
		{"offline DM duplicated in the replay", dupDM, "failed", "replayed"},
		{"room room event", nil, "", ""},
		{"history verified", hist, "verified", ""},
		{"history duplicated in the replay", dupHist, "failed", "replayed"},
		{"replayed later (old timestamp)", stale, "failed", "stale"},
		{"genuine live message", hello, "verified", ""},
		{"forged with alice's key claimed", forged, "failed", "bad_signature"},
		{"replayed into another room", otherRoom, "failed", "bad_signature"},
		{"replayed again (old counter)", again, "failed", "replayed"},
		{"signature stripped", stripped, "failed", "signature_missing"},
		{"dm misdirected to another recipient", toDave, "failed", "misdirected"},
		{"dm re-addressed to bob", redirected, "failed", "bad_signature"},
		{"alice's key changed", changed, "failed", "key_changed"},
		{"alice again with her pinned key", fresh, "verified", ""},
	}
}

// serveMalicious sends the cases in order (a room event where a case has
// none), then a notice "end of attacks", and acks whatever comes.
func serveMalicious(cases []maliciousCase) func(c *evilSession) {
	return func(c *evilSession) {
		for _, k := range cases {
			if k.ev == nil {
				c.send(&chat.Event{Type: chat.TypeRoom, Room: "#general", Members: []string{"alice", "bob"}})
				c.send(&chat.Event{Type: chat.TypeRoom, Room: "#other", Members: []string{"alice", "bob"}})
				continue
			}
			c.send(k.ev)
		}
		c.send(&chat.Event{Type: chat.TypeMsg, MID: 2, Kind: chat.KindNotice, Text: "end of attacks"})
		c.answerAll(func(*chat.Request) *chat.Event { return nil })
	}
}

// TestE2EMaliciousServerScript: the real client in script mode, against a
// server that forges a message from alice, replays her signed message into
// another room, again, and an hour later, strips her signature, re-addresses
// her DM, duplicates history, and changes her key. Every attack is marked
// failed with its reason in the JSON; alice's genuine messages verify; the
// changed key is announced once on standard error.
func TestE2EMaliciousServerScript(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	cases := maliciousScript(t)
	s := startEvilServer(t, serveMalicious(cases))

	bob := e.startHeld("bob", "connect", "--transport", "tcp", "--user", "bob", "--password-file", e.passwordFile("bob"),
		"--known-hosts", e.knownHosts(), "--host-key-check", "accept-new",
		"--known-users", filepath.Join(e.dir, "bob", "known_users"), "--json", s.addr)
	bob.expect(`"text":"end of attacks"`)
	bob.closeStdin()
	if code := bob.exit(); code != 0 {
		t.Fatalf("bob: exit %d", code)
	}

	var got []maliciousCase
	for _, l := range bob.stdoutLines() {
		var ev struct {
			Kind, Room, From, To, Text string
			History                    bool
			Sig                        string
			SigReason                  string `json:"sig_reason"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		switch ev.Kind {
		case "msg", "me", "dm":
			got = append(got, maliciousCase{name: ev.Room + ev.To + " " + ev.Text, sig: ev.Sig, reason: ev.SigReason})
		}
	}
	var want []maliciousCase
	for _, k := range cases {
		if k.ev != nil {
			want = append(want, k)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("bob printed %d messages, want %d:\n%s", len(got), len(want), bob.stdout())
	}
	for i, k := range want {
		if got[i].sig != k.sig || got[i].reason != k.reason {
			t.Errorf("%s (%s): marked %q %q, want %q %q", k.name, got[i].name, got[i].sig, got[i].reason, k.sig, k.reason)
		}
	}
	if n := strings.Count(bob.stderr(), "HAS CHANGED"); n != 1 {
		t.Errorf("the changed key was announced %d times on standard error, want once:\n%s", n, bob.stderr())
	}
}

// TestE2EMaliciousServerInteractive: the same attacks against the
// interactive client in a terminal: alice's genuine messages carry ✓,
// every attack carries !! and its reason, and the changed key is announced.
func TestE2EMaliciousServerInteractive(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	cases := maliciousScript(t)
	s := startEvilServer(t, serveMalicious(cases))

	m, _ := startTmuxClient(t, e, "bobtty", []string{"SECURECHAT_PASSWORD=" + e2ePassword("bob")},
		"--transport", "tcp", "--user", "bob", "--known-hosts", e.knownHosts(), "--host-key-check", "accept-new",
		"--known-users", filepath.Join(e.dir, "bob", "known_users"), "--no-color", "--no-timestamps", s.addr)
	lines := m.waitText("end of attacks")
	screen := strings.Join(lines, "\n")
	// The same text may come more than once (a replay): the nth case with
	// a text is the nth line showing it.
	seen := map[string]int{}
	for _, k := range cases {
		if k.ev == nil {
			continue
		}
		nth := seen[k.ev.Text]
		seen[k.ev.Text]++
		var line string
		for _, l := range lines {
			if strings.Contains(l, k.ev.Text) && !strings.Contains(l, "HAS CHANGED") {
				if nth == 0 {
					line = l
					break
				}
				nth--
			}
		}
		switch {
		case line == "":
			t.Errorf("%s: %q is not on the screen", k.name, k.ev.Text)
		case k.sig == "verified" && !strings.HasPrefix(line, "✓ "):
			t.Errorf("%s: shown as %q, want the mark ✓", k.name, line)
		case k.sig == "failed" && (!strings.HasPrefix(line, "!! ") || !strings.Contains(line, "[FAILED: "+k.reason+"]")):
			t.Errorf("%s: shown as %q, want !! and [FAILED: %s]", k.name, line, k.reason)
		}
	}
	if !strings.Contains(screen, "HAS CHANGED") {
		t.Errorf("the changed key was not announced:\n%s", screen)
	}
}

// TestE2EMaliciousServerReplayAfterRestart: a genuine live message shown to
// bob, and shown again live to bob's next run of the client, fails as
// replayed the second time: the counters file outlives the process.
func TestE2EMaliciousServerReplayAfterRestart(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	hello := newSigner(t, "alice").event(chat.KindMsg, "#general", "hello once", time.Now())
	s := startEvilServer(t, serveMalicious([]maliciousCase{{ev: hello}}))

	knownUsers := filepath.Join(e.dir, "bob", "known_users")
	for run, want := range []string{`"sig":"verified","sig_reason":""`, `"sig":"failed","sig_reason":"replayed"`} {
		bob := e.startHeld("bob", "connect", "--transport", "tcp", "--user", "bob", "--password-file", e.passwordFile("bob"),
			"--known-hosts", e.knownHosts(), "--host-key-check", "accept-new", "--known-users", knownUsers, "--json", s.addr)
		line := bob.expect(`"text":"hello once"`)
		bob.expect(`"text":"end of attacks"`)
		bob.closeStdin()
		if code := bob.exit(); code != 0 {
			t.Fatalf("bob, run %d: exit %d", run+1, code)
		}
		if !strings.Contains(line, want) {
			t.Errorf("bob, run %d: %s, want %s", run+1, line, want)
		}
	}
}

// TestE2EUserKeyCheckAsk: --user-key-check ask. The interactive client
// asks about alice's new key above its prompt, marks her message ??
// until the answer, and after "yes" her next message verifies; script
// mode never asks, so there ask is strict and her message fails
// key_unknown.
func TestE2EUserKeyCheckAsk(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	alice := newSigner(t, "alice")
	s := startEvilServer(t, func(c *evilSession) {
		c.send(alice.event(chat.KindMsg, "#general", "who am I", time.Now()))
		c.send(&chat.Event{Type: chat.TypeMsg, MID: 2, Kind: chat.KindNotice, Text: "end of attacks"})
		// The next request is the line typed after the answer (or the
		// script's end): then alice speaks again.
		req := c.next()
		if req == nil {
			return
		}
		c.send(alice.event(chat.KindMsg, "#general", "after the answer", time.Now()))
		c.send(&chat.Event{Type: chat.TypeAck, ID: req.ID, MID: 3})
		c.answerAll(func(*chat.Request) *chat.Event { return nil })
	})

	t.Run("interactive", func(t *testing.T) {
		knownUsers := filepath.Join(e.dir, "tty", "known_users")
		m, _ := startTmuxClient(t, e, "asktty", []string{"SECURECHAT_PASSWORD=" + e2ePassword("bob")},
			"--transport", "tcp", "--user", "bob", "--known-hosts", e.knownHosts(), "--host-key-check", "accept-new",
			"--known-users", knownUsers, "--user-key-check", "ask", "--no-color", "--no-timestamps", s.addr)
		m.waitText("signs with a key you have not seen before: " + msgsig.Fingerprint(alice.pub()))
		m.waitText("?? #general <alice> who am I [UNVERIFIED: key_pending]")
		m.waitText("(trust alice's key? yes/no)")
		m.typeText("yes")
		m.keys("Enter")
		m.waitText("pinned alice's key")
		m.typeText("thanks")
		m.keys("Enter")
		m.waitText("✓ #general <alice> after the answer")
	})
	t.Run("script", func(t *testing.T) {
		bob := e.start("bob", "x\n", "connect", "--transport", "tcp", "--user", "bob", "--password-file", e.passwordFile("bob"),
			"--known-hosts", e.knownHosts(), "--host-key-check", "accept-new", "--user-key-check", "ask",
			"--known-users", filepath.Join(e.dir, "script", "known_users"), "--json", s.addr)
		if l := bob.expect(`"text":"who am I"`); !strings.Contains(l, `"sig":"failed","sig_reason":"key_unknown"`) {
			t.Errorf("script mode with ask: %s, want failed key_unknown", l)
		}
		if code := bob.exit(); code != 0 {
			t.Errorf("bob: exit %d", code)
		}
	})
}
