package client

import (
	"path/filepath"
	"strings"
	"testing"

	"securechat/chat"
	"securechat/msgsig"
)

// TestWhoisKeyLines: /whois adds, per key the server published, whether
// known_users pins it (matches), does not know it, pins another (DIFFERS),
// or revokes it; with no key online it shows what is pinned; the user's
// own keys are compared with the session's.
func TestWhoisKeyLines(t *testing.T) {
	_, pinned := signedBy(t, "bob")
	_, other := signedBy(t, "bob")
	_, revoked := signedBy(t, "bob")
	_, mine := signedBy(t, "alice")
	addr := "127.0.0.1:7000"
	cfg := &Config{Addr: addr, KnownUsers: filepath.Join(t.TempDir(), "known_users")}
	if _, err := msgsig.AddKnownUser(cfg.KnownUsers, msgsig.UserAt("bob", addr), pinned); err != nil {
		t.Fatal(err)
	}
	if _, err := msgsig.RevokeKnownUser(cfg.KnownUsers, "*", revoked); err != nil {
		t.Fatal(err)
	}
	whois := func(user string, keys ...[]byte) *chat.Event {
		ev := &chat.Event{Type: chat.TypeReply, Cmd: "whois", User: user}
		for _, k := range keys {
			ev.Keys = append(ev.Keys, msgsig.EncodeKey(k))
		}
		return ev
	}
	fp := msgsig.Fingerprint
	file := cfg.KnownUsers
	tests := []struct {
		name string
		ev   *chat.Event
		want []string
	}{
		{"pinned", whois("bob", pinned), []string{"bob signs with " + fp(pinned) + ": pinned, matches " + file + ":1"}},
		{"changed and revoked", whois("bob", other, revoked), []string{
			"bob signs with " + fp(other) + ": DIFFERS from the key pinned in " + file + ":1 (" + fp(pinned) + ")",
			"bob signs with " + fp(revoked) + ": REVOKED in " + file + ":2"}},
		{"not pinned", whois("carol", other), []string{"carol signs with " + fp(other) + ": not pinned in " + file}},
		{"offline key pinned", whois("bob"), []string{"bob has no session signing now; " + file + ":1 pins " + fp(pinned)}},
		{"nothing", whois("carol"), []string{"carol has no session signing now, and no key pinned"}},
		{"own", whois("alice", mine, other), []string{"you sign with " + fp(mine) + ": this session's key",
			"a session of yours signs with " + fp(other) + ": not this session's key"}},
		{"not whois", &chat.Event{Type: chat.TypeReply, Cmd: "who", User: "bob"}, nil},
	}
	for _, tt := range tests {
		got := whoisKeyLines(cfg, "alice", mine, tt.ev)
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s:\n%s\nwant:\n%s", tt.name, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
	if got := whoisKeyLines(&Config{Addr: addr}, "alice", nil, whois("bob", pinned)); got != nil {
		t.Errorf("without known_users: %q", got)
	}
}

// TestInteractiveWhoisShowsPin: the interactive client shows the lines
// after the server's whois reply.
func TestInteractiveWhoisShowsPin(t *testing.T) {
	_, bobKey := signedBy(t, "bob")
	s, conns := sessions(t, nil)
	cfg := s.config(t)
	cfg.KnownUsers = filepath.Join(t.TempDir(), "known_users")
	cfg.UserKeyPolicy = msgsig.PolicyAcceptNew
	if _, err := msgsig.AddKnownUser(cfg.KnownUsers, msgsig.UserAt("bob", s.addr), bobKey); err != nil {
		t.Fatal(err)
	}
	r := startTermWith(t, s, nil, cfg)
	c := nextConn(t, conns)
	r.waitScreen("[#general] >")
	r.typeKeys("/whois bob\r")
	req := nextReq(t, c)
	if req.Type != chat.TypeCmd || req.Cmd != "whois" {
		t.Fatalf("the client sent %+v, want /whois", req)
	}
	c.send(&chat.Event{Type: chat.TypeReply, ID: req.ID, Cmd: "whois", User: "bob", Text: "bob is online",
		Keys: []string{msgsig.EncodeKey(bobKey)}})
	r.waitScreen("bob is online")
	r.waitScreen("bob signs with " + msgsig.Fingerprint(bobKey) + ": pinned, matches " + cfg.KnownUsers + ":1")
	c.sess.Close()
	close(c.done)
}
