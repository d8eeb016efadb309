package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"securechat/msgsig"
)

// TestInteractiveAskUserKey: with --user-key-check ask the interactive
// client asks about a new key above its prompt and goes on: bob's messages
// are marked ?? (key_pending) until the answer, a line that is neither yes
// nor no is not sent, "yes" pins the key and his next message verifies.
// Carol's key, refused, fails as key_rejected without being asked again,
// until /forget carol takes the answer back.
func TestInteractiveAskUserKey(t *testing.T) {
	bob, _ := signedBy(t, "bob")
	carol, _ := signedBy(t, "carol")

	s, conns := sessions(t, nil)
	cfg := s.config(t)
	dir := t.TempDir()
	cfg.KnownUsers = filepath.Join(dir, "known_users")
	cfg.UserKeyPolicy = msgsig.PolicyAsk
	r := startTermWith(t, s, nil, cfg)
	c := nextConn(t, conns)
	r.waitScreen("[#general] >")

	c.send(bob("first"))
	r.waitScreen("bob@" + s.addr + " signs with a key you have not seen before")
	r.waitScreen("?? #general <bob> first [UNVERIFIED: key_pending]")
	r.waitScreen("(trust bob's key? yes/no) >")
	c.send(bob("second"))
	r.waitScreen("?? #general <bob> second [UNVERIFIED: key_pending]")
	if n := r.count("signs with a key you have not seen before"); n != 1 {
		t.Errorf("asked %d times about one key, want once", n)
	}

	r.typeKeys("hello everyone\r")
	r.waitScreen("please type yes or no about bob's key")
	if data, err := os.ReadFile(cfg.KnownUsers); err == nil && len(data) > 0 {
		t.Fatalf("known_users written before the answer: %q", data)
	}
	r.typeKeys("yes\r")
	r.waitScreen("pinned bob's key")
	data, err := os.ReadFile(cfg.KnownUsers)
	if err != nil || !strings.Contains(string(data), "bob@"+s.addr+" ssh-ed25519 ") {
		t.Fatalf("known_users after yes: %q, %v", data, err)
	}
	c.send(bob("third"))
	r.waitScreen("✓ #general <bob> third")

	c.send(carol("hi"))
	r.waitScreen("carol@" + s.addr + " signs with a key you have not seen before")
	r.typeKeys("no\r")
	r.waitScreen("not trusting carol's key")
	c.send(carol("hi again"))
	r.waitScreen("!! #general <carol> hi again [FAILED: key_rejected]")
	if n := r.count("signs with a key you have not seen before"); n != 2 {
		t.Errorf("asked %d times in all, want twice (bob, carol)", n)
	}
	if data, _ := os.ReadFile(cfg.KnownUsers); strings.Contains(string(data), "carol@") {
		t.Errorf("a refused key was pinned: %q", data)
	}
	// /forget carol takes the "no" back: her next message asks again.
	r.typeKeys("/forget carol\r")
	r.waitScreen("forgot that you refused carol's key; you will be asked again")
	c.send(carol("hi a third time"))
	r.waitScreen("?? #general <carol> hi a third time [UNVERIFIED: key_pending]")
	if n := r.count("signs with a key you have not seen before"); n != 3 {
		t.Errorf("asked %d times in all, want 3 (bob, carol, carol after /forget)", n)
	}
	r.typeKeys("yes\r")
	r.waitScreen("pinned carol's key")

	// The line that was not an answer never reached the server; the
	// next line after the answers does.
	r.typeKeys("now sent\r")
	if req := nextReq(t, c); req.Text != "now sent" {
		t.Errorf("the client sent %+v, want only the line typed after the answers", req)
	}
	c.sess.Close()
	close(c.done)
}
