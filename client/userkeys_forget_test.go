package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"securechat/chat"
	"securechat/msgsig"
)

// signedBy returns a function making room messages in #general from from,
// signed with a fresh key, and that key.
func signedBy(t *testing.T, from string) (func(text string) *chat.Event, ed25519.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &msgsig.Sender{Signer: priv}
	return func(text string) *chat.Event {
		sg, err := s.Sign(chat.KindMsg, "#general", from, text)
		if err != nil {
			t.Fatal(err)
		}
		return &chat.Event{Type: chat.TypeMsg, MID: 1, Kind: chat.KindMsg, Room: "#general", From: from, Text: text,
			Key: msgsig.EncodeKey(pub), Sig: sg.Sig, Ctr: sg.Ctr, Cts: sg.Cts}
	}, pub
}

// TestInteractiveForget: bob's key changes and fails as key_changed, with
// a warning that names /forget; /forget bob removes his pin with a
// confirmation naming the key, and his next message pins the new key.
// Forgetting a user with no pin is an error, and nothing reaches the server.
func TestInteractiveForget(t *testing.T) {
	oldBob, oldKey := signedBy(t, "bob")
	newBob, newKey := signedBy(t, "bob")

	s, conns := sessions(t, nil)
	cfg := s.config(t)
	cfg.KnownUsers = filepath.Join(t.TempDir(), "known_users")
	cfg.UserKeyPolicy = msgsig.PolicyAcceptNew
	who := msgsig.UserAt("bob", s.addr)
	if _, err := msgsig.AddKnownUser(cfg.KnownUsers, who, oldKey); err != nil {
		t.Fatal(err)
	}
	r := startTermWith(t, s, nil, cfg)
	c := nextConn(t, conns)
	r.waitScreen("[#general] >")

	c.send(oldBob("old key"))
	r.waitScreen("✓ #general <bob> old key")
	c.send(newBob("new key"))
	r.waitScreen("!! #general <bob> new key [FAILED: key_changed]")
	r.waitScreen("(/forget bob)")

	r.typeKeys("/forget carol\r")
	r.waitScreen("carol has no pinned key in " + cfg.KnownUsers)
	r.typeKeys("/forget bob\r")
	r.waitScreen("forgot bob's signing key " + msgsig.Fingerprint(oldKey) + " (" + cfg.KnownUsers + ":1); the next message signed by bob pins its key")
	if data, err := os.ReadFile(cfg.KnownUsers); err != nil || strings.Contains(string(data), who) {
		t.Fatalf("known_users after /forget: %q, %v", data, err)
	}
	c.send(newBob("new key again"))
	r.waitScreen("✓ #general <bob> new key again")
	k, err := msgsig.LoadKnownUsers(cfg.KnownUsers)
	if err != nil {
		t.Fatal(err)
	}
	if pin, _ := k.Check(who, newKey); pin != msgsig.PinMatch {
		t.Errorf("after /forget the new key is not pinned (%v)", pin)
	}

	r.typeKeys("sent\r")
	if req := nextReq(t, c); req.Text != "sent" {
		t.Errorf("the client sent %+v; /forget must not reach the server", req)
	}
	c.sess.Close()
	close(c.done)
}
