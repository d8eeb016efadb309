package chat_test

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"testing"

	"securechat/chat"
	"securechat/chatstore"
	"securechat/msgsig"
)

// signer is a user's key and the counter its client keeps.
type signer struct {
	pub    ed25519.PublicKey
	sender *msgsig.Sender
}

func newSigner(t *testing.T) *signer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{pub: pub, sender: &msgsig.Sender{Signer: priv}}
}

// signed returns a msg request to room (or, for a dm, to the user to)
// signed by from as a client does: over the text it sends, which must
// already be sanitised for the server to relay it unchanged.
func (s *signer) signed(t *testing.T, kind, target, from, text string) *chat.Request {
	t.Helper()
	sg, err := s.sender.Sign(kind, target, from, text)
	if err != nil {
		t.Fatal(err)
	}
	r := &chat.Request{Type: chat.TypeMsg, Text: text, Sig: sg.Sig, Ctr: sg.Ctr, Cts: sg.Cts}
	switch kind {
	case msgsig.KindDM:
		r.To = target
	default:
		r.Room, r.Kind = target, kind
	}
	return r
}

// checkSigned fails unless e carries the request's signature fields
// unchanged, with key, and verifies as a recipient would check it.
func checkSigned(t *testing.T, who string, e *chat.Event, key ed25519.PublicKey, req *chat.Request) {
	t.Helper()
	if e.Key != msgsig.EncodeKey(key) || e.Sig != req.Sig || e.Ctr != req.Ctr || e.Cts != req.Cts {
		t.Errorf("%s got key=%q sig=%q ctr=%d cts=%d; want the request's key=%q sig=%q ctr=%d cts=%d",
			who, e.Key, e.Sig, e.Ctr, e.Cts, msgsig.EncodeKey(key), req.Sig, req.Ctr, req.Cts)
		return
	}
	target := e.Room
	if e.Kind == chat.KindDM {
		target = e.To
	}
	sig, err := msgsig.DecodeSig(e.Sig)
	if err != nil || !msgsig.Verify(key, &msgsig.Fields{Kind: e.Kind, Target: target, From: e.From,
		Counter: e.Ctr, Time: e.Cts, Text: e.Text}, sig) {
		t.Errorf("%s: the event %+v does not verify (%v)", who, e, err)
	}
}

func isText(text string) func(*chat.Event) bool {
	return func(e *chat.Event) bool { return e.Type == chat.TypeMsg && e.Text == text }
}

