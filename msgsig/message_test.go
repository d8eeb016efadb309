package msgsig

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func TestMessageLayout(t *testing.T) {
	key := testKey("alice")
	pub := key.Public().(ed25519.PublicKey)
	f := Fields{Kind: "me", Target: "#rust", From: "alice", Counter: 0x0102030405060708, Time: 1764496800123, Text: "waves"}
	// Written out by hand from PROTOCOL.md §13.16.2.
	var want []byte
	want = append(want, "securechat v1 signed message\x00"...)
	want = append(want, 2, 'm', 'e')
	want = append(want, 5, '#', 'r', 'u', 's', 't')
	want = append(want, 5, 'a', 'l', 'i', 'c', 'e')
	want = append(want, pub...)
	want = append(want, 1, 2, 3, 4, 5, 6, 7, 8)
	want = binary.BigEndian.AppendUint64(want, 1764496800123)
	want = append(want, 0, 0, 0, 5, 'w', 'a', 'v', 'e', 's')
	if got := Message(pub, &f); !bytes.Equal(got, want) {
		t.Errorf("signed bytes:\n got %x\nwant %x", got, want)
	}
}

func TestSignVerify(t *testing.T) {
	key := testKey("alice")
	pub := key.Public().(ed25519.PublicKey)
	f := Fields{Kind: KindMsg, Target: "#general", From: "alice", Counter: 7, Time: 1764496800123, Text: "hello"}
	sig, err := Sign(key, &f)
	if err != nil {
		t.Fatal(err)
	}
	if !Verify(pub, &f, sig) {
		t.Fatal("a fresh signature does not verify")
	}
	// Every field is covered: changing any one fails.
	changes := map[string]func(g *Fields){
		"kind me":      func(g *Fields) { g.Kind = KindMe },
		"other room":   func(g *Fields) { g.Target = "#random" },
		"as a dm":      func(g *Fields) { g.Kind, g.Target = KindDM, "bob" },
		"other sender": func(g *Fields) { g.From = "mallory" },
		"counter":      func(g *Fields) { g.Counter++ },
		"time":         func(g *Fields) { g.Time++ },
		"text":         func(g *Fields) { g.Text = "hellO" },
		"text longer":  func(g *Fields) { g.Text += " " },
		// Moving bytes between length-prefixed fields must not collide.
		"shifted": func(g *Fields) { g.Target, g.From = "#generala", "lice" },
	}
	for name, change := range changes {
		g := f
		change(&g)
		if Verify(pub, &g, sig) {
			t.Errorf("%s: still verifies", name)
		}
	}
	if Verify(testKey("mallory").Public().(ed25519.PublicKey), &f, sig) {
		t.Error("verifies under another key")
	}
	for i := range sig {
		bad := bytes.Clone(sig)
		bad[i] ^= 0x40
		if Verify(pub, &f, bad) {
			t.Errorf("signature with byte %d flipped verifies", i)
		}
	}
	if Verify(pub, &f, sig[:63]) {
		t.Error("short signature verifies")
	}
}

func TestSignRefusesFields(t *testing.T) {
	key := testKey("alice")
	good := Fields{Kind: KindMsg, Target: "#general", From: "alice", Counter: 1, Text: "x"}
	bad := map[string]func(f *Fields){
		"kind topic":        func(f *Fields) { f.Kind = "topic" },
		"room without #":    func(f *Fields) { f.Target = "general" },
		"room upper case":   func(f *Fields) { f.Target = "#General" },
		"dm to a room":      func(f *Fields) { f.Kind = KindDM },
		"sender empty":      func(f *Fields) { f.From = "" },
		"sender upper case": func(f *Fields) { f.From = "Alice" },
		"counter 0":         func(f *Fields) { f.Counter = 0 },
		"counter 2^53":      func(f *Fields) { f.Counter = MaxCounter + 1 },
		"time 2^53":         func(f *Fields) { f.Time = MaxCounter + 1 },
	}
	for name, change := range bad {
		f := good
		change(&f)
		if _, err := Sign(key, &f); err == nil || !strings.HasPrefix(err.Error(), "msgsig: ") {
			t.Errorf("%s: Sign returned %v", name, err)
		}
	}
}

// agentCryptoSigner is a key held by an ssh-agent seen as a crypto.Signer,
// the shape the client gives its login keys.
type agentCryptoSigner struct {
	s   ssh.Signer
	pub ed25519.PublicKey
}

func (a agentCryptoSigner) Public() crypto.PublicKey { return a.pub }
func (a agentCryptoSigner) Sign(_ io.Reader, msg []byte, _ crypto.SignerOpts) ([]byte, error) {
	sig, err := a.s.Sign(nil, msg)
	if err != nil {
		return nil, err
	}
	return sig.Blob, nil
}

func TestSignWithAgentKey(t *testing.T) {
	key := testKey("alice")
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	signers, err := kr.Signers()
	if err != nil || len(signers) != 1 {
		t.Fatal(signers, err)
	}
	pub := key.Public().(ed25519.PublicKey)
	s := &Sender{Signer: agentCryptoSigner{signers[0], pub}, Now: func() time.Time { return t0 }}
	got, err := s.Sign(KindDM, "bob", "alice", "psst")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := DecodeSig(got.Sig)
	if err != nil {
		t.Fatal(err)
	}
	f := Fields{Kind: KindDM, Target: "bob", From: "alice", Counter: got.Ctr, Time: got.Cts, Text: "psst"}
	if !Verify(pub, &f, sig) || got.Key != EncodeKey(pub) {
		t.Error("agent signature does not verify")
	}
	// An agent that signs with another key is caught by the sender.
	liar := &Sender{Signer: agentCryptoSigner{signers[0], testKey("bob").Public().(ed25519.PublicKey)}}
	if _, err := liar.Sign(KindMsg, "#general", "alice", "x"); err == nil {
		t.Error("a signature by another key was returned")
	}
}

func TestSenderCounter(t *testing.T) {
	now := t0
	s := &Sender{Signer: testKey("alice"), Now: func() time.Time { return now }}
	var last uint64
	for i := range 5 {
		if i == 3 {
			now = now.Add(-time.Hour) // the clock steps back
		}
		got, err := s.Sign(KindMsg, "#general", "alice", "x")
		if err != nil {
			t.Fatal(err)
		}
		if got.Ctr <= last {
			t.Fatalf("message %d: counter %d after %d", i, got.Ctr, last)
		}
		last = got.Ctr
	}
	// A new process (nothing stored) starts above the old one's counters
	// once its clock has moved on by a millisecond.
	now = t0.Add(time.Millisecond)
	s2 := &Sender{Signer: testKey("alice"), Now: func() time.Time { return now }}
	got, _ := s2.Sign(KindMsg, "#general", "alice", "x")
	if got.Ctr <= last {
		t.Errorf("restarted sender: counter %d not above %d", got.Ctr, last)
	}
}
