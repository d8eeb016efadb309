package handshake

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// helloSeeds returns valid CLIENT_HELLO frames for each group and for all
// groups at once.
func helloSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	for _, gs := range [][]Group{{GroupX25519}, {GroupMLKEM768X25519}, {GroupFFDHE3072}, allGroups} {
		ch, _ := newRawHello(tb, gs...)
		f, err := ch.marshal()
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, f)
	}
	return seeds
}

func FuzzParseClientHello(f *testing.F) {
	for _, s := range helloSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{frameClientHello, 0, 0, 0})
	f.Fuzz(func(t *testing.T, frame []byte) {
		ch, err := parseClientHello(frame)
		if err != nil {
			return
		}
		again, err := ch.marshal()
		if err != nil {
			t.Fatalf("parsed message does not marshal: %v", err)
		}
		if !bytes.Equal(again, frame) {
			t.Fatalf("re-marshal differs:\n in  %x\n out %x", frame, again)
		}
		// The negotiation rules and share checks must not panic on anything
		// that parses. (The ffdhe3072 exponentiation is left out for speed;
		// its input check is what matters.)
		hs := &serverHandshake{cfg: &ServerConfig{Transport: "tcp"}, groups: allGroups, ch: ch}
		if hs.negotiate() == nil {
			if hs.group == GroupFFDHE3072 {
				parseFFDHEPublic(hs.clientShare)
			} else {
				serverKeyExchange(hs.group, hs.clientShare, rand.Reader)
			}
		}
	})
}

func FuzzParseServerHello(f *testing.F) {
	for _, g := range allGroups {
		c, err := newClientKeyShare(g, rand.Reader)
		if err != nil {
			f.Fatal(err)
		}
		share, _, err := serverKeyExchange(g, c.public(), rand.Reader)
		if err != nil {
			f.Fatal(err)
		}
		sh := &serverHello{version: versionV1, group: g, keyShare: share, sigAlg: sigAlgEd25519,
			hostKey: pub("server")}
		frame, err := sh.marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		sh, err := parseServerHello(frame)
		if err != nil {
			return
		}
		again, err := sh.marshal()
		if err != nil {
			t.Fatalf("parsed message does not marshal: %v", err)
		}
		if !bytes.Equal(again, frame) {
			t.Fatalf("re-marshal differs:\n in  %x\n out %x", frame, again)
		}
		if len(sh.hostKey) != hostKeyLen || len(sh.signature) != signatureLen {
			t.Fatal("parser let a wrong-size host key or signature through")
		}
	})
}
