package handshake

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"testing"
)

// recordingConn keeps the first frame written through it: the hello.
type recordingConn struct {
	net.Conn
	mu    sync.Mutex
	first []byte
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.first == nil && len(p) >= 4 {
		n := int(binary.BigEndian.Uint32(p[:4]) & 0xffffff)
		if len(p) >= 4+n {
			c.first = append([]byte(nil), p[:4+n]...)
		}
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// TestEphemeralsFreshPerSession checks HS-1: every session uses new random
// values and new ephemeral key shares on both sides, for every group, so a
// recorded session cannot be linked to or replayed into another, and a
// later key compromise does not reach earlier sessions.
func TestEphemeralsFreshPerSession(t *testing.T) {
	for _, g := range []Group{GroupMLKEM768X25519, GroupX25519, GroupFFDHE3072} {
		t.Run(g.String(), func(t *testing.T) {
			seen := map[string]string{}
			note := func(what string, b []byte) {
				t.Helper()
				if prev, dup := seen[string(b)]; dup {
					t.Fatalf("%s repeats %s", what, prev)
				}
				seen[string(b)] = what
			}
			var ids [][32]byte
			for i := range 3 {
				a, b := tcpPipe(t)
				ra, rb := &recordingConn{Conn: a}, &recordingConn{Conn: b}
				ccfg, _ := clientConfig("alice", "correct horse")
				ccfg.Groups = []Group{g}
				c, s := handshakePair(t, ra, rb, ccfg, serverConfig(newVerifier()))
				if c.err != nil || s.err != nil {
					t.Fatalf("session %d: client %v, server %v", i, c.err, s.err)
				}
				ch, err := parseClientHello(ra.first)
				if err != nil {
					t.Fatal(err)
				}
				sh, err := parseServerHello(rb.first)
				if err != nil {
					t.Fatal(err)
				}
				note("client random", ch.random[:])
				note("server random", sh.random[:])
				for _, ks := range ch.keyShares {
					note("client share", ks.data)
				}
				note("server share", sh.keyShare)
				for _, id := range ids {
					if bytes.Equal(id[:], c.s.SessionID[:]) {
						t.Fatal("session id repeats")
					}
				}
				ids = append(ids, c.s.SessionID)
			}
		})
	}
}
