package handshake

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// rotationChecker returns a strict checker for hostport whose file lists
// the test server's current key, as after an earlier first contact.
func rotationChecker(t *testing.T, hostport string) (*KnownHostsChecker, string) {
	t.Helper()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := FormatKnownHost(hostport, pubOf(testHostKey("server"))) + "\n"
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := NewKnownHostsChecker(kh, hostport, PolicyStrict, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return k, kh
}

// announcedSession runs a real handshake whose server announces next, the
// way server.Server does (the first APP record after login), and returns
// the client's session and the announcement it received.
func announcedSession(t *testing.T, ccfg *ClientConfig, next ed25519.PrivateKey) (*Session, []byte) {
	t.Helper()
	cc, sc := tcpPipe(t)
	scfg := serverConfig(newVerifier())
	c, s := handshakePair(t, cc, sc, ccfg, scfg)
	if c.err != nil || s.err != nil {
		t.Fatalf("handshake: client %v, server %v", c.err, s.err)
	}
	p, err := MarshalHostKeyAnnouncement(scfg.HostKey, next, s.s.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.s.WriteMessage(p); err != nil {
		t.Fatal(err)
	}
	got, err := c.s.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return c.s, got
}

// TestHostKeyRotationRecordsNext: a strict client that trusted the current
// key records the next one, proved in this session, without asking; the
// file then trusts either key and the next connection records nothing.
func TestHostKeyRotationRecordsNext(t *testing.T) {
	const hostport = "chat.example:7000"
	k, kh := rotationChecker(t, hostport)
	next := testHostKey("next")
	ccfg, _ := clientConfig("alice", "correct horse")
	ccfg.HostKeyCallback = k.Check
	ccfg.HostKeyVerified = func(key ed25519.PublicKey) error { _, err := k.Record(key); return err }

	sess, payload := announcedSession(t, ccfg, next)
	if !IsHostKeyAnnouncement(payload) {
		t.Fatalf("%s is not recognised as an announcement", payload)
	}
	got, err := VerifyHostKeyAnnouncement(payload, sess.HostKey, sess.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pubOf(next)) {
		t.Fatalf("announced key %s, want %s", Fingerprint(got), Fingerprint(pubOf(next)))
	}
	added, err := k.RecordNext(sess.HostKey, got)
	if err != nil || !added {
		t.Fatalf("RecordNext = %v, %v; want added", added, err)
	}
	want := FormatKnownHost(hostport, pubOf(testHostKey("server"))) + "\n" + FormatKnownHost(hostport, pubOf(next)) + "\n"
	if b, _ := os.ReadFile(kh); string(b) != want {
		t.Errorf("known_hosts:\n%s\nwant:\n%s", b, want)
	}
	if added, err := k.RecordNext(sess.HostKey, got); err != nil || added {
		t.Errorf("second RecordNext = %v, %v; want nothing added", added, err)
	}
	// After the switch the strict checker accepts the next key alone.
	if err := k.Check(pubOf(next)); err != nil {
		t.Errorf("the recorded next key is refused: %v", err)
	}
}

// TestHostKeyAnnouncementRefused: an announcement proved by the wrong key,
// made for another session, or otherwise not exactly right is refused, and
// nothing reaches known_hosts.
func TestHostKeyAnnouncementRefused(t *testing.T) {
	const hostport = "chat.example:7000"
	current, next, other := testHostKey("server"), testHostKey("next"), testHostKey("other")

	k, kh := rotationChecker(t, hostport)
	before, _ := os.ReadFile(kh)
	ccfg, _ := clientConfig("alice", "correct horse")
	ccfg.HostKeyCallback = k.Check
	ccfg.HostKeyVerified = func(key ed25519.PublicKey) error { _, err := k.Record(key); return err }
	sess, good := announcedSession(t, ccfg, next)

	// A second real session: its announcement is valid there, not here.
	ccfg2, _ := clientConfig("alice", "correct horse")
	_, fromOther := announcedSession(t, ccfg2, next)

	edit := func(f func(ev map[string]string)) []byte {
		var ev map[string]string
		if err := json.Unmarshal(good, &ev); err != nil {
			t.Fatal(err)
		}
		f(ev)
		b, _ := json.Marshal(ev)
		return b
	}
	sign := func(key ed25519.PrivateKey, label string, nextPub ed25519.PublicKey) string {
		return base64.StdEncoding.EncodeToString(ed25519.Sign(key, announceMessage(label, sess.SessionID, pubOf(current), nextPub)))
	}
	cases := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"replayed from another session", fromOther, "does not verify for this session"},
		{"next proof by the wrong key", edit(func(ev map[string]string) {
			ev["proof_next"] = sign(other, announceLabelNext, pubOf(next))
		}), "proof by the next key"},
		{"current proof by the wrong key", edit(func(ev map[string]string) {
			ev["proof_current"] = sign(other, announceLabelCurrent, pubOf(next))
		}), "proof by the current key"},
		{"another key announced, proved by next", edit(func(ev map[string]string) {
			ev["next"] = base64.StdEncoding.EncodeToString(pubOf(other))
		}), "does not verify"},
		{"proofs swapped", edit(func(ev map[string]string) {
			ev["proof_current"], ev["proof_next"] = ev["proof_next"], ev["proof_current"]
		}), "does not verify"},
		{"current proof under the next label", edit(func(ev map[string]string) {
			ev["proof_current"] = sign(current, announceLabelNext, pubOf(next))
		}), "proof by the current key"},
		{"the current key as next", edit(func(ev map[string]string) {
			ev["next"] = base64.StdEncoding.EncodeToString(pubOf(current))
		}), "is the current one"},
		{"short key", edit(func(ev map[string]string) { ev["next"] = "AAAA" }), "32-byte"},
		{"no proof", edit(func(ev map[string]string) { delete(ev, "proof_next") }), "proof_next"},
		{"other type", edit(func(ev map[string]string) { ev["t"] = "msg" }), "event type"},
		{"not JSON", []byte("hostkeys"), "announcement"},
	}
	for _, tc := range cases {
		got, err := VerifyHostKeyAnnouncement(tc.payload, sess.HostKey, sess.SessionID)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got key %v, error %v; want an error containing %q", tc.name, got, err, tc.want)
		}
	}
	if b, _ := os.ReadFile(kh); !bytes.Equal(b, before) {
		t.Errorf("known_hosts changed:\n%s", b)
	}
}

