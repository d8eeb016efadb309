package handshake

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestHandshakeEachGroup(t *testing.T) {
	for _, g := range allGroups {
		t.Run(g.String(), func(t *testing.T) {
			v := newVerifier()
			ccfg, asked := clientConfig("alice", "correct horse")
			ccfg.Groups = []Group{g}
			cc, sc := tcpPipe(t)
			c, s := handshakePair(t, cc, sc, ccfg, serverConfig(v))
			if c.err != nil || s.err != nil {
				t.Fatalf("client: %v, server: %v", c.err, s.err)
			}
			if c.s.SessionID != s.s.SessionID {
				t.Error("session ids differ")
			}
			if c.s.SessionID == [32]byte{} {
				t.Error("zero session id")
			}
			if c.s.Group != g || s.s.Group != g {
				t.Errorf("groups %v/%v, want %v", c.s.Group, s.s.Group, g)
			}
			if s.s.User != "alice" || c.s.User != "alice" {
				t.Errorf("users %q/%q", c.s.User, s.s.User)
			}
			if !bytes.Equal(c.s.HostKey, testHostKey("server").Public().(ed25519.PublicKey)) {
				t.Error("client session has the wrong host key")
			}
			if *asked != 1 {
				t.Errorf("password asked %d times", *asked)
			}
			msg := []byte("hello over " + g.String())
			errc := make(chan error, 1)
			go func() { errc <- c.s.WriteMessage(msg) }()
			got, err := s.s.ReadMessage()
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("ReadMessage = %q, %v", got, err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestServerPrefersClientOrder(t *testing.T) {
	ccfg, _ := clientConfig("alice", "correct horse")
	ccfg.Groups = []Group{GroupX25519, GroupMLKEM768X25519}
	scfg := serverConfig(newVerifier())
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, scfg)
	if c.err != nil || s.err != nil {
		t.Fatalf("client: %v, server: %v", c.err, s.err)
	}
	if c.s.Group != GroupX25519 {
		t.Errorf("group %v, want x25519 (the client's first choice)", c.s.Group)
	}

	// A server that does not allow the first choice takes the next.
	ccfg.Groups = []Group{GroupX25519, GroupMLKEM768X25519}
	scfg.Groups = []Group{GroupMLKEM768X25519}
	cc, sc = tcpPipe(t)
	c, s = handshakePair(t, cc, sc, ccfg, scfg)
	if c.err != nil || s.err != nil {
		t.Fatalf("client: %v, server: %v", c.err, s.err)
	}
	if c.s.Group != GroupMLKEM768X25519 {
		t.Errorf("group %v, want mlkem768x25519", c.s.Group)
	}
}

func TestDefaultGroupIsHybrid(t *testing.T) {
	ccfg, _ := clientConfig("bob", "hunter2")
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, serverConfig(newVerifier()))
	if c.err != nil || s.err != nil {
		t.Fatalf("client: %v, server: %v", c.err, s.err)
	}
	if c.s.Group != GroupMLKEM768X25519 {
		t.Errorf("default group %v", c.s.Group)
	}
}

func TestNoCommonGroup(t *testing.T) {
	ccfg, asked := clientConfig("alice", "correct horse")
	ccfg.Groups = []Group{GroupFFDHE3072}
	scfg := serverConfig(newVerifier())
	scfg.Groups = []Group{GroupX25519}
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, scfg)
	var ae *AbortError
	if !errors.As(c.err, &ae) || ae.Code != AbortNoCommonAlgorithm {
		t.Fatalf("client error %v, want ABORT 0x02", c.err)
	}
	if s.err == nil || *asked != 0 {
		t.Fatalf("server error %v, password asked %d times", s.err, *asked)
	}
}
