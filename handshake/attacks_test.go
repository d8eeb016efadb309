package handshake

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"securechat/cipher"
)

// TestMITMOwnHostKey: an attacker who answers with its own host key is
// caught by known_hosts before anything secret is sent.
func TestMITMOwnHostKey(t *testing.T) {
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	real := testHostKey("server").Public().(ed25519.PublicKey)
	line := FormatKnownHost("chat.example:7000", real) + "\n"
	if err := os.WriteFile(kh, []byte("# mine\n"+line), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := NewKnownHostsChecker(kh, "chat.example:7000", PolicyAsk, "", func(string, string) (bool, error) {
		t.Error("asked about a changed key")
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ccfg, asked := clientConfig("alice", "correct horse")
	ccfg.HostKeyCallback = k.Check
	scfg := serverConfig(newVerifier())
	scfg.HostKey = testHostKey("attacker")
	cc, sc := tcpPipe(t)
	c, _ := handshakePair(t, cc, sc, ccfg, scfg)
	var changed *HostKeyChangedError
	if !errors.As(c.err, &changed) {
		t.Fatalf("client error %v, want *HostKeyChangedError", c.err)
	}
	if changed.File != kh || changed.Line != 2 || changed.Want != Fingerprint(real) ||
		changed.Got != Fingerprint(testHostKey("attacker").Public().(ed25519.PublicKey)) {
		t.Errorf("error fields %+v", changed)
	}
	if *asked != 0 {
		t.Error("password asked")
	}
}

// TestMITMSwapsShare: an attacker who relays the real SERVER_HELLO but puts
// its own ephemeral in it breaks the signature.
func TestMITMSwapsShare(t *testing.T) {
	for _, g := range allGroups {
		t.Run(g.String(), func(t *testing.T) {
			m := &mitm{toClient: rewriteServerHello(t, func(sh *serverHello) {
				rand.Read(sh.keyShare[len(sh.keyShare)-32:]) // X25519 half, or the low bytes of Y
			})}
			ce, se := startMITM(t, m)
			ccfg, asked := clientConfig("alice", "correct horse")
			ccfg.Groups = []Group{g}
			c, s := handshakePair(t, ce, se, ccfg, serverConfig(newVerifier()))
			if !errors.Is(c.err, errBadSignature) {
				t.Errorf("client error %v, want bad signature", c.err)
			}
			if s.err == nil || *asked != 0 {
				t.Errorf("server error %v, password asked %d times", s.err, *asked)
			}
		})
	}
}

// TestDowngradeStrippedOffer: removing the hybrid offer in transit makes the
// server pick x25519, but TH covers the whole CLIENT_HELLO, so the
// signature fails.
func TestDowngradeStrippedOffer(t *testing.T) {
	m := &mitm{toServer: rewriteHello(t, func(ch *clientHello) {
		ch.groups = ch.groups[1:]
		ch.keyShares = ch.keyShares[1:]
	})}
	ce, se := startMITM(t, m)
	ccfg, asked := clientConfig("alice", "correct horse")
	ccfg.Groups = []Group{GroupMLKEM768X25519, GroupX25519}
	c, s := handshakePair(t, ce, se, ccfg, serverConfig(newVerifier()))
	if !errors.Is(c.err, errBadSignature) {
		t.Errorf("client error %v, want bad signature", c.err)
	}
	if s.err == nil || *asked != 0 {
		t.Errorf("server error %v, password asked %d times", s.err, *asked)
	}
}

// TestInjectedFrames: no frame may be added before or between the hellos
// (Terrapin-style prefix manipulation).
func TestInjectedFrames(t *testing.T) {
	junk := []byte{0x03, 0, 0, 2, 'h', 'i'}
	ignore := []byte{0x01, 0, 0, 0} // an empty CLIENT_HELLO-typed frame
	tests := map[string]*mitm{
		"before CLIENT_HELLO": {toServer: func(ch []byte) [][]byte { return [][]byte{junk, ch} }},
		"empty frame first":   {toServer: func(ch []byte) [][]byte { return [][]byte{ignore, ch} }},
		"second CLIENT_HELLO": {toServer: func(ch []byte) [][]byte { return [][]byte{ch, ch} }},
		"after CLIENT_HELLO":  {toServer: func(ch []byte) [][]byte { return [][]byte{ch, junk} }},
		"before SERVER_HELLO": {toClient: func(sh []byte) [][]byte { return [][]byte{junk, sh} }},
		"after SERVER_HELLO":  {toClient: func(sh []byte) [][]byte { return [][]byte{sh, junk} }},
		"second SERVER_HELLO": {toClient: func(sh []byte) [][]byte { return [][]byte{sh, sh} }},
	}
	for name, m := range tests {
		toClient := m.toClient != nil
		t.Run(name, func(t *testing.T) {
			ce, se := startMITM(t, m)
			ccfg, asked := clientConfig("alice", "correct horse")
			ccfg.Groups = []Group{GroupX25519}
			c, s := handshakePair(t, ce, se, ccfg, serverConfig(newVerifier()))
			if c.err == nil || s.err == nil {
				t.Fatalf("client: %v, server: %v; both must fail", c.err, s.err)
			}
			// A frame injected towards the server is only noticed by the server,
			// after the client has verified the server and sent AUTH (sealed
			// for the real server). One injected towards the client stops it
			// before it asks for the password.
			if toClient && *asked != 0 {
				t.Error("password asked")
			}
		})
	}
}

// TestRecordsBeforeFinished: AUTH, APP, CLOSE or anything else instead of the
// client's FINISHED is fatal (PROTOCOL.md §10.3): no password reaches the
// verifier and the server sends nothing more, not even a CLOSE of its own.
func TestRecordsBeforeFinished(t *testing.T) {
	auth, _ := marshalAuth("alice", []byte("correct horse"))
	for _, tc := range []struct {
		name    string
		typ     cipher.RecordType
		payload []byte
	}{
		{"AUTH", cipher.TypeAuth, auth},
		{"APP", cipher.TypeApp, []byte("hello")},
		{"AUTH_RESULT", cipher.TypeAuthResult, []byte{0}},
		{"CLOSE", cipher.TypeClose, nil},
		{"KEY_UPDATE", cipher.TypeKeyUpdate, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier()
			cc, sc := tcpPipe(t)
			srv := make(chan error, 1)
			go func() {
				_, err := Server(t.Context(), sc, serverConfig(v))
				srv <- err
			}()
			ch, shares := newRawHello(t, GroupX25519)
			r := sendRawHello(t, cc, ch, shares)
			if err := r.readServerHello(); err != nil {
				t.Fatal(err)
			}
			if err := r.establish(); err != nil {
				t.Fatal(err)
			}
			if err := r.readServerFinished(); err != nil {
				t.Fatal(err)
			}
			// Seal by hand: our own record layer would refuse to send some of
			// these before login.
			enc, mac, _ := cipher.DeriveKeys(r.keys.c2s)
			iv := make([]byte, 16)
			rand.Read(iv)
			if _, err := cc.Write(sealRecord(enc[:], mac[:], 0, tc.typ, iv, tc.payload)); err != nil {
				t.Fatal(err)
			}
			if err := <-srv; err == nil {
				t.Fatal("server accepted the session")
			}
			if v.callCount() != 0 {
				t.Error("verifier called")
			}
			cc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if rest, err := io.ReadAll(cc); len(rest) != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("server sent %d bytes after the bad record (%v), want a silent close", len(rest), err)
			}
		})
	}
}

// TestAuthBeforeServerFinishedNotPossible: the real client never sends AUTH
// when the server's FINISHED is wrong, whether the record is forged in
// transit or sealed correctly with a wrong MAC inside.
func TestBadServerFinished(t *testing.T) {
	t.Run("wrong MAC inside", func(t *testing.T) {
		scfg := serverConfig(newVerifier())
		scfg.hooks = &testHooks{finished: func(p []byte) { p[0] ^= 1 }}
		ccfg, asked := clientConfig("alice", "correct horse")
		cc, sc := tcpPipe(t)
		c, s := handshakePair(t, cc, sc, ccfg, scfg)
		if c.err == nil || s.err == nil {
			t.Fatalf("client: %v, server: %v", c.err, s.err)
		}
		if *asked != 0 {
			t.Error("password asked after a bad FINISHED")
		}
	})
	// type, length (off by one: fails the bounds check), IV, ciphertext, tag
	for _, pos := range []int{0, 4, 5, 21, -1} {
		t.Run("record byte flipped", func(t *testing.T) {
			m := &mitm{toClientRecord: func(rec []byte) []byte {
				if pos < 0 {
					pos += len(rec)
				}
				rec[pos] ^= 0x01
				return rec
			}}
			ce, se := startMITM(t, m)
			ccfg, asked := clientConfig("alice", "correct horse")
			v := newVerifier()
			c, s := handshakePair(t, ce, se, ccfg, serverConfig(v))
			if c.err == nil || s.err == nil {
				t.Fatalf("client: %v, server: %v", c.err, s.err)
			}
			if *asked != 0 || v.callCount() != 0 {
				t.Error("password asked or checked after a bad FINISHED")
			}
		})
	}
}

func TestBadClientFinished(t *testing.T) {
	ccfg, asked := clientConfig("alice", "correct horse")
	ccfg.hooks = &testHooks{finished: func(p []byte) { p[31] ^= 1 }}
	v := newVerifier()
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, serverConfig(v))
	if s.err == nil || c.err == nil {
		t.Fatalf("client: %v, server: %v", c.err, s.err)
	}
	if v.callCount() != 0 {
		t.Error("server checked a password after a bad client FINISHED")
	}
	_ = asked // the client may have sent AUTH already; the server must ignore it
}

