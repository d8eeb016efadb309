package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"securechat/chat"
	"securechat/handshake"
	"securechat/transport"
)

// The tests in this file run the client's session logic (RunScript) in
// process against a scripted chat server: the real handshake and record
// layer on loopback TCP, and a chat layer each test writes to misbehave
// exactly as it needs to.

// fakeServerWait bounds every wait in these tests; it only turns a hang into
// a failure.
const fakeServerWait = 30 * time.Second

type anyPassword struct{}

func (anyPassword) Verify(context.Context, string, []byte) error { return nil }

// fakeChatServer accepts connections, runs the server handshake and hands
// each session to serve, which reads requests with next and answers with
// send.
type fakeChatServer struct {
	addr  string
	key   ed25519.PublicKey
	conns atomic.Int32
	stop  func()
}

// fakeConn is one session of a fakeChatServer.
type fakeConn struct {
	t    *testing.T
	sess *handshake.Session
	done chan struct{} // closed by a test that holds the session to end it
}

// next returns the next request other than a pong or an idle ping, or
// nil when the client has gone.
func (c *fakeConn) next() *chat.Request {
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
		if req.Type != chat.TypePong && req.Type != chat.TypePing {
			return req
		}
	}
}

func (c *fakeConn) send(ev *chat.Event) {
	p, err := chat.EncodeEvent(ev)
	if err != nil {
		c.t.Errorf("encode %+v: %v", ev, err)
		return
	}
	c.sess.WriteMessage(p) // a client that has gone is the test's to notice
}

// login reads the hello and sends the welcome, with limits if given.
func (c *fakeConn) login(limits *chat.Limits) bool {
	hello := c.next()
	if hello == nil || hello.Type != chat.TypeHello {
		c.t.Errorf("first request %+v, want hello", hello)
		return false
	}
	c.send(&chat.Event{Type: chat.TypeWelcome, ID: hello.ID, V: 1, User: "alice", Limits: limits,
		Rooms: []chat.RoomInfo{{Room: "#general", Count: 1}}})
	return true
}

func startFakeChatServer(t *testing.T, serve func(c *fakeConn)) *fakeChatServer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return startFakeNode(t, priv, anyPassword{}, serve)
}

// startFakeNode is startFakeChatServer with a given host key and password
// check, as for the nodes of one server. Its stop ends it early.
func startFakeNode(t *testing.T, priv ed25519.PrivateKey, verifier handshake.Verifier, serve func(c *fakeConn)) *fakeChatServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeChatServer{addr: ln.Addr().String(), key: priv.Public().(ed25519.PublicKey)}
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
			s.conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				sess, err := handshake.Server(ctx, conn, &handshake.ServerConfig{
					HostKey: priv, Verifier: verifier, Transport: "tcp"})
				if err != nil {
					return
				}
				defer sess.Close()
				stop := context.AfterFunc(ctx, func() { sess.Abort() })
				defer stop()
				serve(&fakeConn{t: t, sess: sess})
			}()
		}
	}()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			ln.Close()
			wg.Wait()
		})
	}
	t.Cleanup(s.stop)
	return s
}

// config is a script client's configuration for this server.
func (s *fakeChatServer) config(t *testing.T) *Config {
	tr, err := transport.Lookup("tcp")
	if err != nil {
		t.Fatal(err)
	}
	return &Config{
		Addr: s.addr, Transport: tr, User: "alice", HostKey: handshake.FixedHostKey(s.key),
		Password:  func(int) ([]byte, error) { return []byte("password"), nil },
		Reconnect: true,
	}
}

// scriptRun is RunScript running in the background.
type scriptRun struct {
	stdin  *io.PipeWriter
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	out    bytes.Buffer // read only after done
	errOut bytes.Buffer
}

// startScript runs a script client against s with a standard input the
// test writes to (and closes) through stdin.
func startScript(t *testing.T, s *fakeChatServer, asJSON bool) *scriptRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in, stdin := io.Pipe()
	r := &scriptRun{stdin: stdin, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = RunScript(ctx, s.config(t), in, &r.out, &r.errOut, asJSON)
	}()
	t.Cleanup(func() {
		cancel()
		stdin.Close()
		<-r.done
	})
	return r
}