// A signed message goes to every recipient, live and replayed, with the
// key, sig, ctr and cts it was sent with (PROTOCOL.md §13.16.4).
func TestSignedMessageRelayedUnchanged(t *testing.T) {
	s := memStore(t)
	h := storedHub(t, chatstore.New(s), nil)
	defer h.Close()
	ak := newSigner(t)
	alice := loginAs(t, h, chat.Identity{User: "alice", SigningKey: ak.pub})
	if alice.welcome.Key != msgsig.EncodeKey(ak.pub) {
		t.Errorf("welcome.key = %q, want the session's key %q", alice.welcome.Key, msgsig.EncodeKey(ak.pub))
	}
	alice2 := loginAs(t, h, chat.Identity{User: "alice", SigningKey: ak.pub})
	bob := login(t, h, "bob")
	if bob.welcome.Key != "" {
		t.Errorf("a session without a key got welcome.key %q", bob.welcome.Key)
	}

	room := ak.signed(t, msgsig.KindMsg, "#general", "alice", "hello, signed")
	got := alice.do(room)
	if last(got).Type != chat.TypeAck {
		t.Fatalf("signed message: %s", dumpEvents(got))
	}
	if i := slices.IndexFunc(got, isText("hello, signed")); i < 0 {
		t.Errorf("the sender got no copy: %s", dumpEvents(got))
	} else {
		checkSigned(t, "alice", got[i], ak.pub, room)
	}
	for who, c := range map[string]*client{"alice2": alice2, "bob": bob} {
		checkSigned(t, who, c.wait(isText("hello, signed")), ak.pub, room)
	}
	action := ak.signed(t, msgsig.KindMe, "#general", "alice", "waves")
	if got := alice.do(action); last(got).Type != chat.TypeAck {
		t.Fatalf("signed action: %s", dumpEvents(got))
	}
	checkSigned(t, "bob", bob.wait(isText("waves")), ak.pub, action)

	live := ak.signed(t, msgsig.KindDM, "bob", "alice", "psst")
	if got := alice.do(live); last(got).Type != chat.TypeAck {
		t.Fatalf("signed dm: %s", dumpEvents(got))
	}
	checkSigned(t, "bob", bob.wait(isText("psst")), ak.pub, live)
	checkSigned(t, "alice2", alice2.wait(isText("psst")), ak.pub, live)

	queued := ak.signed(t, msgsig.KindDM, "dave", "alice", "see you at 5")
	if got := alice.do(queued); last(got).Type != chat.TypeAck {
		t.Fatalf("signed dm to an offline account: %s", dumpEvents(got))
	}

	whois := alice.line("/whois alice", "#general")
	if r := whois[len(whois)-2]; r.Type != chat.TypeReply || !slices.Equal(r.Keys, []string{msgsig.EncodeKey(ak.pub)}) {
		t.Errorf("whois alice: keys = %q, want the one key of its two sessions", r.Keys)
	}
	whois = alice.line("/whois bob", "#general")
	if r := whois[len(whois)-2]; r.Type != chat.TypeReply || len(r.Keys) != 0 {
		t.Errorf("whois bob (no key): keys = %q, want none", r.Keys)
	}

	// Replayed: the offline DM at login, the room's history on join, and
	// /history from the store.
	dave := login(t, h, "dave")
	replay := dave.until(isText("see you at 5"))
	e := last(replay)
	if !e.Queued || !e.History {
		t.Errorf("the offline DM = %+v, want queued and history", e)
	}
	checkSigned(t, "dave (offline dm)", e, ak.pub, queued)
	if i := slices.IndexFunc(replay, isText("hello, signed")); i < 0 || !replay[i].History {
		t.Errorf("room history on join: %s", dumpEvents(replay))
	} else {
		checkSigned(t, "dave (room history)", replay[i], ak.pub, room)
	}

	got = bob.line("/history alice", "#general")
	n := 0
	for _, e := range got {
		if e.Type == chat.TypeMsg && e.Text == "psst" {
			n++
			checkSigned(t, "bob (/history alice)", e, ak.pub, live)
		}
	}
	if n != 1 {
		t.Errorf("/history alice: %d copies of the signed DM, want 1: %s", n, dumpEvents(got))
	}
	got = bob.line("/history #general", "#general")
	n = 0
	for _, e := range got {
		if e.Type == chat.TypeMsg && e.Text == "waves" {
			n++
			checkSigned(t, "bob (/history #general)", e, ak.pub, action)
		}
	}
	if n != 1 {
		t.Errorf("/history #general: %d copies of the signed action, want 1: %s", n, dumpEvents(got))
	}

	// An unsigned message stays unsigned.
	if got := alice.do(&chat.Request{Type: chat.TypeMsg, Room: "#general", Text: "plain"}); last(got).Type != chat.TypeAck {
		t.Fatalf("unsigned message: %s", dumpEvents(got))
	}
	if e := bob.wait(isText("plain")); e.Key != "" || e.Sig != "" || e.Ctr != 0 || e.Cts != 0 {
		t.Errorf("an unsigned message was relayed with signature fields: %+v", e)
	}
	for _, c := range []*client{alice, alice2, bob, dave} {
		c.quit()
	}
}

