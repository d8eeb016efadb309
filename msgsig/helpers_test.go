package msgsig

import (
	"crypto/ed25519"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"
)

// testKey is a fixed key made from label, so failures reproduce.
func testKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("msgsig test key " + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

const testServer = "chat.example.org:7000"

// t0 is the clock of the tests: every message is signed and received then
// unless a test moves it.
var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

// signedEvent is what an honest server relays for a message that from
// signed with key: the event carries the request's signature fields
// unchanged and the key the session logged in with.
func signedEvent(t testing.TB, key ed25519.PrivateKey, kind, target, from string, ctr uint64, text string) *Event {
	t.Helper()
	f := Fields{Kind: kind, Target: target, From: from, Counter: ctr, Time: uint64(t0.UnixMilli()), Text: text}
	sig, err := Sign(key, &f)
	if err != nil {
		t.Fatal(err)
	}
	ev := &Event{Kind: kind, From: from, Text: text, Key: EncodeKey(key.Public().(ed25519.PublicKey)),
		Sig: EncodeSig(sig), Ctr: ctr, Cts: f.Time}
	if kind == KindDM {
		ev.To = target
	} else {
		ev.Room = target
	}
	return ev
}

// newTestVerifier returns a verifier for user self with a fresh known_users
// file, whose clock stands at *now.
func newTestVerifier(t testing.TB, self string, policy Policy, now *time.Time) (*Verifier, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_users")
	v, err := NewVerifier(Config{
		KnownUsers: path, HostPort: testServer, Self: self, Policy: policy,
		Ask: func(string, string) (bool, error) {
			t.Error("asked, under a policy that never asks")
			return false, nil
		},
		Now: func() time.Time { return *now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v, path
}

func expect(t *testing.T, what string, got Result, status Status, reason Reason) {
	t.Helper()
	if got.Status != status || got.Reason != reason {
		t.Errorf("%s: got %v/%v (%v), want %v/%v", what, got.Status, got.Reason, got.Err, status, reason)
	}
}
