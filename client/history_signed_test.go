package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"securechat/chat"
	"securechat/msgsig"
)

// TestInteractiveHistorySignedTime: a verified message replayed from
// history shows the time its sender signed it when that is not the
// server's time; a live one does not.
func TestInteractiveHistorySignedTime(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signedAt := time.Now().Add(-3 * time.Hour)
	old := &msgsig.Sender{Signer: priv, Now: func() time.Time { return signedAt }}
	sg, err := old.Sign(chat.KindMsg, "#general", "bob", "from the past")
	if err != nil {
		t.Fatal(err)
	}
	s, conns := sessions(t, nil)
	cfg := s.config(t)
	cfg.KnownUsers = filepath.Join(t.TempDir(), "known_users")
	cfg.UserKeyPolicy = msgsig.PolicyAcceptNew
	r := startTermWith(t, s, nil, cfg)
	c := nextConn(t, conns)
	r.waitScreen("[#general] >")
	c.send(&chat.Event{Type: chat.TypeMsg, MID: 1, TS: time.Now().UTC().Format(time.RFC3339Nano), Kind: chat.KindMsg,
		Room: "#general", From: "bob", Text: "from the past", History: true,
		Key: msgsig.EncodeKey(pub), Sig: sg.Sig, Ctr: sg.Ctr, Cts: sg.Cts})
	want := "✓ #general <bob> from the past (signed " + signedAt.Local().Format("15:04") + ")"
	if y, m, d := signedAt.Local().Date(); y != time.Now().Year() {
		want = "✓ #general <bob> from the past (signed " + signedAt.Local().Format("Mon 2 Jan 2006 15:04") + ")"
	} else if m != time.Now().Month() || d != time.Now().Day() {
		want = "✓ #general <bob> from the past (signed " + signedAt.Local().Format("Mon 2 Jan 15:04") + ")"
	}
	r.waitScreen(want)
	c.sess.Close()
	close(c.done)
}
