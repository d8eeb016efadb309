package handshake

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"securechat/cipher"
)

// testUserKey returns a user key derived from name.
func testUserKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("securechat test user key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// keyVerifier is testVerifier plus authorized keys: alice has key "alice",
// bob has key "bob".
type keyVerifier struct {
	*testVerifier
	mu       sync.Mutex
	keys     map[string][]ed25519.PublicKey
	keyCalls int
	rejected []string // AuthRejected reasons
}

func (v *keyVerifier) AuthRejected(reason string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rejected = append(v.rejected, reason)
}

func newKeyVerifier() *keyVerifier {
	return &keyVerifier{testVerifier: newVerifier(), keys: map[string][]ed25519.PublicKey{
		"alice": {testUserKey("alice").Public().(ed25519.PublicKey)},
		"bob":   {testUserKey("bob").Public().(ed25519.PublicKey)},
	}}
}

func (v *keyVerifier) VerifyPublicKey(_ context.Context, user string, key ed25519.PublicKey) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.keyCalls++
	for _, k := range v.keys[user] {
		if k.Equal(key) {
			return nil
		}
	}
	return fmt.Errorf("key not authorized: %w", ErrAuthFailed)
}

func (v *keyVerifier) keyCallCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.keyCalls
}

func keyClientConfig(user string, keys []crypto.Signer, pw ...string) (*ClientConfig, *int) {
	ccfg, asked := clientConfig(user, pw...)
	ccfg.Keys = keys
	if len(pw) == 0 {
		ccfg.Password = nil
	}
	return ccfg, asked
}

func TestKeyLogin(t *testing.T) {
	for _, g := range allGroups {
		t.Run(g.String(), func(t *testing.T) {
			v := newKeyVerifier()
			key := testUserKey("alice")
			ccfg, asked := keyClientConfig("alice", []crypto.Signer{key}, "never asked")
			ccfg.Groups = []Group{g}
			cc, sc := tcpPipe(t)
			c, s := handshakePair(t, cc, sc, ccfg, serverConfig(v))
			if c.err != nil || s.err != nil {
				t.Fatalf("client: %v, server: %v", c.err, s.err)
			}
			if s.s.User != "alice" || !s.s.UserKey.Equal(key.Public()) {
				t.Errorf("server session: user %q, key %x", s.s.User, s.s.UserKey)
			}
			if *asked != 0 || v.callCount() != 0 {
				t.Errorf("password asked %d times, verified %d times; want none", *asked, v.callCount())
			}
		})
	}
}

// TestKeyLoginRefused: a key the server does not know for the user, and a
// key of another user, are refused with the byte a wrong password gets,
// and the password still works afterwards.
func TestKeyLoginRefused(t *testing.T) {
	for name, key := range map[string]ed25519.PrivateKey{
		"unknown key":        testUserKey("mallory"),
		"another user's key": testUserKey("bob"),
	} {
		t.Run(name, func(t *testing.T) {
			v := newKeyVerifier()
			ccfg, asked := keyClientConfig("alice", []crypto.Signer{key}, "correct horse")
			cc, sc := tcpPipe(t)
			c, s := handshakePair(t, cc, sc, ccfg, serverConfig(v))
			if c.err != nil || s.err != nil {
				t.Fatalf("client: %v, server: %v", c.err, s.err)
			}
			if s.s.UserKey != nil || *asked != 1 || v.keyCallCount() != 1 {
				t.Errorf("logged in with key %x after %d passwords and %d key checks; want the password after 1 key check",
					s.s.UserKey, *asked, v.keyCallCount())
			}
		})
	}
}

func TestKeyLoginOnlyKeysRefused(t *testing.T) {
	v := newKeyVerifier()
	ccfg, _ := keyClientConfig("alice", []crypto.Signer{testUserKey("bob"), testUserKey("carol")})
	cc, sc := tcpPipe(t)
	c, _ := handshakePair(t, cc, sc, ccfg, serverConfig(v))
	if !errors.Is(c.err, ErrAuthFailed) {
		t.Fatalf("client: %v, want ErrAuthFailed", c.err)
	}
	if v.keyCallCount() != 2 {
		t.Errorf("%d keys checked, want 2", v.keyCallCount())
	}
}

// rawKeyServer starts Server with v and logs in a raw client up to AUTH.
func rawKeyServer(t *testing.T, v Verifier) (*rawClient, chan error) {
	t.Helper()
	cc, sc := tcpPipe(t)
	srv := make(chan error, 1)
	go func() {
		s, err := Server(t.Context(), sc, serverConfig(v))
		if s != nil {
			defer s.Abort()
		}
		srv <- err
	}()
	return rawLogin(t, cc, GroupX25519), srv
}

func sendAuth(t *testing.T, r *rawClient, payload []byte) (cipher.RecordType, []byte, error) {
	t.Helper()
	if err := r.conn.WriteRecord(cipher.TypeAuth, payload); err != nil {
		t.Fatal(err)
	}
	return r.conn.ReadRecord()
}