// A signed request that is malformed, does not verify with the session's
// key, or comes from a session without one is answered bad_signature and
// reaches nobody.
func TestSignedMessageRefused(t *testing.T) {
	s := memStore(t)
	h := storedHub(t, chatstore.New(s), nil)
	defer h.Close()
	ak, other := newSigner(t), newSigner(t)
	alice := loginAs(t, h, chat.Identity{User: "alice", SigningKey: ak.pub})
	bob := login(t, h, "bob")
	carol := login(t, h, "carol")

	const dirty = "look \x1b[31mred\x1b[0m"
	if chat.SanitizeText(dirty) == dirty {
		t.Fatal("the test needs a text the server changes")
	}
	good := func() *chat.Request { return ak.signed(t, msgsig.KindMsg, "#general", "alice", "refused") }
	cases := []struct {
		name string
		c    *client
		req  *chat.Request
	}{
		{"sig only", alice, func() *chat.Request { r := good(); r.Ctr, r.Cts = 0, 0; return r }()},
		{"ctr and cts without sig", alice, func() *chat.Request { r := good(); r.Sig = ""; return r }()},
		{"sig not base64", alice, func() *chat.Request { r := good(); r.Sig = "not base64!"; return r }()},
		{"sig of 63 bytes", alice, func() *chat.Request { r := good(); r.Sig = msgsig.EncodeSig(make([]byte, 63)); return r }()},
		{"ctr over 2^53", alice, func() *chat.Request { r := good(); r.Ctr = 1 << 53; return r }()},
		{"another key", alice, other.signed(t, msgsig.KindMsg, "#general", "alice", "refused")},
		{"altered text", alice, func() *chat.Request { r := good(); r.Text = "refused!"; return r }()},
		{"signed as an action", alice, func() *chat.Request { r := good(); r.Kind = chat.KindMe; return r }()},
		{"signed for another room", alice, func() *chat.Request {
			r := ak.signed(t, msgsig.KindMsg, "#other", "alice", "refused")
			r.Room = "#general"
			return r
		}()},
		{"signed for another recipient", alice, func() *chat.Request {
			r := ak.signed(t, msgsig.KindDM, "carol", "alice", "refused")
			r.To = "bob"
			return r
		}()},
		{"signed as another user", alice, ak.signed(t, msgsig.KindMsg, "#general", "bob", "refused")},
		{"unsanitised text", alice, func() *chat.Request {
			r := ak.signed(t, msgsig.KindMsg, "#general", "alice", dirty)
			return r
		}()},
		{"session without a key", bob, other.signed(t, msgsig.KindMsg, "#general", "bob", "refused")},
	}
	for _, tc := range cases {
		got := tc.c.do(tc.req)
		if e := last(got); e.Type != chat.TypeError || e.Code != chat.CodeBadSignature {
			t.Errorf("%s: got %s, want error bad_signature", tc.name, dumpEvents(got))
		}
	}
	// A counter or clock that is a number but no unsigned integer is a
	// malformed signature too, not a malformed request.
	for i, raw := range []string{`"ctr":-1,"cts":5`, `"ctr":1.5,"cts":5`, `"ctr":5,"cts":1e3`, `"ctr":18446744073709551616,"cts":5`} {
		id := fmt.Sprintf("raw-%d", i)
		alice.conn.In <- []byte(`{"t":"msg","id":"` + id + `","room":"#general","text":"refused","sig":"` + good().Sig + `",` + raw + `}`)
		got := alice.until(func(e *chat.Event) bool { return e.ID == id })
		if e := last(got); e.Type != chat.TypeError || e.Code != chat.CodeBadSignature {
			t.Errorf("%s: got %s, want error bad_signature", raw, dumpEvents(got))
		}
	}
	// Nothing of it reached anyone: the first message carol sees after
	// her login is the marker sent last.
	if got := alice.do(&chat.Request{Type: chat.TypeMsg, Room: "#general", Text: "marker"}); last(got).Type != chat.TypeAck {
		t.Fatalf("marker: %s", dumpEvents(got))
	}
	for _, e := range carol.until(isText("marker")) {
		if e.Type == chat.TypeMsg && (e.From == "alice" || e.From == "bob") && e.Text != "marker" {
			t.Errorf("a refused message was delivered: %+v", e)
		}
	}
	hist, err := s.History("#general", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hist {
		if m.Text != "marker" && (m.Kind == chat.KindMsg || m.Kind == chat.KindMe) {
			t.Errorf("a refused message was stored: %+v", m)
		}
	}
	// The cmd forms stay unsigned, and are relayed so.
	if got := alice.line("/me shrugs", "#general"); last(got).Type != chat.TypeAck {
		t.Errorf("/me: %s", dumpEvents(got))
	}
	if e := carol.wait(isText("shrugs")); e.Sig != "" || e.Key != "" {
		t.Errorf("/me relayed with signature fields: %+v", e)
	}
	for _, c := range []*client{alice, bob, carol} {
		c.quit()
	}
}
