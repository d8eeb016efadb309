package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"securechat/chat"
	"securechat/handshake"
	"securechat/transport"
)

// TestHostKeyAnnouncement: with a next host key the server's first APP
// record after login is the announcement, proved for that session;
// SetHostKeys switches the keys for new connections, and without a next
// key the first APP record is the welcome.
func TestHostKeyAnnouncement(t *testing.T) {
	for _, tr := range []transport.Transport{transport.TCP, transport.QUIC} {
		t.Run(tr.Name(), func(t *testing.T) {
			ts := startServer(t, tr, serverOpts{})
			_, current, _ := ed25519.GenerateKey(rand.Reader)
			_, next, _ := ed25519.GenerateKey(rand.Reader)
			curPub, nextPub := current.Public().(ed25519.PublicKey), next.Public().(ed25519.PublicKey)

			first := func(hostKey ed25519.PublicKey) (*handshake.Session, []byte) {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, err := ts.tr.Dial(ctx, ts.addr, nil)
				if err != nil {
					t.Fatal(err)
				}
				sess, err := handshake.Client(ctx, c, &handshake.ClientConfig{
					Transport:       ts.tr.Name(),
					HostKeyCallback: handshake.FixedHostKey(hostKey),
					User:            "alice",
					Password:        func(int) ([]byte, error) { return []byte("password-alice"), nil },
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { sess.Close() })
				p, _ := chat.EncodeRequest(&chat.Request{Type: chat.TypeHello, ID: "h", V: chat.Version})
				if err := sess.WriteMessage(p); err != nil {
					t.Fatal(err)
				}
				got, err := sess.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				return sess, got
			}

			ts.srv.SetHostKeys(current, next)
			sess, p := first(curPub)
			got, err := handshake.VerifyHostKeyAnnouncement(p, sess.HostKey, sess.SessionID)
			if err != nil {
				t.Fatalf("first APP record %s: %v", p, err)
			}
			if !bytes.Equal(got, nextPub) {
				t.Errorf("announced %s, want %s", handshake.Fingerprint(got), handshake.Fingerprint(nextPub))
			}

			ts.srv.SetHostKeys(next, nil)
			_, p = first(nextPub)
			if handshake.IsHostKeyAnnouncement(p) {
				t.Fatal("announcement sent without a next key")
			}
			if ev, err := chat.DecodeEvent(p); err != nil || ev.Type != chat.TypeWelcome {
				t.Errorf("first APP record %s, want the welcome", p)
			}
		})
	}
}