// feed writes text to the client's standard input, then closes it. It
// does not wait: a client that stops reading must fail the test, not hang
// it (the cleanup's Close ends a blocked write).
func (r *scriptRun) feed(text string) {
	go func() {
		io.WriteString(r.stdin, text)
		r.stdin.Close()
	}()
}

// wait waits for RunScript to return.
func (r *scriptRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(fakeServerWait):
		r.cancel()
		<-r.done
		t.Fatalf("the script client did not end; it printed:\n%s\n%s", r.out.String(), r.errOut.String())
		return nil
	}
}

// plainFailure reports whether err is a failure of none of the kinds
// (the command line exits 1 for those).
func plainFailure(err error) bool {
	return err != nil && !errors.Is(err, ErrAuthFailed) &&
		!errors.Is(err, ErrServerNotAuthenticated) && !errors.Is(err, ErrConnectionLost)
}

// TestScriptSecondWelcome: a welcome in mid-session is a protocol error
// that ends the client with exit code 1, without reconnecting to the
// server that sent it.
func TestScriptSecondWelcome(t *testing.T) {
	s := startFakeChatServer(t, func(c *fakeConn) {
		if !c.login(nil) {
			return
		}
		c.send(&chat.Event{Type: chat.TypeRoom, Room: "#general", Members: []string{"alice"}})
		c.send(&chat.Event{Type: chat.TypeWelcome, V: 1, User: "mallory", Admin: true})
		for c.next() != nil {
		}
	})
	r := startScript(t, s, false)
	err := r.wait(t)
	if !plainFailure(err) {
		t.Fatalf("error %v, want a failure of no particular kind (exit code 1)", err)
	}
	if !strings.Contains(err.Error(), "second welcome") {
		t.Errorf("error %q does not name the second welcome", err)
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("the client connected %d times, want once: a protocol error is not retried", n)
	}
}

// TestScriptFloodRetryBounded: a flood error with retry_ms = 2^63-1 must not
// overflow into a wait in the past, which resent the refused line in a
// tight loop. The client must wait (the bound is minutes), so no second
// copy may arrive while the test watches.
func TestScriptFloodRetryBounded(t *testing.T) {
	t.Parallel()
	copies := make(chan string, 1<<16)
	s := startFakeChatServer(t, func(c *fakeConn) {
		if !c.login(&chat.Limits{Text: chat.MaxText, Topic: chat.MaxTopic, Burst: 5, Rate: 2}) {
			return
		}
		for req := c.next(); req != nil; req = c.next() {
			if req.Type == chat.TypeMsg {
				select {
				case copies <- req.Text:
				default: // counted enough: the test has failed
				}
				c.send(&chat.Event{Type: chat.TypeError, ID: req.ID, Code: chat.CodeFlood,
					Text: "slow down", RetryMS: math.MaxInt64})
			}
		}
	})
	r := startScript(t, s, false)
	r.feed("only once\n")
	select {
	case text := <-copies:
		if text != "only once" {
			t.Fatalf("the server got %q", text)
		}
	case <-time.After(fakeServerWait):
		t.Fatal("the line never arrived")
	}
	// Any resend now would be the bug: the legitimate one is minutes away,
	// and the bug resends in a tight loop, so a short look is enough.
	select {
	case <-copies:
		n := 2
		for len(copies) > 0 {
			<-copies
			n++
		}
		t.Fatalf("the refused line was resent at once (%d copies so far) instead of after a bounded wait", n)
	case <-time.After(200 * time.Millisecond):
	}
	r.cancel()
	if err := r.wait(t); err != nil {
		t.Errorf("interrupted client returned %v", err)
	}
}

