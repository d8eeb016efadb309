package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"securechat/chat"
	"securechat/handshake"
	"securechat/msgsig"
)

// TestSignRequest: room lines, /me and /msg leave as signed msg requests
// over the text the server will relay; commands and sessions without a
// signing key are left alone.
func TestSignRequest(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sender := &msgsig.Sender{Signer: priv}
	tests := []struct {
		line, kind, target, text string
	}{
		{"hello\x1b[2J there", msgsig.KindMsg, "#general", chat.SanitizeText("hello\x1b[2J there")},
		{"/me waves", msgsig.KindMe, "#general", "waves"},
		{"/msg Bob psst", msgsig.KindDM, "bob", "psst"},
	}
	for _, tt := range tests {
		req, err := chat.ParseLine(tt.line, "#general")
		if err != nil {
			t.Fatalf("%q: %v", tt.line, err)
		}
		orig := *req
		signed, err := signRequest(sender, "alice", req)
		if err != nil {
			t.Fatalf("%q: %v", tt.line, err)
		}
		if signed.Type != chat.TypeMsg || signed.Sig == "" || signed.Ctr == 0 || signed.Cts == 0 {
			t.Fatalf("%q: request %+v is not a signed msg request", tt.line, signed)
		}
		if signed.Text != tt.text {
			t.Errorf("%q: text %q, want the sanitised %q", tt.line, signed.Text, tt.text)
		}
		sig, err := msgsig.DecodeSig(signed.Sig)
		if err != nil {
			t.Fatal(err)
		}
		f := &msgsig.Fields{Kind: tt.kind, Target: tt.target, From: "alice", Counter: signed.Ctr, Time: signed.Cts, Text: tt.text}
		if !msgsig.Verify(pub, f, sig) {
			t.Errorf("%q: the signature does not verify as kind %s to %s", tt.line, tt.kind, tt.target)
		}
		if err := msgsig.CheckRequest(pub, f, signed.Sig); err != nil {
			t.Errorf("%q: the server would refuse it: %v", tt.line, err)
		}
		if req.Sig != "" || req.Text != orig.Text {
			t.Errorf("%q: the caller's request was changed: %+v", tt.line, req)
		}
	}

	again, err := signRequest(sender, "alice", &chat.Request{Type: chat.TypeMsg, Room: "#general", Text: "x"})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := signRequest(sender, "alice", &chat.Request{Type: chat.TypeMsg, Room: "#general", Text: "x"})
	if first.Ctr <= again.Ctr {
		t.Errorf("counters %d then %d: not increasing", again.Ctr, first.Ctr)
	}

	cmd, _ := chat.ParseLine("/who", "#general")
	if got, _ := signRequest(sender, "alice", cmd); got != cmd || got.Sig != "" {
		t.Errorf("a command was signed: %+v", got)
	}
	msg := &chat.Request{Type: chat.TypeMsg, Room: "#general", Text: "x"}
	if got, _ := signRequest(nil, "alice", msg); got != msg || got.Sig != "" {
		t.Errorf("a session without a key signed: %+v", got)
	}
}

