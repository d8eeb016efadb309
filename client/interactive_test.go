package client

import (
	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"securechat/chat"
	"securechat/client/tui"
)

// The tests in this file run the interactive client (runInteractive) in
// process: a tui.UI over pipes stands for the terminal, and a scripted
// chat server for the server.

// termRun is runInteractive in the background with a pipe terminal.
type termRun struct {
	t      *testing.T
	keys   net.Conn
	mu     sync.Mutex
	screen strings.Builder // everything written, escape sequences removed
	change chan struct{}
	done   chan struct{}
	err    error
}

var escapeRE = regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]|\r")

func startTerm(t *testing.T, s *fakeChatServer, hold chan struct{}) *termRun {
	t.Helper()
	return startTermWith(t, s, hold, s.config(t))
}

func startTermWith(t *testing.T, s *fakeChatServer, hold chan struct{}, cfg *Config) *termRun {
	t.Helper()
	cfg.testOnlyRedialDelay = 10 * time.Millisecond
	cfg.testOnlyRedialHold = hold
	ctx, cancel := context.WithCancel(context.Background())
	l, err := Dial(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	uiIn, keys := net.Pipe()
	uiOut, screenEnd := net.Pipe()
	r := &termRun{t: t, keys: keys, change: make(chan struct{}), done: make(chan struct{})}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		buf := make([]byte, 4096)
		for {
			n, err := screenEnd.Read(buf)
			r.mu.Lock()
			r.screen.WriteString(escapeRE.ReplaceAllString(string(buf[:n]), ""))
			close(r.change)
			r.change = make(chan struct{})
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	ui := tui.New(struct {
		io.Reader
		io.Writer
	}{uiIn, uiOut}, tui.Options{Self: "alice", NoColor: true, NoTimestamps: true, NoBell: true})
	go func() {
		defer close(r.done)
		r.err = runInteractive(ctx, cfg, l, ui)
	}()
	t.Cleanup(func() {
		cancel()
		keys.Close()
		<-r.done
		uiIn.Close()
		uiOut.Close()
		screenEnd.Close()
		<-drained
	})
	return r
}

func (r *termRun) typeKeys(s string) {
	r.t.Helper()
	r.keys.SetWriteDeadline(time.Now().Add(fakeServerWait))
	if _, err := io.WriteString(r.keys, s); err != nil {
		r.t.Fatalf("typing %q: %v", s, err)
	}
}

// waitScreen waits until the output holds want (escape sequences removed).
func (r *termRun) waitScreen(want string) {
	r.t.Helper()
	deadline := time.After(fakeServerWait)
	for {
		r.mu.Lock()
		got := r.screen.String()
		ch := r.change
		r.mu.Unlock()
		if strings.Contains(got, want) {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			r.t.Fatalf("never saw %q; the terminal got:\n%s", want, got)
		}
	}
}

func (r *termRun) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Count(r.screen.String(), s)
}

// sessions hands each connection of a fake server to the test in turn,
// logged in.
func sessions(t *testing.T, limits *chat.Limits) (*fakeChatServer, <-chan *fakeConn) {
	conns := make(chan *fakeConn, 4)
	s := startFakeChatServer(t, func(c *fakeConn) {
		if !c.login(limits) {
			return
		}
		c.send(&chat.Event{Type: chat.TypeRoom, Room: "#general", Members: []string{"alice", "bob"}})
		done := make(chan struct{})
		c.done = done
		conns <- c
		select {
		case <-done:
		case <-t.Context().Done(): // the test ended early
		}
	})
	return s, conns
}

func nextConn(t *testing.T, conns <-chan *fakeConn) *fakeConn {
	t.Helper()
	select {
	case c := <-conns:
		return c
	case <-time.After(fakeServerWait):
		t.Fatal("the client did not connect")
		return nil
	}
}

// nextMsg returns the next request that is not a pong, or fails.
func nextReq(t *testing.T, c *fakeConn) *chat.Request {
	t.Helper()
	got := make(chan *chat.Request, 1)
	go func() { got <- c.next() }()
	select {
	case req := <-got:
		if req == nil {
			t.Fatal("the client sent nothing more")
		}
		return req
	case <-time.After(fakeServerWait):
		c.sess.Abort()
		t.Fatal("the client sent nothing more")
		return nil
	}
}

// TestInteractiveTypedWhileReconnecting: a line entered while the client is
// reconnecting is refused on screen, never sent later; the prompt says the
// client is reconnecting; after the reconnect lines are sent again.
func TestInteractiveTypedWhileReconnecting(t *testing.T) {
	s, conns := sessions(t, nil)
	hold := make(chan struct{})
	r := startTerm(t, s, hold)
	c1 := nextConn(t, conns)
	r.waitScreen("[#general] >")
	c1.sess.Abort()
	close(c1.done)
	r.waitScreen("(reconnecting) >")
	r.typeKeys("rm -rf ~\r")
	r.waitScreen("not connected: the line was not sent")
	close(hold)

	c2 := nextConn(t, conns)
	r.waitScreen("reconnected to")
	r.typeKeys("hello again\r")
	req := nextReq(t, c2)
	if req.Type != chat.TypeMsg || req.Text != "hello again" {
		t.Fatalf("after the reconnect the client sent %+v, want the message typed after it", req)
	}
	c2.sess.Close()
	close(c2.done)
}

// TestInteractivePastePaced: lines pasted faster than the server's flood
// limit allows are queued and sent one at a time, each after the answer
// to the one before; a line refused as a flood is sent again after the
// wait, before the lines after it; the prompt shows how many wait. None
// is dropped.
func TestInteractivePastePaced(t *testing.T) {
	s, conns := sessions(t, &chat.Limits{Text: 4096, Topic: 300, Burst: 5, Rate: 1, History: 0, Ping: 30})
	r := startTerm(t, s, nil)
	c := nextConn(t, conns)
	r.waitScreen("[#general] >")

	var paste strings.Builder
	for i := 1; i <= 8; i++ {
		paste.WriteString("line " + string(rune('0'+i)) + "\r")
	}
	r.typeKeys(paste.String())

	first := nextReq(t, c)
	if first.Text != "line 1" {
		t.Fatalf("first request %+v, want line 1", first)
	}
	r.waitScreen("(7 waiting) >")
	c.send(&chat.Event{Type: chat.TypeError, ID: first.ID, Code: chat.CodeFlood, Text: "too many messages", RetryMS: 20})
	var got []string
	for len(got) < 8 {
		req := nextReq(t, c)
		got = append(got, req.Text)
		c.send(&chat.Event{Type: chat.TypeAck, ID: req.ID})
	}
	want := []string{"line 1", "line 2", "line 3", "line 4", "line 5", "line 6", "line 7", "line 8"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("the server got %q after the flood refusal, want %q", got, want)
	}
	if n := r.count("too many messages"); n != 0 {
		t.Errorf("the flood refusal was shown %d times; it is retried, not shown", n)
	}
	close(c.done)
}

// TestInteractiveIgnoreAndReply: /ignore hides a name's messages and DMs
// and lists the names; /reply answers the last DM.
func TestInteractiveIgnoreAndReply(t *testing.T) {
	s, conns := sessions(t, nil)
	r := startTerm(t, s, nil)
	c := nextConn(t, conns)
	r.waitScreen("[#general] >")

	r.typeKeys("/ignore bob\r")
	r.waitScreen("ignoring bob")
	r.typeKeys("/ignore\r")
	r.waitScreen("you ignore bob")
	c.send(&chat.Event{Type: chat.TypeMsg, Kind: chat.KindMsg, Room: "#general", From: "bob", Text: "spam one"})
	c.send(&chat.Event{Type: chat.TypeMsg, Kind: chat.KindDM, From: "bob", To: "alice", Text: "spam two"})
	c.send(&chat.Event{Type: chat.TypeMsg, Kind: chat.KindDM, From: "carol", To: "alice", Text: "psst"})
	r.waitScreen("psst")
	if n := r.count("spam"); n != 0 {
		t.Errorf("an ignored name's messages were shown %d times", n)
	}

	r.typeKeys("/reply got it\r")
	req := nextReq(t, c)
	if req.Type != chat.TypeMsg || req.To != "carol" || req.Text != "got it" {
		t.Errorf("/reply sent %+v, want a DM to carol", req)
	}
	r.typeKeys("/unignore bob\r")
	r.waitScreen("no longer ignoring bob")
	c.send(&chat.Event{Type: chat.TypeMsg, Kind: chat.KindMsg, Room: "#general", From: "bob", Text: "back again"})
	r.waitScreen("back again")
	close(c.done)
}

// TestInteractiveWhoisLocalTime: the whois reply's time is shown in local
// time as the chat lines are, not as the wire's UTC with milliseconds.
func TestInteractiveWhoisLocalTime(t *testing.T) {
	s, conns := sessions(t, nil)
	r := startTerm(t, s, nil)
	c := nextConn(t, conns)
	r.waitScreen("[#general] >")
	since := time.Now().Add(-time.Minute).UTC()
	wire := since.Format("2006-01-02T15:04:05.000Z07:00")
	c.send(&chat.Event{Type: chat.TypeReply, Cmd: "whois", User: "bob", Since: wire,
		Text: "bob is online in 1 session(s) since " + wire})
	r.waitScreen("bob is online in 1 session(s) since " + localTime(since, time.Now()))
	if n := r.count(wire); n != 0 {
		t.Errorf("the wire's timestamp %s is on screen", wire)
	}
	close(c.done)
}

func TestLocalTime(t *testing.T) {
	now := time.Date(2026, 11, 30, 14, 0, 0, 0, time.Local)
	if got := localTime(now.Add(-time.Hour), now); got != "13:00" {
		t.Errorf("today: %q, want 13:00", got)
	}
	if got := localTime(now.Add(-48*time.Hour), now); got != "Sat 28 Nov 14:00" {
		t.Errorf("another day: %q", got)
	}
}
