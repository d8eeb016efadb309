package handshake

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"securechat/cipher"
)

// instead is what a fakeServer sends in place of a valid FINISHED.
type instead int

const (
	validFinished instead = iota
	finishedWrongMAC
	authResultRecord // a well-formed record of another type
	appRecord        // a type the client's record layer refuses before login
	closeRecord
	hangUp // the transport closes after SERVER_HELLO
	// announceRecord: a valid host key announcement (PROTOCOL.md §7.5),
	// proved by the signer and fakeServer.next for this session, in place
	// of FINISHED.
	announceRecord
)

// fakeServer is a test double that speaks the server side of the protocol
// as far as FINISHED, with what it sends chosen by the test: a host key
// that the signer does not hold, a garbage signature, an invalid share, or
// something other than a valid FINISHED. It offers only x25519.
type fakeServer struct {
	signer    ed25519.PrivateKey // signs SERVER_HELLO; nil: 64 random bytes
	hostKey   []byte             // host_key field; nil: the signer's public key
	zeroShare bool               // send the low-order point 0 as the share
	then      instead
	next      ed25519.PrivateKey // the key announceRecord announces
}

// serve answers one CLIENT_HELLO on c, then reads until the client hangs
// up, so that the client, not the fake, ends the connection.
func (f *fakeServer) serve(c net.Conn) error {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	_, chFrame, err := readFrame(c, frameClientHello)
	if err != nil {
		return err
	}
	ch, err := parseClientHello(chFrame)
	if err != nil {
		return err
	}
	var clientShare []byte
	for _, ks := range ch.keyShares {
		if ks.group == GroupX25519 {
			clientShare = ks.data
		}
	}
	share, ss, err := serverKeyExchange(GroupX25519, clientShare, rand.Reader)
	if err != nil {
		return err
	}
	if f.zeroShare {
		share = make([]byte, x25519ShareLen)
	}
	sh := &serverHello{version: versionV1, group: GroupX25519, keyShare: share, sigAlg: sigAlgEd25519, hostKey: f.hostKey}
	if sh.hostKey == nil {
		sh.hostKey = f.signer.Public().(ed25519.PublicKey)
	}
	rand.Read(sh.random[:])
	shFrame, err := sh.marshal()
	if err != nil {
		return err
	}
	prefix, _ := transcriptPrefixBytes(nil)
	sig := make([]byte, signatureLen)
	rand.Read(sig)
	if f.signer != nil {
		sig = signServerHello(f.signer, prefix, chFrame, shFrame)
	}
	copy(shFrame[len(shFrame)-signatureLen:], sig)
	if _, err := c.Write(shFrame); err != nil {
		return err
	}
	if f.then == hangUp {
		return nil
	}
	th := transcriptHash(prefix, chFrame, shFrame)
	keys := deriveKeys(ss, th)
	enc, mac, _ := cipher.DeriveKeys(keys.s2c)
	iv := make([]byte, 16)
	rand.Read(iv)
	fin := finishedMAC(keys.finS, th)
	var rec []byte
	switch f.then {
	case validFinished:
		rec = sealRecord(enc[:], mac[:], 0, cipher.TypeFinished, iv, fin)
	case finishedWrongMAC:
		fin[0] ^= 1
		rec = sealRecord(enc[:], mac[:], 0, cipher.TypeFinished, iv, fin)
	case authResultRecord:
		rec = sealRecord(enc[:], mac[:], 0, cipher.TypeAuthResult, iv, []byte{authSuccess})
	case appRecord:
		rec = sealRecord(enc[:], mac[:], 0, cipher.TypeApp, iv, []byte(`{"type":"welcome"}`))
	case closeRecord:
		rec = sealRecord(enc[:], mac[:], 0, cipher.TypeClose, iv, nil)
	case announceRecord:
		p, err := MarshalHostKeyAnnouncement(f.signer, f.next, keys.sessionID)
		if err != nil {
			return err
		}
		rec = sealRecord(enc[:], mac[:], 0, cipher.TypeApp, iv, p)
	}
	if _, err := c.Write(rec); err != nil {
		return err
	}
	io.Copy(io.Discard, c)
	return nil
}