// TestWrongLengthShares: the chosen share must have its exact length.
func TestWrongLengthShares(t *testing.T) {
	for _, g := range allGroups {
		for _, delta := range []int{-1, +1} {
			t.Run(g.String(), func(t *testing.T) {
				cc, sc := tcpPipe(t)
				srv := make(chan error, 1)
				go func() {
					_, err := Server(t.Context(), sc, serverConfig(newVerifier()))
					srv <- err
				}()
				ch, shares := newRawHello(t, g)
				d := ch.keyShares[0].data
				if delta < 0 {
					d = d[:len(d)-1]
				} else {
					d = append(d, 0)
				}
				ch.keyShares[0].data = d
				r := sendRawHello(t, cc, ch, shares)
				var ae *AbortError
				if err := r.readServerHello(); !errors.As(err, &ae) || ae.Code != AbortHandshakeFailure {
					t.Errorf("got %v, want ABORT 0x03", err)
				}
				if err := <-srv; !errors.Is(err, errBadShare) {
					t.Errorf("server: %v", err)
				}
			})
		}
		t.Run(g.String()+"/server share", func(t *testing.T) {
			m := &mitm{toClient: rewriteServerHello(t, func(sh *serverHello) {
				sh.keyShare = sh.keyShare[:len(sh.keyShare)-1]
			})}
			ce, se := startMITM(t, m)
			ccfg, asked := clientConfig("alice", "correct horse")
			ccfg.Groups = []Group{g}
			c, _ := handshakePair(t, ce, se, ccfg, serverConfig(newVerifier()))
			if !errors.Is(c.err, errBadShare) || *asked != 0 {
				t.Errorf("client: %v (asked %d)", c.err, *asked)
			}
		})
	}
}

