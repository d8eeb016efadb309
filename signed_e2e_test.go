package main

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"securechat/chat"
	"securechat/cipher"
	"securechat/handshake"
	"securechat/msgsig"
	"securechat/transport"
)

// wireClient is a chat client written for this test from the handshake
// and the record layer: it signs as PROTOCOL.md §13.16 says, where the
// reference client does not sign yet.
type wireClient struct {
	t    *testing.T
	name string
	sess *handshake.Session
	seq  int
	// backlog holds events do read past while waiting for its answer,
	// for until to look at first.
	backlog []*chat.Event
}

// dialWire logs in to s as user, by key if key is set, else by password,
// and says hello.
func dialWire(t *testing.T, s *e2eServer, user string, key ed25519.PrivateKey) (*wireClient, *chat.Event) {
	t.Helper()
	tr, err := transport.Lookup(s.transport)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	conn, err := tr.Dial(ctx, s.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &handshake.ClientConfig{Transport: tr.Name(), User: user, MaxAuthTries: 1,
		HostKeyCallback: func(k ed25519.PublicKey) error {
			if fp := handshake.Fingerprint(k); fp != s.fingerprint {
				return fmt.Errorf("host key %s, want %s", fp, s.fingerprint)
			}
			return nil
		}}
	if key != nil {
		cfg.Keys = []crypto.Signer{key}
	} else {
		cfg.Password = func(int) ([]byte, error) { return []byte(e2ePassword(user)), nil }
	}
	sess, err := handshake.Client(ctx, conn, cfg)
	if err != nil {
		conn.Close()
		t.Fatalf("%s: login: %v", user, err)
	}
	c := &wireClient{t: t, name: user, sess: sess}
	t.Cleanup(func() { sess.Close() })
	c.send(&chat.Request{Type: chat.TypeHello, ID: "hello", V: chat.Version})
	return c, c.wait(func(e *chat.Event) bool { return e.Type == chat.TypeWelcome })
}

func (c *wireClient) send(r *chat.Request) {
	c.t.Helper()
	p, err := chat.EncodeRequest(r)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.sess.WriteMessage(p); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
}

// until reads events, answering pings, up to and including the first
// for which f holds.
func (c *wireClient) until(f func(*chat.Event) bool) []*chat.Event {
	c.t.Helper()
	var got []*chat.Event
	for len(c.backlog) > 0 {
		e := c.backlog[0]
		c.backlog = c.backlog[1:]
		got = append(got, e)
		if f(e) {
			return got
		}
	}
	c.sess.SetReadDeadline(time.Now().Add(e2eWait))
	for {
		typ, p, err := c.sess.ReadRecord()
		if err != nil {
			var seen []string
			for _, e := range got {
				b, _ := chat.EncodeEvent(e)
				seen = append(seen, string(b))
			}
			c.t.Fatalf("%s: read: %v, after %d events:\n%s", c.name, err, len(got), strings.Join(seen, "\n"))
		}
		if typ != cipher.TypeApp {
			continue
		}
		e, err := chat.DecodeEvent(p)
		if err != nil {
			c.t.Fatalf("%s: %v: %s", c.name, err, p)
		}
		if e.Type == chat.TypePing {
			c.send(&chat.Request{Type: chat.TypePong, ID: e.ID})
			continue
		}
		got = append(got, e)
		if f(e) {
			return got
		}
	}
}

func (c *wireClient) wait(f func(*chat.Event) bool) *chat.Event {
	c.t.Helper()
	got := c.until(f)
	return got[len(got)-1]
}

// do sends r with a fresh id and returns its ack or error.
func (c *wireClient) do(r *chat.Request) *chat.Event {
	c.t.Helper()
	c.seq++
	r.ID = fmt.Sprintf("%s-%d", c.name, c.seq)
	c.send(r)
	got := c.until(func(e *chat.Event) bool {
		return e.ID == r.ID && (e.Type == chat.TypeAck || e.Type == chat.TypeError)
	})
	n := len(got) - 1
	c.backlog = append(got[:n:n], c.backlog...)
	return got[n]
}

func wireVerifier(t *testing.T, s *e2eServer, self string, selfKey ed25519.PublicKey) *msgsig.Verifier {
	t.Helper()
	v, err := msgsig.NewVerifier(msgsig.Config{KnownUsers: filepath.Join(t.TempDir(), "known_users"),
		HostPort: s.addr, Self: self, SelfKey: selfKey, Policy: msgsig.PolicyAcceptNew})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func judge(v *msgsig.Verifier, e *chat.Event) msgsig.Result {
	return v.Check(&msgsig.Event{Kind: e.Kind, Room: e.Room, To: e.To, From: e.From, Text: e.Text,
		History: e.History, Key: e.Key, Sig: e.Sig, Ctr: e.Ctr, Cts: e.Cts})
}

func signedReq(t *testing.T, sender *msgsig.Sender, kind, target, from, text string) *chat.Request {
	t.Helper()
	sg, err := sender.Sign(kind, target, from, text)
	if err != nil {
		t.Fatal(err)
	}
	r := &chat.Request{Type: chat.TypeMsg, Text: text, Sig: sg.Sig, Ctr: sg.Ctr, Cts: sg.Cts}
	if kind == msgsig.KindDM {
		r.To = target
	} else {
		r.Room = target
	}
	return r
}

// Signed messages through the real server: a key login signs, the server
// checks and relays, and receivers judge the messages verified, live, from
// the offline queue and from stored history (PROTOCOL.md §13.16).
func TestE2ESignedMessages(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	key := e.userKey("alice", "", "")
	pub := key.Public().(ed25519.PublicKey)
	s := e.serve("tcp", "127.0.0.1:0", filepath.Join(e.dir, "state"))

	alice, welcome := dialWire(t, s, "alice", key)
	if welcome.Key != msgsig.EncodeKey(pub) {
		t.Fatalf("alice's welcome.key = %q, want her login key", welcome.Key)
	}
	bob, welcome := dialWire(t, s, "bob", nil)
	if welcome.Key != "" {
		t.Errorf("a password login got welcome.key %q", welcome.Key)
	}
	sender := &msgsig.Sender{Signer: key}
	bobV := wireVerifier(t, s, "bob", nil)

	room := signedReq(t, sender, msgsig.KindMsg, "#general", "alice", "hello, signed")
	if a := alice.do(room); a.Type != chat.TypeAck {
		t.Fatalf("signed message: %+v", a)
	}
	dm := signedReq(t, sender, msgsig.KindDM, "bob", "alice", "psst")
	if a := alice.do(dm); a.Type != chat.TypeAck {
		t.Fatalf("signed dm: %+v", a)
	}
	queued := signedReq(t, sender, msgsig.KindDM, "carol", "alice", "for later")
	if a := alice.do(queued); a.Type != chat.TypeAck {
		t.Fatalf("signed dm to an offline account: %+v", a)
	}
	bad := signedReq(t, sender, msgsig.KindMsg, "#general", "alice", "not what was signed")
	bad.Text = "something else"
	if a := alice.do(bad); a.Code != chat.CodeBadSignature {
		t.Errorf("a message that does not match its signature: %+v, want bad_signature", a)
	}
	forged := signedReq(t, &msgsig.Sender{Signer: key}, msgsig.KindMsg, "#general", "bob", "forged")
	if a := bob.do(forged); a.Code != chat.CodeBadSignature {
		t.Errorf("a signed message from a session without a key: %+v, want bad_signature", a)
	}

	for _, text := range []string{"hello, signed", "psst"} {
		ev := bob.wait(func(e *chat.Event) bool { return e.Type == chat.TypeMsg && e.Text == text })
		if r := judge(bobV, ev); r.Status != msgsig.Verified {
			t.Errorf("bob judged %q %v %s, want verified", text, r.Status, r.Mark())
		}
	}
	if a := alice.do(&chat.Request{Type: chat.TypeMsg, Room: "#general", Text: "marker"}); a.Type != chat.TypeAck {
		t.Fatalf("marker: %+v", a)
	}
	for _, ev := range bob.until(func(e *chat.Event) bool { return e.Type == chat.TypeMsg && e.Text == "marker" }) {
		if ev.Type == chat.TypeMsg && ev.Text != "marker" {
			t.Errorf("bob got a message that was refused: %+v", ev)
		}
	}

	// carol, offline when alice wrote, gets the DM from the queue at login,
	// a replay.
	carol, _ := dialWire(t, s, "carol", nil)
	carolV := wireVerifier(t, s, "carol", nil)
	carolV.StartReplay("")
	ev := carol.wait(func(e *chat.Event) bool { return e.Type == chat.TypeMsg && e.Text == "for later" })
	if !ev.Queued || !ev.History {
		t.Errorf("the offline DM: %+v, want queued and history", ev)
	}
	if r := judge(carolV, ev); r.Status != msgsig.Verified {
		t.Errorf("carol judged the offline DM %v %s, want verified", r.Status, r.Mark())
	}

	// Stored history, read back from the database.
	bob.seq++
	id := fmt.Sprintf("bob-%d", bob.seq)
	bob.send(&chat.Request{Type: chat.TypeCmd, ID: id, Cmd: "history", Room: "#general", Args: []string{"10"}})
	bobV.StartReplay("#general")
	n := 0
	for _, ev := range bob.until(func(e *chat.Event) bool { return e.ID == id && e.Type == chat.TypeAck }) {
		if ev.Type == chat.TypeMsg && ev.Text == "hello, signed" {
			n++
			if r := judge(bobV, ev); !ev.History || r.Status != msgsig.Verified {
				t.Errorf("/history: %+v judged %v %s, want history, verified", ev, r.Status, r.Mark())
			}
		}
	}
	if n != 1 {
		t.Errorf("/history held the signed message %d times, want once", n)
	}
}