// runFake runs Client against f and returns the client's error.
func runFake(t *testing.T, f *fakeServer, ccfg *ClientConfig) error {
	t.Helper()
	cc, sc := tcpPipe(t)
	done := make(chan error, 1)
	go func() { done <- f.serve(sc) }()
	s, err := Client(t.Context(), cc, ccfg)
	if s != nil {
		s.Abort()
	}
	cc.Close()
	if ferr := <-done; ferr != nil {
		t.Logf("fake server: %v", ferr)
	}
	return err
}

func acceptAny(ed25519.PublicKey) error { return nil }

// TestServerNotAuthenticated: every way the server can fail to prove who it
// is comes back as a *ServerAuthError with its cause, and the password is
// never asked for.
func TestServerNotAuthenticated(t *testing.T) {
	real := testHostKey("server")
	realPub := real.Public().(ed25519.PublicKey)
	garbageKey := make([]byte, 32)
	rand.Read(garbageKey)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(FormatKnownHost("chat.example:7000", realPub)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	knownOnly, err := NewKnownHostsChecker(kh, "chat.example:7000", PolicyStrict, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	strictEmpty, err := NewKnownHostsChecker(filepath.Join(t.TempDir(), "none"), "chat.example:7000", PolicyStrict, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var (
		changed *HostKeyChangedError
		unknown *HostKeyUnknownError
	)

	for _, tc := range []struct {
		name  string
		run   func(t *testing.T, ccfg *ClientConfig) error
		cause func(error) bool
	}{
		{"garbage host key", func(t *testing.T, ccfg *ClientConfig) error {
			ccfg.HostKeyCallback = acceptAny
			return runFake(t, &fakeServer{hostKey: garbageKey}, ccfg)
		}, func(err error) bool { return errors.Is(err, errBadSignature) }},
		{"real host key, signed by another", func(t *testing.T, ccfg *ClientConfig) error {
			return runFake(t, &fakeServer{signer: testHostKey("attacker"), hostKey: realPub}, ccfg)
		}, func(err error) bool { return errors.Is(err, errBadSignature) }},
		{"signature flipped in transit", func(t *testing.T, ccfg *ClientConfig) error {
			m := &mitm{toClient: rewriteServerHello(t, func(sh *serverHello) { sh.signature[10] ^= 1 })}
			return mitmClient(t, m, ccfg, serverConfig(newVerifier()))
		}, func(err error) bool { return errors.Is(err, errBadSignature) }},
		{"group not offered", func(t *testing.T, ccfg *ClientConfig) error {
			ccfg.Groups = []Group{GroupX25519}
			m := &mitm{toClient: rewriteServerHello(t, func(sh *serverHello) { sh.group = GroupFFDHE3072 })}
			return mitmClient(t, m, ccfg, serverConfig(newVerifier()))
		}, func(err error) bool { return strings.Contains(err.Error(), "group ffdhe3072, which was not offered") }},
		{"version not offered", func(t *testing.T, ccfg *ClientConfig) error {
			m := &mitm{toClient: rewriteServerHello(t, func(sh *serverHello) { sh.version = 2 })}
			return mitmClient(t, m, ccfg, serverConfig(newVerifier()))
		}, func(err error) bool { return strings.Contains(err.Error(), "version 0x0002, which was not offered") }},
		{"share of the wrong length", func(t *testing.T, ccfg *ClientConfig) error {
			ccfg.Groups = []Group{GroupX25519}
			m := &mitm{toClient: rewriteServerHello(t, func(sh *serverHello) { sh.keyShare = sh.keyShare[1:] })}
			return mitmClient(t, m, ccfg, serverConfig(newVerifier()))
		}, func(err error) bool { return errors.Is(err, errBadShare) }},
		{"low-order share, signed", func(t *testing.T, ccfg *ClientConfig) error {
			return runFake(t, &fakeServer{signer: real, zeroShare: true}, ccfg)
		}, func(err error) bool { return errors.Is(err, errBadShare) }},
		{"host key changed", func(t *testing.T, ccfg *ClientConfig) error {
			ccfg.HostKeyCallback = knownOnly.Check
			return runFake(t, &fakeServer{signer: testHostKey("attacker")}, ccfg)
		}, func(err error) bool { return errors.As(err, &changed) }},
		{"host key unknown, strict", func(t *testing.T, ccfg *ClientConfig) error {
			ccfg.HostKeyCallback = strictEmpty.Check
			return runFake(t, &fakeServer{signer: real}, ccfg)
		}, func(err error) bool { return errors.As(err, &unknown) }},
		{"FINISHED with a wrong MAC", func(t *testing.T, ccfg *ClientConfig) error {
			return runFake(t, &fakeServer{signer: real, then: finishedWrongMAC}, ccfg)
		}, func(err error) bool { return strings.Contains(err.Error(), "FINISHED does not verify") }},
		{"FINISHED tampered in transit", func(t *testing.T, ccfg *ClientConfig) error {
			m := &mitm{toClientRecord: func(rec []byte) []byte { rec[len(rec)-1] ^= 1; return rec }}
			return mitmClient(t, m, ccfg, serverConfig(newVerifier()))
		}, func(err error) bool { return errors.Is(err, cipher.ErrBadRecord) }},
		{"AUTH_RESULT instead of FINISHED", func(t *testing.T, ccfg *ClientConfig) error {
			return runFake(t, &fakeServer{signer: real, then: authResultRecord}, ccfg)
		}, func(err error) bool { return strings.Contains(err.Error(), "while waiting for FINISHED") }},
		{"APP instead of FINISHED", func(t *testing.T, ccfg *ClientConfig) error {
			return runFake(t, &fakeServer{signer: real, then: appRecord}, ccfg)
		}, func(err error) bool { return errors.Is(err, cipher.ErrBadRecord) }},
		{"CLOSE instead of FINISHED", func(t *testing.T, ccfg *ClientConfig) error {
			return runFake(t, &fakeServer{signer: real, then: closeRecord}, ccfg)
		}, func(err error) bool { return errors.Is(err, cipher.ErrBadRecord) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ccfg, asked := clientConfig("alice", "correct horse")
			err := tc.run(t, ccfg)
			var sa *ServerAuthError
			if !errors.Is(err, ErrServerNotAuthenticated) || !errors.As(err, &sa) {
				t.Fatalf("client error %v, want a *ServerAuthError", err)
			}
			if !tc.cause(sa.Err) {
				t.Errorf("cause %v is not the expected one", sa.Err)
			}
			if !strings.HasPrefix(err.Error(), "handshake: the server could not be authenticated: ") ||
				strings.Count(err.Error(), "handshake: ") != 1 {
				t.Errorf("message %q", err)
			}
			if *asked != 0 {
				t.Error("password asked")
			}
		})
	}
}

// mitmClient runs Client through m to a real Server and returns the
// client's error.
func mitmClient(t *testing.T, m *mitm, ccfg *ClientConfig, scfg *ServerConfig) error {
	t.Helper()
	ce, se := startMITM(t, m)
	c, _ := handshakePair(t, ce, se, ccfg, scfg)
	return c.err
}

// TestOtherFailuresAreNotServerAuth: a lost connection, an ABORT and a
// refused password are not failures of server authentication.
func TestOtherFailuresAreNotServerAuth(t *testing.T) {
	t.Run("transport closed after SERVER_HELLO", func(t *testing.T) {
		ccfg, _ := clientConfig("alice", "correct horse")
		err := runFake(t, &fakeServer{signer: testHostKey("server"), then: hangUp}, ccfg)
		if err == nil || errors.Is(err, ErrServerNotAuthenticated) {
			t.Errorf("client error %v, want a lost connection", err)
		}
	})
	t.Run("ABORT", func(t *testing.T) {
		ccfg, _ := clientConfig("alice", "correct horse")
		ccfg.Transport = "quic"
		cc, sc := tcpPipe(t)
		c, _ := handshakePair(t, cc, sc, ccfg, serverConfig(newVerifier()))
		var ae *AbortError
		if !errors.As(c.err, &ae) || errors.Is(c.err, ErrServerNotAuthenticated) {
			t.Errorf("client error %v", c.err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		ccfg, _ := clientConfig("alice", "wrong", "wrong", "wrong")
		cc, sc := tcpPipe(t)
		c, _ := handshakePair(t, cc, sc, ccfg, serverConfig(newVerifier()))
		if !errors.Is(c.err, ErrAuthFailed) || errors.Is(c.err, ErrServerNotAuthenticated) {
			t.Errorf("client error %v", c.err)
		}
	})
}

// TestHostKeyRecordedOnlyAfterFinished: under accept-new, and under ask
// answered yes, a server that cannot sign the transcript or finish the
// handshake leaves known_hosts as it was; the real server afterwards is
// accepted and recorded, once, after its FINISHED verified and before the
// password is asked for (PROTOCOL.md §7.3).
func TestHostKeyRecordedOnlyAfterFinished(t *testing.T) {
	const hostport = "chat.example:7000"
	realPub := testHostKey("server").Public().(ed25519.PublicKey)
	initial := "# known hosts\n" + FormatKnownHost("other.example:7000", pub("other")) + "\n"
	garbageKey := make([]byte, 32)
	rand.Read(garbageKey)
	impostors := []struct {
		name string
		f    *fakeServer
	}{
		{"garbage host key and signature", &fakeServer{hostKey: garbageKey}},
		{"real host key, signed by another", &fakeServer{signer: testHostKey("attacker"), hostKey: realPub}},
		{"own key, bad FINISHED", &fakeServer{signer: testHostKey("attacker"), then: finishedWrongMAC}},
		{"real key, CLOSE instead of FINISHED", &fakeServer{signer: testHostKey("server"), then: closeRecord}},
	}
	for _, policy := range []HostKeyPolicy{PolicyAcceptNew, PolicyAsk} {
		t.Run(policy.String(), func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(kh, []byte(initial), 0o600); err != nil {
				t.Fatal(err)
			}
			var askedAbout []string
			k, err := NewKnownHostsChecker(kh, hostport, policy, "", func(_, fp string) (bool, error) {
				askedAbout = append(askedAbout, fp)
				return true, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			added := 0
			newConfig := func() (*ClientConfig, *int) {
				ccfg, asked := clientConfig("alice", "correct horse")
				ccfg.HostKeyCallback = k.Check
				ccfg.HostKeyVerified = func(key ed25519.PublicKey) error {
					if *asked != 0 {
						t.Error("host key recorded after the password was asked for")
					}
					ok, err := k.Record(key)
					if ok {
						added++
					}
					return err
				}
				return ccfg, asked
			}

			for _, imp := range impostors {
				ccfg, _ := newConfig()
				err := runFake(t, imp.f, ccfg)
				if !errors.Is(err, ErrServerNotAuthenticated) {
					t.Errorf("%s: client error %v, want not authenticated", imp.name, err)
				}
				if b, _ := os.ReadFile(kh); string(b) != initial {
					t.Errorf("%s: known_hosts changed:\n%s", imp.name, b)
				}
			}
			if added != 0 {
				t.Errorf("%d keys reported as added by impostors", added)
			}
			// Only impostors that signed their handshake got as far as the
			// question; the garbage one never did.
			if policy == PolicyAsk {
				attacker := Fingerprint(testHostKey("attacker").Public().(ed25519.PublicKey))
				if !strings.Contains(strings.Join(askedAbout, " "), attacker) {
					t.Errorf("the user was not asked about the impostor's key %s (asked: %v)", attacker, askedAbout)
				}
				for _, fp := range askedAbout {
					if fp == Fingerprint(garbageKey) {
						t.Error("the user was asked about a key whose signature does not verify")
					}
				}
			}

			// The real server is accepted and recorded once.
			for range 2 {
				ccfg, _ := newConfig()
				cc, sc := tcpPipe(t)
				c, _ := handshakePair(t, cc, sc, ccfg, serverConfig(newVerifier()))
				if c.err != nil {
					t.Fatalf("real server: %v", c.err)
				}
			}
			want := initial + FormatKnownHost(hostport, realPub) + "\n"
			if b, _ := os.ReadFile(kh); string(b) != want {
				t.Errorf("known_hosts after the real server:\n%s\nwant:\n%s", b, want)
			}
			if added != 1 {
				t.Errorf("key reported as added %d times, want once", added)
			}
		})
	}
}

// TestHostKeyVerifiedError: an error from HostKeyVerified ends the
// handshake before the password is asked for, and comes back as is.
func TestHostKeyVerifiedError(t *testing.T) {
	boom := errors.New("disk full")
	ccfg, asked := clientConfig("alice", "correct horse")
	ccfg.HostKeyVerified = func(ed25519.PublicKey) error { return boom }
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, serverConfig(newVerifier()))
	if !errors.Is(c.err, boom) || errors.Is(c.err, ErrServerNotAuthenticated) {
		t.Errorf("client error %v", c.err)
	}
	if s.err == nil || *asked != 0 {
		t.Errorf("server %v, asked %d", s.err, *asked)
	}
}