// TestInvalidSharesRejected: well-sized but invalid values.
func TestInvalidSharesRejected(t *testing.T) {
	p := ffdheP.FillBytes(make([]byte, 384))
	pm1 := ffdhePMinus1.FillBytes(make([]byte, 384))
	one := make([]byte, 384)
	one[383] = 1
	lowOrder := make([]byte, 32) // u = 0
	badEK := bytes.Repeat([]byte{0xff}, mlkemEncapKeyLen)
	for name, tc := range map[string]struct {
		g     Group
		share []byte
	}{
		"x25519 zero point":  {GroupX25519, lowOrder},
		"hybrid zero point":  {GroupMLKEM768X25519, nil},
		"hybrid bad modulus": {GroupMLKEM768X25519, append(bytes.Clone(badEK), make([]byte, 32)...)},
		"ffdhe Y=1":          {GroupFFDHE3072, one},
		"ffdhe Y=p-1":        {GroupFFDHE3072, pm1},
		"ffdhe Y=p":          {GroupFFDHE3072, p},
	} {
		t.Run(name, func(t *testing.T) {
			cc, sc := tcpPipe(t)
			srv := make(chan error, 1)
			go func() {
				_, err := Server(t.Context(), sc, serverConfig(newVerifier()))
				srv <- err
			}()
			ch, shares := newRawHello(t, tc.g)
			share := tc.share
			if share == nil { // valid ML-KEM key, zero X25519 point
				share = append(bytes.Clone(ch.keyShares[0].data[:mlkemEncapKeyLen]), lowOrder...)
			}
			ch.keyShares[0].data = share
			r := sendRawHello(t, cc, ch, shares)
			var ae *AbortError
			if err := r.readServerHello(); !errors.As(err, &ae) || ae.Code != AbortHandshakeFailure {
				t.Errorf("got %v, want ABORT 0x03", err)
			}
			if err := <-srv; !errors.Is(err, errBadShare) {
				t.Errorf("server: %v", err)
			}
		})
	}
}

