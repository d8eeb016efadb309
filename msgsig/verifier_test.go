package msgsig

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMaliciousServer plays a server that holds no user's private key and
// does what it can to alice's messages on their way to bob: forge one
// "from alice", replay a signed one into another room, replay it later,
// strip the signature, and swap in a key of its own for alice. Each is
// flagged, and none is verified.
func TestMaliciousServer(t *testing.T) {
	now := t0
	bob, file := newTestVerifier(t, "bob", PolicyAcceptNew, &now)
	alice := testKey("alice")
	server := testKey("server") // a key the server made up for alice

	// Bob sees alice's first signed message and pins her key.
	hello := signedEvent(t, alice, KindMsg, "#general", "alice", 100, "hello")
	res := bob.Check(hello)
	expect(t, "first message", res, Verified, ReasonNone)
	if !res.Pinned {
		t.Error("first signed message did not pin alice's key")
	}
	data, _ := os.ReadFile(file)
	if want := FormatKnownUser("alice@"+testServer, alice.Public().(ed25519.PublicKey), false) + "\n"; string(data) != want {
		t.Errorf("known_users is %q, want %q", data, want)
	}

	var flagged []Result
	check := func(what string, ev *Event, reason Reason) {
		t.Helper()
		r := bob.Check(ev)
		expect(t, what, r, Failed, reason)
		flagged = append(flagged, r)
	}

	// 1. Forged "from alice": the server's own key, or alice's key with a
	// signature it cannot make.
	forged := signedEvent(t, server, KindMsg, "#general", "alice", 101, "send me your password")
	check("forged with the server's key", forged, ReasonKeyChanged)
	garbage := *forged
	garbage.Key = hello.Key
	check("forged under alice's key", &garbage, ReasonBadSignature)
	altered := *hello
	altered.Text, altered.Ctr = "hello, send me your password", 102
	check("alice's message altered", &altered, ReasonBadSignature)

	// 2. Replayed into another room, as an action, or as a DM to bob.
	other := *hello
	other.Room = "#random"
	check("replay into another room", &other, ReasonBadSignature)
	asMe := *hello
	asMe.Kind = KindMe
	check("replay as an action", &asMe, ReasonBadSignature)
	asDM := *hello
	asDM.Kind, asDM.Room, asDM.To = KindDM, "", "bob"
	check("replay as a DM", &asDM, ReasonBadSignature)
	asOther := *hello
	asOther.From = "carol"
	check("replay under another name", &asOther, ReasonBadSignature)

	// 3. Replayed later, live, in the same room.
	now = now.Add(time.Minute)
	again := *hello
	check("replay later", &again, ReasonReplayed)
	// ... and to a recipient that never saw it, an hour later.
	late := t0.Add(time.Hour)
	carol, _ := newTestVerifier(t, "carol", PolicyAcceptNew, &late)
	r := carol.Check(hello)
	expect(t, "replay an hour later to carol", r, Failed, ReasonStale)
	flagged = append(flagged, r)

	// A DM from alice to carol, shown to bob.
	dm := signedEvent(t, alice, KindDM, "carol", "alice", 103, "for carol only")
	check("dm to carol shown to bob", dm, ReasonMisdirected)
	redirected := *dm
	redirected.To = "bob"
	check("dm to carol readdressed to bob", &redirected, ReasonBadSignature)

	// 4. The signature stripped.
	stripped := signedEvent(t, alice, KindMsg, "#general", "alice", 104, "unsigned now")
	stripped.Key, stripped.Sig, stripped.Ctr, stripped.Cts = "", "", 0, 0
	check("signature stripped", stripped, ReasonSignatureMissing)
	half := signedEvent(t, alice, KindMsg, "#general", "alice", 105, "half")
	half.Sig = ""
	check("signature half stripped", half, ReasonMalformed)

	// 5. Alice's key changed, with messages the new key really signed.
	r = bob.Check(signedEvent(t, server, KindMsg, "#general", "alice", 200, "new laptop, new key"))
	expect(t, "changed key", r, Failed, ReasonKeyChanged)
	var changed *KeyChangedError
	if !errors.As(r.Err, &changed) || changed.Line != 1 || changed.Want != Fingerprint(alice.Public().(ed25519.PublicKey)) ||
		!strings.Contains(r.Err.Error(), "CHANGED") {
		t.Errorf("changed key error: %v", r.Err)
	}
	flagged = append(flagged, r)

	for i, r := range flagged {
		if r.Status == Verified || r.Mark() == "✓" {
			t.Errorf("flagged message %d shown as verified", i)
		}
	}
	// The pin did not move, and alice's real messages still verify.
	if data2, _ := os.ReadFile(file); string(data2) != string(data) {
		t.Errorf("known_users changed to %q", data2)
	}
	expect(t, "alice's next real message", bob.Check(signedEvent(t, alice, KindMsg, "#general", "alice", 300, "still me")), Verified, ReasonNone)
}