// TestKeyAuthReplayRefused captures a valid key AUTH from one session and
// replays it, byte for byte inside the new session's records, in another
// session with the same server: the signature covers the first session's
// transcript, so the server refuses it without asking the verifier.
func TestKeyAuthReplayRefused(t *testing.T) {
	v := newKeyVerifier()
	first, srv := rawKeyServer(t, v)
	captured, err := marshalKeyAuth(first.th, "alice", testUserKey("alice"))
	if err != nil {
		t.Fatal(err)
	}
	typ, p, err := sendAuth(t, first, captured)
	if err != nil || typ != cipher.TypeAuthResult || !bytes.Equal(p, []byte{authSuccess}) {
		t.Fatalf("first session: %v %x %v, want AUTH_RESULT success", typ, p, err)
	}
	if err := <-srv; err != nil {
		t.Fatal(err)
	}

	second, srv := rawKeyServer(t, v)
	for range DefaultMaxAuthTries {
		typ, p, err := sendAuth(t, second, captured)
		if err != nil || typ != cipher.TypeAuthResult || !bytes.Equal(p, []byte{authFailure}) {
			t.Fatalf("replay: %v %x %v, want AUTH_RESULT failure", typ, p, err)
		}
	}
	if err := <-srv; !errors.Is(err, ErrAuthFailed) || !errors.Is(err, errBadUserSignature) && !bytes.Contains([]byte(err.Error()), []byte("does not verify")) {
		t.Errorf("server: %v, want ErrAuthFailed for a signature that does not verify", err)
	}
	if v.keyCallCount() != 1 {
		t.Errorf("verifier asked %d times, want once (the first session only)", v.keyCallCount())
	}
}