func TestFloodWait(t *testing.T) {
	tests := []struct {
		retryMS int64
		want    time.Duration
	}{
		{math.MinInt64, minFloodWait},
		{-1, minFloodWait},
		{0, minFloodWait},
		{50, minFloodWait},
		{51, 51 * time.Millisecond},
		{1500, 1500 * time.Millisecond},
		{maxFloodWait.Milliseconds() - 1, maxFloodWait - time.Millisecond},
		{maxFloodWait.Milliseconds(), maxFloodWait},
		{math.MaxInt64 / int64(time.Millisecond), maxFloodWait},
		{math.MaxInt64/int64(time.Millisecond) + 1, maxFloodWait},
		{math.MaxInt64, maxFloodWait},
	}
	for _, tt := range tests {
		if got := floodWait(tt.retryMS); got != tt.want {
			t.Errorf("floodWait(%d) = %v, want %v", tt.retryMS, got, tt.want)
		}
	}
}

// hostile texts a malicious server might send: an OSC 52 clipboard write,
// a screen clear, a title change, a C1 CSI and a bidi override.
const (
	osc52       = "\x1b]52;c;cm0gLXJmIH4K\a"
	clearScreen = "\x1b[2J\x1b[H"
	hostileText = "text" + osc52 + clearScreen + "\x1b]0;pwned\x1b\\" + "\u009b31m" + "\u202e"
)

// TestScriptSanitisesServerText: nothing the server sends reaches the
// terminal as a control sequence, not even through the error a kick
// turns into, which is printed on stderr.
func TestScriptSanitisesServerText(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		s := startFakeChatServer(t, func(c *fakeConn) {
			if !c.login(nil) {
				return
			}
			c.send(&chat.Event{Type: chat.TypeRoom, Room: "#general", Members: []string{"alice", "bob" + osc52}})
			c.send(&chat.Event{Type: chat.TypeMsg, MID: 1, Kind: chat.KindMsg, Room: "#general", From: "bob", Text: hostileText})
			c.send(&chat.Event{Type: chat.TypeMsg, MID: 2, Kind: chat.KindMsg, Room: "#general", From: "bob" + clearScreen, Text: "hi"})
			c.send(&chat.Event{Type: chat.TypeMsg, MID: 3, Kind: "weird" + osc52, Room: "#general", From: "bob", Text: "odd kind"})
			c.send(&chat.Event{Type: chat.TypeError, Code: chat.CodeBadRequest + osc52, Text: "bad\n" + hostileText})
			c.send(&chat.Event{Type: chat.TypeReply, Cmd: "motd", Text: "line one\n" + hostileText})
			// The server ends the session after a kick (PROTOCOL.md §13.12).
			c.send(&chat.Event{Type: chat.TypeError, Code: chat.CodeKicked, Text: "you were kicked: " + hostileText})
		})
		r := startScript(t, s, asJSON)
		err := r.wait(t)
		if !plainFailure(err) {
			t.Fatalf("json=%v: error %v, want a failure of no particular kind after a kick", asJSON, err)
		}
		for what, text := range map[string]string{"stdout": r.out.String(), "stderr": r.errOut.String(), "the error": err.Error()} {
			if i := strings.IndexFunc(text, func(r rune) bool {
				return r != '\n' && (r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0x202e)
			}); i >= 0 {
				t.Errorf("json=%v: %s holds control character %U: %q", asJSON, what, []rune(text[i:])[0], text)
			}
			if strings.Contains(text, `\u001b`) || strings.Contains(text, "52;c;") || strings.Contains(text, "pwned") {
				t.Errorf("json=%v: %s holds (part of) an escape sequence: %q", asJSON, what, text)
			}
		}
		if !strings.Contains(err.Error(), "you were kicked: text") {
			t.Errorf("json=%v: the kick's error %q lost its text", asJSON, err)
		}
		if strings.Contains(r.out.String(), "weird") {
			t.Errorf("json=%v: an unknown kind was printed as such, not as a notice:\n%s", asJSON, r.out.String())
		}
	}
}