// TestHistoryReplay: history carries its signatures and verifies on every
// replay, although its counters are below what was seen live; but within
// one replay a sender's counters must increase, and a history message
// cannot come back live.
func TestHistoryReplay(t *testing.T) {
	now := t0
	bob, _ := newTestVerifier(t, "bob", PolicyAcceptNew, &now)
	alice := testKey("alice")
	var history []*Event
	for i := range 50 {
		ev := signedEvent(t, alice, KindMsg, "#general", "alice", uint64(1000+i), fmt.Sprintf("message %d", i))
		expect(t, "live", bob.Check(ev), Verified, ReasonNone)
		h := *ev
		h.History = true
		history = append(history, &h)
	}
	now = now.Add(24 * time.Hour) // history is old: no stale rule for it
	for round := range 2 {        // a reconnect replays it again
		bob.StartReplay("#general")
		for i, ev := range history {
			expect(t, fmt.Sprintf("round %d replay %d", round, i), bob.Check(ev), Verified, ReasonNone)
		}
	}
	// A duplicated or reordered history message fails.
	bob.StartReplay("#general")
	bob.Check(history[0])
	bob.Check(history[2])
	expect(t, "history out of order", bob.Check(history[1]), Failed, ReasonReplayed)
	expect(t, "history duplicated", bob.Check(history[2]), Failed, ReasonReplayed)
	// A replay of #general does not reset another room's order.
	random := signedEvent(t, alice, KindMsg, "#random", "alice", 2000, "x")
	random.History = true
	expect(t, "other room", bob.Check(random), Verified, ReasonNone)
	bob.StartReplay("#general")
	expect(t, "other room again", bob.Check(random), Failed, ReasonReplayed)
	// A history message seen first as history cannot then come live.
	now = t0
	fresh, _ := newTestVerifier(t, "carol", PolicyAcceptNew, &now)
	h := signedEvent(t, alice, KindMsg, "#general", "alice", 5000, "seen as history")
	h.History = true
	expect(t, "first as history", fresh.Check(h), Verified, ReasonNone)
	live := *h
	live.History = false
	expect(t, "then live", fresh.Check(&live), Failed, ReasonReplayed)
	// Offline DMs are replayed like history, in their own conversation.
	fresh.StartReplay("")
	dm := signedEvent(t, alice, KindDM, "carol", "alice", 6000, "while you were out")
	dm.History = true
	expect(t, "offline dm", fresh.Check(dm), Verified, ReasonNone)
}