func TestVersionNegotiation(t *testing.T) {
	t.Run("unknown versions ignored", func(t *testing.T) {
		cc, sc := tcpPipe(t)
		go Server(t.Context(), sc, serverConfig(newVerifier()))
		ch, shares := newRawHello(t, GroupX25519)
		ch.versions = []uint16{0x0002, 0xfafa, versionV1, 0x0000}
		r := sendRawHello(t, cc, ch, shares)
		if err := r.readServerHello(); err != nil {
			t.Fatal(err)
		}
		if r.sh.version != versionV1 {
			t.Errorf("server chose 0x%04x", r.sh.version)
		}
		if err := r.establish(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no common version", func(t *testing.T) {
		m := &mitm{toServer: rewriteHello(t, func(ch *clientHello) { ch.versions = []uint16{0x0002, 0x0003} })}
		ce, se := startMITM(t, m)
		ccfg, asked := clientConfig("alice", "correct horse")
		c, s := handshakePair(t, ce, se, ccfg, serverConfig(newVerifier()))
		var ae *AbortError
		if !errors.As(c.err, &ae) || ae.Code != AbortUnsupportedVersion {
			t.Fatalf("client error %v, want ABORT 0x01", c.err)
		}
		if s.err == nil || *asked != 0 {
			t.Errorf("server %v, asked %d", s.err, *asked)
		}
		if n := m.clientHellos(); n != 1 {
			t.Errorf("client sent %d CLIENT_HELLOs; it must not retry", n)
		}
	})
}

func TestTransportMismatch(t *testing.T) {
	ccfg, asked := clientConfig("alice", "correct horse")
	ccfg.Transport = "quic"
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, serverConfig(newVerifier()))
	var ae *AbortError
	if !errors.As(c.err, &ae) || ae.Code != AbortHandshakeFailure {
		t.Fatalf("client error %v, want ABORT 0x03", c.err)
	}
	if s.err == nil || *asked != 0 {
		t.Errorf("server %v, asked %d", s.err, *asked)
	}
}

// TestNegotiationAborts covers the remaining CLIENT_HELLO rules of §5.1.
func TestNegotiationAborts(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*clientHello)
		code uint8
	}{
		"no ed25519":          {func(ch *clientHello) { ch.sigAlgs = []uint16{0x0403} }, AbortNoCommonAlgorithm},
		"unknown groups only": {func(ch *clientHello) { ch.groups = []Group{0x0017}; ch.keyShares[0].group = 0x0017 }, AbortNoCommonAlgorithm},
		"no share for group": {func(ch *clientHello) {
			ch.groups = append(ch.groups, GroupFFDHE3072)
			ch.keyShares[0].group = GroupFFDHE3072
		}, AbortHandshakeFailure},
		"share for unlisted":    {func(ch *clientHello) { ch.keyShares = append(ch.keyShares, keyShare{GroupFFDHE3072, []byte{1}}) }, AbortHandshakeFailure},
		"duplicate group":       {func(ch *clientHello) { ch.groups = append(ch.groups, ch.groups[0]) }, AbortHandshakeFailure},
		"duplicate share":       {func(ch *clientHello) { ch.keyShares = append(ch.keyShares, ch.keyShares[0]) }, AbortHandshakeFailure},
		"extensions":            {func(ch *clientHello) { ch.extensions = []byte{0, 0} }, AbortHandshakeFailure},
		"unknown sig alg added": {func(ch *clientHello) { ch.sigAlgs = []uint16{0x0403, sigAlgEd25519} }, 0},
	} {
		t.Run(name, func(t *testing.T) {
			cc, sc := tcpPipe(t)
			go Server(t.Context(), sc, serverConfig(newVerifier()))
			ch, shares := newRawHello(t, GroupX25519)
			tc.edit(ch)
			r := sendRawHello(t, cc, ch, shares)
			err := r.readServerHello()
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("got %v, want SERVER_HELLO", err)
				}
				return
			}
			var ae *AbortError
			if !errors.As(err, &ae) || ae.Code != tc.code {
				t.Errorf("got %v, want ABORT 0x%02x", err, tc.code)
			}
		})
	}
	t.Run("bad magic", func(t *testing.T) {
		cc, sc := tcpPipe(t)
		go Server(t.Context(), sc, serverConfig(newVerifier()))
		ch, _ := newRawHello(t, GroupX25519)
		frame, _ := ch.marshal()
		frame[4] = 'X'
		cc.Write(frame)
		r := &rawClient{c: cc}
		var ae *AbortError
		if err := r.readServerHello(); !errors.As(err, &ae) || ae.Code != AbortHandshakeFailure {
			t.Errorf("got %v, want ABORT 0x03", err)
		}
	})
}