// TestRecordNextNeedsVerifiedCurrent: the checker records a next key only
// for a current key that a server proved (Record after FINISHED), that the
// file still trusts, and never one the file revokes.
func TestRecordNextNeedsVerifiedCurrent(t *testing.T) {
	const hostport = "chat.example:7000"
	current, next := pubOf(testHostKey("server")), pubOf(testHostKey("next"))

	k, kh := rotationChecker(t, hostport)
	before, _ := os.ReadFile(kh)
	if err := k.Check(current); err != nil {
		t.Fatal(err)
	}
	// Checked but not proved: the handshake never got to FINISHED.
	if added, err := k.RecordNext(current, next); err == nil || added {
		t.Errorf("RecordNext before Record = %v, %v; want refused", added, err)
	}
	if _, err := k.Record(current); err != nil {
		t.Fatal(err)
	}
	// Another host's announcement does not count for this one.
	k2, err := NewKnownHostsChecker(kh, "other.example:7000", PolicyAcceptNew, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if added, err := k2.RecordNext(current, next); err == nil || added {
		t.Errorf("RecordNext on another checker = %v, %v; want refused", added, err)
	}
	// The next key is revoked: refused.
	revoked := string(before) + "@revoked * " + knownHostKeyType + " " + base64.StdEncoding.EncodeToString(next) + "\n"
	if err := os.WriteFile(kh, []byte(revoked), 0o600); err != nil {
		t.Fatal(err)
	}
	var rev *HostKeyRevokedError
	if added, err := k.RecordNext(current, next); !errors.As(err, &rev) || added {
		t.Errorf("RecordNext of a revoked key = %v, %v; want *HostKeyRevokedError", added, err)
	}
	if b, _ := os.ReadFile(kh); string(b) != revoked {
		t.Errorf("known_hosts changed:\n%s", b)
	}
	// The current key is no longer listed (removed meanwhile): refused.
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if added, err := k.RecordNext(current, next); err == nil || added {
		t.Errorf("RecordNext with the current key gone = %v, %v; want refused", added, err)
	}
	if b, _ := os.ReadFile(kh); len(b) != 0 {
		t.Errorf("known_hosts changed:\n%s", b)
	}
}

// TestAnnouncementBeforeFinished: an announcement, however well proved, in
// place of the server's FINISHED is a server that is not authenticated;
// nothing is recorded, neither the host key nor the announced one.
func TestAnnouncementBeforeFinished(t *testing.T) {
	const hostport = "chat.example:7000"
	for _, policy := range []HostKeyPolicy{PolicyStrict, PolicyAcceptNew} {
		t.Run(policy.String(), func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			initial := ""
			if policy == PolicyStrict {
				initial = FormatKnownHost(hostport, pubOf(testHostKey("server"))) + "\n"
			}
			if err := os.WriteFile(kh, []byte(initial), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := NewKnownHostsChecker(kh, hostport, policy, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			ccfg, asked := clientConfig("alice", "correct horse")
			ccfg.HostKeyCallback = k.Check
			ccfg.HostKeyVerified = func(key ed25519.PublicKey) error { _, err := k.Record(key); return err }
			err = runFake(t, &fakeServer{signer: testHostKey("server"), next: testHostKey("next"), then: announceRecord}, ccfg)
			if !errors.Is(err, ErrServerNotAuthenticated) {
				t.Fatalf("client error %v, want not authenticated", err)
			}
			if *asked != 0 {
				t.Error("the password was asked for")
			}
			if added, err := k.RecordNext(pubOf(testHostKey("server")), pubOf(testHostKey("next"))); err == nil || added {
				t.Errorf("RecordNext after the failed handshake = %v, %v; want refused", added, err)
			}
			if b, _ := os.ReadFile(kh); string(b) != initial {
				t.Errorf("known_hosts changed:\n%s", b)
			}
		})
	}
}

func TestMarshalHostKeyAnnouncementArguments(t *testing.T) {
	var sid [32]byte
	if _, err := MarshalHostKeyAnnouncement(testHostKey("a"), testHostKey("a"), sid); err == nil {
		t.Error("announcing the current key as next was allowed")
	}
	if _, err := MarshalHostKeyAnnouncement(testHostKey("a"), nil, sid); err == nil {
		t.Error("a nil next key was allowed")
	}
}

// BenchmarkHostKeyAnnouncement is what a rotation adds to each login: the
// server's two signatures, and the client's two verifications.
func BenchmarkHostKeyAnnouncement(b *testing.B) {
	current, next := testHostKey("server"), testHostKey("next")
	var sid [32]byte
	b.Run("server", func(b *testing.B) {
		for b.Loop() {
			if _, err := MarshalHostKeyAnnouncement(current, next, sid); err != nil {
				b.Fatal(err)
			}
		}
	})
	p, _ := MarshalHostKeyAnnouncement(current, next, sid)
	b.Run("client", func(b *testing.B) {
		for b.Loop() {
			if _, err := VerifyHostKeyAnnouncement(p, pubOf(current), sid); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestLoadNextHostKey: no next key is no rotation; a copy of the current
// key is refused rather than announced; a real one is returned.
func TestLoadNextHostKey(t *testing.T) {
	dir := t.TempDir()
	cur := filepath.Join(dir, HostKeyFile)
	current, err := CreateHostKey(cur)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := LoadNextHostKey(cur, current); k != nil || err != nil {
		t.Fatalf("no next key: %v, %v; want nil, nil", k, err)
	}
	b, err := os.ReadFile(cur)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cur+NextHostKeySuffix, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := LoadNextHostKey(cur, current); k != nil || err == nil || !strings.Contains(err.Error(), "is the current host key") {
		t.Fatalf("a copy of the current key: %v, %v; want refused", k, err)
	}
	os.Remove(cur + NextHostKeySuffix)
	next, err := CreateHostKey(cur + NextHostKeySuffix)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := LoadNextHostKey(cur, current); err != nil || !k.Equal(next) {
		t.Fatalf("next key: %v; want the one written", err)
	}
	if err := os.Chmod(cur+NextHostKeySuffix, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadNextHostKey(cur, current); err == nil {
		t.Fatal("a next key readable by others was accepted")
	}
}