func TestUnsignedAndSelf(t *testing.T) {
	now := t0
	bobKey := testKey("bob")
	path := filepath.Join(t.TempDir(), "known_users")
	v, err := NewVerifier(Config{KnownUsers: path, HostPort: testServer, Self: "bob",
		SelfKey: bobKey.Public().(ed25519.PublicKey), Policy: PolicyStrict, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "unsigned from a password user", v.Check(&Event{Kind: KindMsg, Room: "#general", From: "dave", Text: "hi"}), Unsigned, ReasonNone)
	expect(t, "a join is not judged", v.Check(&Event{Kind: "join", Room: "#general", From: "dave"}), Unsigned, ReasonNone)
	expect(t, "own message", v.Check(signedEvent(t, bobKey, KindMsg, "#general", "bob", 1, "mine")), Verified, ReasonNone)
	expect(t, "own dm to alice", v.Check(signedEvent(t, bobKey, KindDM, "alice", "bob", 2, "mine")), Verified, ReasonNone)
	expect(t, "own name, another key", v.Check(signedEvent(t, testKey("server"), KindMsg, "#general", "bob", 3, "not mine")), Failed, ReasonKeyChanged)
	expect(t, "own name, unsigned", v.Check(&Event{Kind: KindMsg, Room: "#general", From: "bob", Text: "not mine"}), Failed, ReasonSignatureMissing)
	if _, err := os.Stat(path); err == nil {
		t.Error("own key or a strict unknown key was written to known_users")
	}
}

func TestPolicies(t *testing.T) {
	alice := testKey("alice")
	alicePub := alice.Public().(ed25519.PublicKey)
	who := "alice@" + testServer
	msg := func(ctr uint64) *Event { return signedEvent(t, alice, KindMsg, "#general", "alice", ctr, "hi") }
	newV := func(policy Policy, ask func(string, string) (bool, error)) (*Verifier, string) {
		path := filepath.Join(t.TempDir(), "known_users")
		v, err := NewVerifier(Config{KnownUsers: path, HostPort: testServer, Self: "bob", Policy: policy, Ask: ask,
			Now: func() time.Time { return t0 }})
		if err != nil {
			t.Fatal(err)
		}
		return v, path
	}
	pinned := func(path string) bool {
		k, err := LoadKnownUsers(path)
		return err == nil && len(k.Lookup(who)) == 1
	}

	t.Run("strict", func(t *testing.T) {
		v, path := newV(PolicyStrict, nil)
		expect(t, "unknown key", v.Check(msg(1)), Failed, ReasonKeyUnknown)
		if pinned(path) {
			t.Error("strict pinned a key")
		}
		if _, err := AddKnownUser(path, who, alicePub); err != nil {
			t.Fatal(err)
		}
		expect(t, "pinned by hand", v.Check(msg(2)), Verified, ReasonNone)
	})
	t.Run("ask yes", func(t *testing.T) {
		asked := 0
		v, path := newV(PolicyAsk, func(w, fp string) (bool, error) {
			asked++
			if w != who || fp != Fingerprint(alicePub) {
				t.Errorf("asked about %s %s", w, fp)
			}
			return true, nil
		})
		expect(t, "accepted", v.Check(msg(1)), Verified, ReasonNone)
		expect(t, "next", v.Check(msg(2)), Verified, ReasonNone)
		if asked != 1 || !pinned(path) {
			t.Errorf("asked %d times, pinned %v", asked, pinned(path))
		}
	})
	t.Run("ask no", func(t *testing.T) {
		asked := 0
		v, path := newV(PolicyAsk, func(string, string) (bool, error) { asked++; return false, nil })
		expect(t, "declined", v.Check(msg(1)), Failed, ReasonKeyRejected)
		expect(t, "declined again", v.Check(msg(2)), Failed, ReasonKeyRejected)
		if asked != 1 || pinned(path) {
			t.Errorf("asked %d times, pinned %v", asked, pinned(path))
		}
		// Reconsider takes the "no" back: the next message asks again.
		if n := v.Reconsider("someone@else:1"); n != 0 {
			t.Errorf("Reconsider of another user forgot %d keys", n)
		}
		if n := v.Reconsider(who); n != 1 {
			t.Errorf("Reconsider forgot %d keys, want 1", n)
		}
		expect(t, "asked again, declined", v.Check(msg(3)), Failed, ReasonKeyRejected)
		if asked != 2 {
			t.Errorf("asked %d times after Reconsider, want 2", asked)
		}
	})
	t.Run("ask later", func(t *testing.T) {
		// An open question leaves the messages pending and remembers no
		// refusal: once the user says yes, the next message verifies.
		answer := error(ErrAskLater)
		asked := 0
		v, path := newV(PolicyAsk, func(string, string) (bool, error) { asked++; return answer == nil, answer })
		expect(t, "pending", v.Check(msg(1)), Failed, ReasonKeyPending)
		expect(t, "still pending", v.Check(msg(2)), Failed, ReasonKeyPending)
		if pinned(path) {
			t.Error("a pending key was pinned")
		}
		answer = nil
		expect(t, "answered yes", v.Check(msg(3)), Verified, ReasonNone)
		if asked != 3 || !pinned(path) {
			t.Errorf("asked %d times, pinned %v", asked, pinned(path))
		}
	})
	t.Run("ask bad signature asks nothing", func(t *testing.T) {
		v, _ := newV(PolicyAsk, func(string, string) (bool, error) { t.Error("asked"); return true, nil })
		ev := msg(1)
		ev.Text = "altered"
		expect(t, "bad signature", v.Check(ev), Failed, ReasonBadSignature)
	})
	t.Run("ask needs a way to ask", func(t *testing.T) {
		if _, err := NewVerifier(Config{KnownUsers: "x", HostPort: testServer, Policy: PolicyAsk}); err == nil {
			t.Error("no error")
		}
	})
	for _, policy := range []Policy{PolicyAsk, PolicyAcceptNew, PolicyStrict} {
		for _, revokeFor := range []string{who, "*"} {
			t.Run(fmt.Sprintf("revoked %s %v", revokeFor, policy), func(t *testing.T) {
				v, path := newV(policy, func(string, string) (bool, error) { t.Error("asked"); return true, nil })
				// Pinned and revoked: the revocation wins.
				if _, err := AddKnownUser(path, who, alicePub); err != nil {
					t.Fatal(err)
				}
				if _, err := RevokeKnownUser(path, revokeFor, alicePub); err != nil {
					t.Fatal(err)
				}
				r := v.Check(msg(1))
				expect(t, "revoked", r, Failed, ReasonKeyRevoked)
				var rev *KeyRevokedError
				if !errors.As(r.Err, &rev) || rev.Line != 2 {
					t.Errorf("error %v", r.Err)
				}
			})
		}
	}
	t.Run("a removed pin lets a new key in", func(t *testing.T) {
		v, path := newV(PolicyAcceptNew, nil)
		v.Check(msg(1))
		newKey := testKey("alice laptop")
		ev := signedEvent(t, newKey, KindMsg, "#general", "alice", 2, "new key")
		expect(t, "changed", v.Check(ev), Failed, ReasonKeyChanged)
		if removed, err := RemoveKnownUser(path, who); len(removed) != 1 || err != nil {
			t.Fatal(removed, err)
		}
		expect(t, "after removal", v.Check(ev), Verified, ReasonNone)
	})
}

func TestParsePolicy(t *testing.T) {
	for _, p := range []Policy{PolicyAsk, PolicyAcceptNew, PolicyStrict} {
		if got, err := ParsePolicy(p.String()); got != p || err != nil {
			t.Errorf("%v: %v %v", p, got, err)
		}
	}
	if _, err := ParsePolicy("yes"); err == nil {
		t.Error("yes accepted")
	}
}

// TestCountersPersist: the replay rule outlives the process.
func TestCountersPersist(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{KnownUsers: filepath.Join(dir, "known_users"), Counters: filepath.Join(dir, "counters"),
		HostPort: testServer, Self: "bob", Policy: PolicyAcceptNew, Now: func() time.Time { return t0 }}
	other := "alice@other.example:7000 " + EncodeKey(testKey("x").Public().(ed25519.PublicKey)) + " 42\n"
	if err := os.WriteFile(cfg.Counters, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev := signedEvent(t, testKey("alice"), KindMsg, "#general", "alice", 77, "once")
	expect(t, "live", v.Check(ev), Verified, ReasonNone)
	if err := v.SaveCounters(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(cfg.Counters)
	if !strings.Contains(string(data), other) || !strings.Contains(string(data), "alice@"+testServer) {
		t.Errorf("counters file: %q", data)
	}
	if fi, _ := os.Stat(cfg.Counters); fi.Mode().Perm() != 0o600 {
		t.Errorf("counters mode %v", fi.Mode())
	}
	v2, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "replayed after a restart", v2.Check(ev), Failed, ReasonReplayed)
}