// TestCleanEventNames: names that break the rules of PROTOCOL.md §13.8
// never reach the roster, so they never reach Tab completion or the prompt.
func TestCleanEventNames(t *testing.T) {
	ros := newRoster("alice")
	for _, ev := range []*chat.Event{
		{Type: chat.TypeRoom, Room: "#general", Members: []string{"alice", "bob", "eve" + osc52, "Mallory", "", strings.Repeat("a", 33)}},
		{Type: chat.TypeRoom, Room: "#bad" + clearScreen, Members: []string{"carol"}},
		{Type: chat.TypeMsg, Kind: chat.KindJoin, Room: "#general", From: "dave" + osc52},
		{Type: chat.TypeMsg, Kind: chat.KindJoin, Room: "#general", From: "frank"},
		{Type: chat.TypeMsg, Kind: chat.KindJoin, Room: "#x\u202e", From: "alice"},
	} {
		cleanEvent(ev)
		ros.apply(ev)
	}
	got := ros.nicks()
	want := map[string]bool{"alice": true, "bob": true, "frank": true}
	if len(got) != len(want) {
		t.Errorf("nicks %q, want exactly alice, bob and frank", got)
	}
	for _, n := range got {
		if !want[n] {
			t.Errorf("nick %q in the roster", n)
		}
	}
	if ros.current != "#general" {
		t.Errorf("current room %q, want #general", ros.current)
	}
	for _, r := range ros.rooms() {
		if !chat.ValidRoom(r) {
			t.Errorf("room %q in the roster", r)
		}
	}

	ev := &chat.Event{Type: chat.TypeWelcome, User: "alice", MOTD: "a\nb" + osc52,
		Rooms: []chat.RoomInfo{{Room: "#ok", Topic: "t" + clearScreen}, {Room: "#no" + osc52}}}
	cleanEvent(ev)
	if ev.MOTD != "a\nb" || len(ev.Rooms) != 1 || ev.Rooms[0] != (chat.RoomInfo{Room: "#ok", Topic: "t"}) {
		t.Errorf("cleaned welcome: motd %q, rooms %+v", ev.MOTD, ev.Rooms)
	}
}

func TestReadInput(t *testing.T) {
	long := strings.Repeat("x", 70<<10)
	exact := strings.Repeat("y", maxScriptLine)
	in := "one\r\n\n  \n" + long + "\n" + exact + "\r\n" + "é\rmid\n" + "last"
	var got []inputLine
	if err := readInput(strings.NewReader(in), func(l inputLine) bool { got = append(got, l); return true }); err != nil {
		t.Fatal(err)
	}
	want := []inputLine{
		{num: 1, text: "one", size: 3},
		{num: 2, text: "", size: 0},
		{num: 3, text: "  ", size: 2},
		{num: 4, text: long[:maxScriptLine], size: len(long)},
		{num: 5, text: exact, size: maxScriptLine},
		{num: 6, text: "é\rmid", size: len("é\rmid")},
		{num: 7, text: "last", size: 4},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got {%d %.20q… %d}, want {%d %.20q… %d}", i+1,
				got[i].num, got[i].text, got[i].size, want[i].num, want[i].text, want[i].size)
		}
	}
	if !got[3].cut() || got[4].cut() {
		t.Errorf("cut: %v for the long line, %v for the exact one; want true, false", got[3].cut(), got[4].cut())
	}

	// A read error is reported, after the lines before it.
	boom := errors.New("boom")
	var n int
	err := readInput(io.MultiReader(strings.NewReader("a\nb\n"), failingReader{boom}), func(inputLine) bool { n++; return true })
	if !errors.Is(err, boom) || n != 2 {
		t.Errorf("readInput with a failing reader: %v after %d lines, want boom after 2", err, n)
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestScriptRequestLimits(t *testing.T) {
	line := func(s string) inputLine {
		l := inputLine{num: 9, text: s, size: len(s)}
		if len(s) > maxScriptLine {
			l.text = s[:maxScriptLine]
		}
		return l
	}
	tests := []struct {
		name, line string
		limit      int
		wantErr    string // "" for a request
	}{
		{"at the limit", strings.Repeat("a", 4096), 4096, ""},
		{"one over", strings.Repeat("a", 4097), 4096, "the message is 4097 bytes, over the server's limit of 4096; not sent"},
		{"a smaller server limit", strings.Repeat("a", 101), 100, "the message is 101 bytes, over the server's limit of 100; not sent"},
		{"me", "/me " + strings.Repeat("a", 4097), 4096, "the message is 4097 bytes, over the server's limit of 4096; not sent"},
		{"dm", "/msg bob " + strings.Repeat("a", 5000), 4096, "the message is 5000 bytes, over the server's limit of 4096; not sent"},
		{"slash slash at the limit", "//" + strings.Repeat("a", 4095), 4096, ""},
		{"cut message", strings.Repeat("a", 70<<10), 4096, "the message is 71680 bytes, over the server's limit of 4096; not sent"},
		{"cut slash slash", "//" + strings.Repeat("a", 70<<10), 4096, "the message is 71681 bytes, over the server's limit of 4096; not sent"},
		{"cut command", "/topic #a " + strings.Repeat("a", 20000), 4096, "the line is 20010 bytes, more than one request can carry (16384); not sent"},
		{"escapes blow up the JSON", strings.Repeat("\x01", 4000), 4096, "the request does not fit in one record"},
		{"command over a record", "/topic #a " + strings.Repeat("\x01", 3000), 4096, "the request does not fit in one record"},
	}
	for _, tt := range tests {
		req, err := scriptRequest(line(tt.line), "#general", tt.limit)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr == "":
			if _, err := chat.EncodeRequest(req); err != nil {
				t.Errorf("%s: the accepted request does not encode: %v", tt.name, err)
			}
		case err == nil:
			t.Errorf("%s: accepted, want %q", tt.name, tt.wantErr)
		default:
			var ce *chat.Error
			if !errors.As(err, &ce) || ce.Code != chat.CodeTooLong || !strings.HasPrefix(ce.Text, tt.wantErr) {
				t.Errorf("%s: error %v, want code too_long and %q", tt.name, err, tt.wantErr)
			}
		}
	}
}