// TestScriptSigMarks: script mode checks every message and prints its mark;
// a changed key fails and is announced once on standard error.
func TestScriptSigMarks(t *testing.T) {
	bobPub, bobPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bob := &msgsig.Sender{Signer: bobPriv}
	signedEvent := func(kind, room, to, text string) *chat.Event {
		target := room
		if kind == chat.KindDM {
			target = to
		}
		sg, err := bob.Sign(kind, target, "bob", text)
		if err != nil {
			t.Fatal(err)
		}
		return &chat.Event{Type: chat.TypeMsg, MID: 1, Kind: kind, Room: room, To: to, From: "bob", Text: text,
			Key: msgsig.EncodeKey(bobPub), Sig: sg.Sig, Ctr: sg.Ctr, Cts: sg.Cts}
	}
	s := startFakeChatServer(t, func(c *fakeConn) {
		if !c.login(nil) {
			return
		}
		c.send(&chat.Event{Type: chat.TypeRoom, Room: "#general", Members: []string{"alice", "bob"}})
		hi := signedEvent(chat.KindMsg, "#general", "", "hi")
		c.send(hi)
		c.send(hi) // the same message again, live: a replay
		c.send(signedEvent(chat.KindDM, "", "alice", "psst"))
		c.send(signedEvent(chat.KindDM, "", "dave", "not for alice"))
		c.send(&chat.Event{Type: chat.TypeMsg, MID: 2, Kind: chat.KindMsg, Room: "#general", From: "carol", Text: "plain"})
		c.send(&chat.Event{Type: chat.TypeMsg, MID: 3, Kind: chat.KindJoin, Room: "#general", From: "dave"})
		for req := c.next(); req != nil; req = c.next() {
			c.send(&chat.Event{Type: chat.TypeAck, ID: req.ID, MID: 9})
		}
	})

	run := func(knownUsers string) (marks []string, stderr string) {
		cfg := s.config(t)
		cfg.KnownUsers = knownUsers
		cfg.Counters = filepath.Join(filepath.Dir(knownUsers), "counters")
		cfg.UserKeyPolicy = msgsig.PolicyAcceptNew
		var out, errOut strings.Builder
		ctx, cancel := context.WithTimeout(context.Background(), fakeServerWait)
		defer cancel()
		if err := RunScript(ctx, cfg, strings.NewReader("done\n"), &out, &errOut, true); err != nil {
			t.Fatalf("RunScript: %v\n%s", err, errOut.String())
		}
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var ev struct{ Kind, From, Text, Sig, Sig_reason string }
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			if ev.Kind == "system" {
				continue
			}
			marks = append(marks, ev.Kind+" "+ev.From+" "+ev.Text+": "+ev.Sig+" "+ev.Sig_reason)
		}
		return marks, errOut.String()
	}

	dir := t.TempDir()
	marks, stderr := run(filepath.Join(dir, "known_users"))
	want := []string{
		"msg bob hi: verified ",
		"msg bob hi: failed replayed",
		"dm bob psst: verified ",
		"dm bob not for alice: failed misdirected",
		"msg carol plain: unsigned ",
		"join dave :  ",
	}
	if strings.Join(marks, "\n") != strings.Join(want, "\n") {
		t.Errorf("marks:\n%s\nwant:\n%s\nstderr: %s", strings.Join(marks, "\n"), strings.Join(want, "\n"), stderr)
	}
	pinned, err := os.ReadFile(filepath.Join(dir, "known_users"))
	if err != nil || !strings.Contains(string(pinned), "bob@"+s.addr+" ") {
		t.Errorf("known_users after the first run: %q, %v; want bob pinned", pinned, err)
	}
	counters, err := os.ReadFile(filepath.Join(dir, "counters"))
	if err != nil || !strings.Contains(string(counters), "bob@"+s.addr+" "+msgsig.EncodeKey(bobPub)) {
		t.Errorf("counters after the first run: %q, %v; want bob's", counters, err)
	}

	// Bob pinned with another key: every signed message of his fails,
	// and the change is announced once.
	other, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir2 := t.TempDir()
	ku := filepath.Join(dir2, "known_users")
	if err := os.WriteFile(ku, []byte(msgsig.FormatKnownUser(msgsig.UserAt("bob", s.addr), other, false)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	marks, stderr = run(ku)
	if len(marks) < 3 || marks[0] != "msg bob hi: failed key_changed" || marks[2] != "dm bob psst: failed key_changed" {
		t.Errorf("with another key pinned for bob, marks:\n%s", strings.Join(marks, "\n"))
	}
	if n := strings.Count(stderr, "HAS CHANGED"); n != 1 {
		t.Errorf("the changed key was announced %d times, want once:\n%s", n, stderr)
	}
}

// TestSigningNote: a session that does not sign says why at login.
func TestSigningNote(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	password := &Link{sess: &handshake.Session{}}
	if n := signingNote(password); !strings.Contains(n, "by password") {
		t.Errorf("password login: note %q", n)
	}
	unconfirmed := &Link{sess: &handshake.Session{UserSigner: priv}}
	if n := signingNote(unconfirmed); !strings.Contains(n, "did not confirm") {
		t.Errorf("key not in welcome: note %q", n)
	}
	signing := &Link{sess: &handshake.Session{UserSigner: priv}, signer: &msgsig.Sender{Signer: priv}}
	if n := signingNote(signing); n != "" {
		t.Errorf("signing session: note %q, want none", n)
	}
}

// TestInteractiveSigMarks: the terminal marks a verified message with ✓, a
// failed one with !! and its reason, and announces a changed key once.
func TestInteractiveSigMarks(t *testing.T) {
	s, conns := sessions(t, nil)
	_, bobPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, carolPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pinned, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := s.config(t)
	cfg.KnownUsers = filepath.Join(dir, "known_users")
	cfg.UserKeyPolicy = msgsig.PolicyAcceptNew
	if err := os.WriteFile(cfg.KnownUsers, []byte(msgsig.FormatKnownUser(msgsig.UserAt("bob", s.addr), pinned, false)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startTermWith(t, s, nil, cfg)
	c := nextConn(t, conns)
	r.waitScreen("[#general] >")

	signed := func(priv ed25519.PrivateKey, from, text string) *chat.Event {
		sg, err := (&msgsig.Sender{Signer: priv}).Sign(chat.KindMsg, "#general", from, text)
		if err != nil {
			t.Fatal(err)
		}
		return &chat.Event{Type: chat.TypeMsg, Kind: chat.KindMsg, Room: "#general", From: from, Text: text,
			Key: msgsig.EncodeKey(priv.Public().(ed25519.PublicKey)), Sig: sg.Sig, Ctr: sg.Ctr, Cts: sg.Cts}
	}
	c.send(signed(carolPriv, "carol", "fine"))
	r.waitScreen("✓ #general <carol> fine")
	c.send(signed(bobPriv, "bob", "first"))
	r.waitScreen("!! #general <bob> first [FAILED: key_changed]")
	c.send(signed(bobPriv, "bob", "second"))
	r.waitScreen("<bob> second [FAILED: key_changed]")
	if n := r.count("HAS CHANGED"); n != 1 {
		t.Errorf("the changed key was announced %d times, want once", n)
	}
	close(c.done)
}

// TestCheckRequestSizeLeavesRoomToSign: a message that fits in a record
// only while unsigned is refused before it is sent, not signed into a
// request too big for its record.
func TestCheckRequestSizeLeavesRoomToSign(t *testing.T) {
	req := func(n int) *chat.Request {
		return &chat.Request{Type: chat.TypeMsg, ID: "s1", Room: "#general", Text: strings.Repeat("a", n)}
	}
	n := 16000
	for ; n < 17000; n++ {
		if _, err := chat.EncodeRequest(req(n + 1)); err != nil {
			break
		}
	}
	if _, err := chat.EncodeRequest(req(n)); err != nil || n >= 17000 {
		t.Fatalf("no largest request found (n=%d, %v)", n, err)
	}
	err := checkRequestSize(req(n), 1<<20)
	var ce *chat.Error
	if !errors.As(err, &ce) || ce.Code != chat.CodeTooLong {
		t.Errorf("a request that fits only unsigned: %v, want a too_long refusal", err)
	}
	if err := checkRequestSize(req(n-200), 1<<20); err != nil {
		t.Errorf("a request with room for its signature: %v", err)
	}
}