// TestKeyAuthOrdinaryFailures: well-formed key AUTHs that cannot succeed
// get the one failure byte, exactly as a wrong password does.
func TestKeyAuthOrdinaryFailures(t *testing.T) {
	alice := testUserKey("alice")
	pub := alice.Public().(ed25519.PublicKey)
	build := func(alg uint16, key, sig []byte) []byte {
		b := []byte{authMethodPublicKey, 5}
		b = append(b, "alice"...)
		n := 2 + 2 + len(key) + 2 + len(sig)
		b = append(b, byte(n>>8), byte(n))
		b = append(b, byte(alg>>8), byte(alg))
		b = append(b, byte(len(key)>>8), byte(len(key)))
		b = append(b, key...)
		b = append(b, byte(len(sig)>>8), byte(len(sig)))
		return append(b, sig...)
	}
	cases := map[string]func(r *rawClient) []byte{
		"other algorithm": func(r *rawClient) []byte {
			return build(0x0403, pub, ed25519.Sign(alice, UserAuthMessage(r.th, "alice", pub)))
		},
		"short key": func(r *rawClient) []byte {
			return build(sigAlgEd25519, pub[:31], ed25519.Sign(alice, UserAuthMessage(r.th, "alice", pub)))
		},
		"short signature": func(r *rawClient) []byte {
			return build(sigAlgEd25519, pub, ed25519.Sign(alice, UserAuthMessage(r.th, "alice", pub))[:63])
		},
		"signature for another user": func(r *rawClient) []byte {
			return build(sigAlgEd25519, pub, ed25519.Sign(alice, UserAuthMessage(r.th, "bob", pub)))
		},
		"signature by another key": func(r *rawClient) []byte {
			return build(sigAlgEd25519, pub, ed25519.Sign(testUserKey("bob"), UserAuthMessage(r.th, "alice", pub)))
		},
		"bad user name": func(r *rawClient) []byte {
			p, _ := marshalKeyAuth(r.th, "Alice", alice)
			return p
		},
		"password reply": func(r *rawClient) []byte {
			p, _ := marshalKeyAuth(r.th, "alice", alice)
			p[0] = 0x7f // an unknown method: the rest is not read
			return p
		},
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			v := newKeyVerifier()
			r, srv := rawKeyServer(t, v)
			typ, p, err := sendAuth(t, r, payload(r))
			if err != nil || typ != cipher.TypeAuthResult || !bytes.Equal(p, []byte{authFailure}) {
				t.Fatalf("got %v %x %v, want AUTH_RESULT failure", typ, p, err)
			}
			if v.keyCallCount() != 0 {
				t.Error("verifier asked about a key that did not sign this session")
			}
			// Refused before the verifier was asked: reported, so that it
			// counts as a failed login.
			v.mu.Lock()
			if len(v.rejected) != 1 {
				t.Errorf("rejections reported: %q, want one", v.rejected)
			}
			v.mu.Unlock()
			// The same connection still takes a good key.
			good, err := marshalKeyAuth(r.th, "alice", alice)
			if err != nil {
				t.Fatal(err)
			}
			typ, p, err = sendAuth(t, r, good)
			if err != nil || typ != cipher.TypeAuthResult || !bytes.Equal(p, []byte{authSuccess}) {
				t.Fatalf("got %v %x %v, want AUTH_RESULT success", typ, p, err)
			}
			if err := <-srv; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestMalformedKeyAuthIsFatal(t *testing.T) {
	for name, payload := range map[string][]byte{
		"no data":            {2, 1, 'a'},
		"no algorithm":       {2, 1, 'a', 0, 0},
		"short key":          {2, 1, 'a', 0, 6, 0x08, 0x07, 0, 32, 1, 2},
		"no signature":       {2, 1, 'a', 0, 5, 0x08, 0x07, 0, 1, 9},
		"trailing bytes":     {2, 1, 'a', 0, 9, 0x08, 0x07, 0, 1, 9, 0, 1, 8, 0},
		"signature too long": {2, 1, 'a', 0, 8, 0x08, 0x07, 0, 1, 9, 0, 3, 8},
		"outer length short": {2, 1, 'a', 0, 7, 0x08, 0x07, 0, 1, 9, 0, 1, 8},
	} {
		t.Run(name, func(t *testing.T) {
			r, srv := rawKeyServer(t, newKeyVerifier())
			if err := r.conn.WriteRecord(cipher.TypeAuth, payload); err != nil {
				t.Fatal(err)
			}
			if err := <-srv; err == nil || errors.Is(err, ErrAuthFailed) {
				t.Fatalf("server: %v, want a fatal error", err)
			}
			if _, _, err := r.conn.ReadRecord(); err == nil {
				t.Error("server answered a malformed AUTH")
			}
		})
	}
}

// TestKeyLoginWithoutKeyVerifier: a server whose Verifier knows only
// passwords refuses keys with the ordinary failure byte.
func TestKeyLoginWithoutKeyVerifier(t *testing.T) {
	r, srv := rawKeyServer(t, newVerifier())
	auth, err := marshalKeyAuth(r.th, "alice", testUserKey("alice"))
	if err != nil {
		t.Fatal(err)
	}
	typ, p, err := sendAuth(t, r, auth)
	if err != nil || typ != cipher.TypeAuthResult || !bytes.Equal(p, []byte{authFailure}) {
		t.Fatalf("got %v %x %v, want AUTH_RESULT failure", typ, p, err)
	}
	pw, _ := marshalAuth("alice", []byte("correct horse"))
	if typ, p, err := sendAuth(t, r, pw); err != nil || !bytes.Equal(p, []byte{authSuccess}) {
		t.Fatalf("got %v %x %v, want AUTH_RESULT success", typ, p, err)
	}
	if err := <-srv; err != nil {
		t.Fatal(err)
	}
}

// failingSigner is a key whose holder refuses to sign, as an ssh-agent
// whose user declines a confirmation does.
type failingSigner struct{ ed25519.PrivateKey }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("agent refused")
}

// TestKeyThatCannotSignIsSkipped: a key that fails to sign uses no attempt.
func TestKeyThatCannotSignIsSkipped(t *testing.T) {
	v := newKeyVerifier()
	keys := []crypto.Signer{failingSigner{testUserKey("alice")}, testUserKey("mallory"), testUserKey("alice")}
	ccfg, _ := keyClientConfig("alice", keys)
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, serverConfig(v))
	if c.err != nil || s.err != nil {
		t.Fatalf("client: %v, server: %v", c.err, s.err)
	}
	if v.keyCallCount() != 2 {
		t.Errorf("%d keys checked, want 2", v.keyCallCount())
	}
}

// TestKeysLeaveThePasswordAnAttempt: a client with more wrong keys than
// attempts still gets to its password.
func TestKeysLeaveThePasswordAnAttempt(t *testing.T) {
	v := newKeyVerifier()
	keys := []crypto.Signer{testUserKey("x"), testUserKey("y"), testUserKey("z"), testUserKey("w")}
	ccfg, asked := keyClientConfig("alice", keys, "correct horse")
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, serverConfig(v))
	if c.err != nil || s.err != nil {
		t.Fatalf("client: %v, server: %v", c.err, s.err)
	}
	if *asked != 1 || v.keyCallCount() != DefaultMaxAuthTries-1 {
		t.Errorf("%d keys tried and the password asked %d times; want %d and 1", v.keyCallCount(), *asked, DefaultMaxAuthTries-1)
	}
}

// TestNoKeyCanSign: keys that all fail to sign, and no password, are a
// login failure that names the cause.
func TestNoKeyCanSign(t *testing.T) {
	ccfg, _ := keyClientConfig("alice", []crypto.Signer{failingSigner{testUserKey("alice")}})
	cc, sc := tcpPipe(t)
	c, _ := handshakePair(t, cc, sc, ccfg, serverConfig(newKeyVerifier()))
	if !errors.Is(c.err, ErrAuthFailed) || !strings.Contains(c.err.Error(), "agent refused") {
		t.Errorf("client: %v, want ErrAuthFailed naming the signing error", c.err)
	}
}