// TestIdleLinkPings: a link that has sent nothing for its idle time pings
// the server (so that a QUIC server that restarted answers with a
// stateless reset), again after the next idle time, and keeps the pongs
// from its reader.
func TestIdleLinkPings(t *testing.T) {
	got := make(chan *chat.Request, 8)
	s := startFakeChatServer(t, func(c *fakeConn) {
		if !c.login(nil) {
			return
		}
		for {
			p, err := c.sess.ReadMessage()
			if err != nil {
				return
			}
			req, err := chat.DecodeRequest(p)
			if err != nil {
				t.Errorf("the client sent %q: %v", p, err)
				return
			}
			got <- req
			if req.Type == chat.TypePing {
				c.send(&chat.Event{Type: chat.TypePong, ID: req.ID})
			}
		}
	})
	cfg := s.config(t)
	cfg.testOnlyIdlePing = 100 * time.Millisecond
	l, err := Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, want := range []string{"k1", "k2"} {
		select {
		case req := <-got:
			if req.Type != chat.TypePing || req.ID != want {
				t.Fatalf("an idle link sent %+v, want ping %s", req, want)
			}
		case <-time.After(fakeServerWait):
			t.Fatalf("an idle link sent no ping %s", want)
		}
	}
	select {
	case ev := <-l.events:
		t.Errorf("the link's reader got %+v; pongs stay inside", ev)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestSilentServerGivenUp: a server that sends nothing at all, pings
// unanswered, for serverSilence idle times ends the link as a lost
// connection naming the silence, as OpenSSH's ServerAliveCountMax does.
func TestSilentServerGivenUp(t *testing.T) {
	s := startFakeChatServer(t, func(c *fakeConn) {
		if !c.login(nil) {
			return
		}
		for c.next() != nil { // reads, never answers
		}
	})
	cfg := s.config(t)
	cfg.testOnlyIdlePing = 100 * time.Millisecond
	l, err := Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	deadline := time.After(fakeServerWait)
	for {
		select {
		case _, ok := <-l.events:
			if ok {
				continue
			}
			if l.err == nil || !strings.Contains(l.err.Error(), "the server has not answered for") {
				t.Errorf("the link ended with %v, want the silence named", l.err)
			}
			return
		case <-deadline:
			t.Fatal("a silent server was never given up")
		}
	}
}
