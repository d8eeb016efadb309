package handshake

import (
	"bytes"
	"testing"
)

// TestReusedKeySharesOfferedAgain logs in three times with one set of
// reused shares: every login must succeed (the shares outlive each
// handshake's erase), and every CLIENT_HELLO must carry the same shares
// in the same groups, where fresh handshakes would differ.
func TestReusedKeySharesOfferedAgain(t *testing.T) {
	reused, err := NewReusedKeyShares(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := reused.Groups(); len(got) != len(defaultClientGroups) || got[0] != defaultClientGroups[0] || got[1] != defaultClientGroups[1] {
		t.Fatalf("Groups() = %v, want the client default %v", got, defaultClientGroups)
	}
	var offered []*clientHello
	hello := func(cfg *ClientConfig) *clientHello {
		t.Helper()
		m := &mitm{toServer: func(frame []byte) [][]byte {
			ch, err := parseClientHello(frame)
			if err != nil {
				t.Error(err)
			}
			offered = append(offered, ch)
			return [][]byte{frame}
		}}
		cc, sc := startMITM(t, m)
		c, s := handshakePair(t, cc, sc, cfg, serverConfig(newVerifier()))
		if c.err != nil || s.err != nil {
			t.Fatalf("login: client %v, server %v", c.err, s.err)
		}
		if m.clientHellos() != 1 {
			t.Fatalf("%d CLIENT_HELLOs relayed, want 1", m.clientHellos())
		}
		return offered[len(offered)-1]
	}
	for range 3 {
		cfg, _ := clientConfig("alice", "correct horse")
		cfg.ReusedKeyShares = reused
		hello(cfg)
	}
	first := offered[0]
	if len(first.keyShares) != len(defaultClientGroups) {
		t.Fatalf("%d shares offered, want %d", len(first.keyShares), len(defaultClientGroups))
	}
	for i, ch := range offered[1:] {
		for j, ks := range ch.keyShares {
			if ks.group != first.keyShares[j].group || !bytes.Equal(ks.data, first.keyShares[j].data) {
				t.Errorf("login %d offered share %d of %v, not the reused one", i+2, j, ks.group)
			}
		}
	}

	// The same test notices shares that are not reused.
	cfg, _ := clientConfig("alice", "correct horse")
	fresh := hello(cfg)
	if bytes.Equal(fresh.keyShares[0].data, first.keyShares[0].data) {
		t.Error("a handshake without ReusedKeyShares offered the reused share")
	}
}

// TestReusedKeySharesGroupsMustMatch refuses a config whose Groups name
// other groups than its reused shares, before anything is sent.
func TestReusedKeySharesGroupsMustMatch(t *testing.T) {
	reused, err := NewReusedKeyShares([]Group{GroupX25519})
	if err != nil {
		t.Fatal(err)
	}
	cc, _ := tcpPipe(t)
	cfg, _ := clientConfig("alice", "correct horse")
	cfg.Groups = []Group{GroupMLKEM768X25519}
	cfg.ReusedKeyShares = reused
	if _, err := Client(t.Context(), cc, cfg); err == nil {
		t.Fatal("Client accepted Groups that differ from the reused shares'")
	}
	if _, err := NewReusedKeyShares([]Group{GroupX25519, GroupX25519}); err == nil {
		t.Error("NewReusedKeyShares accepted a group listed twice")
	}
}
