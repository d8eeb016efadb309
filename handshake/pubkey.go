package handshake

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// Public-key login (PROTOCOL.md §10.2, method 0x02).
const (
	authMethodPublicKey = 0x02
	// userAuthContext starts the message a user key signs. It differs from
	// the host key's context, so neither signature can stand for the other.
	userAuthContext = "securechat v1 user auth\x00"
)

// PublicKeyVerifier is implemented by a [Verifier] that also accepts
// public-key logins. The server checks the client's signature over the
// session first and calls VerifyPublicKey only for a key that signed this
// very session, so an implementation only decides whether key belongs to
// user. A Verifier without this method refuses every key login, with the
// same failure byte as a wrong password.
type PublicKeyVerifier interface {
	// VerifyPublicKey returns nil if key is one of user's authorized keys,
	// and otherwise an error wrapping ErrAuthFailed (or an internal error).
	VerifyPublicKey(ctx context.Context, user string, key ed25519.PublicKey) error
}

// UserAuthMessage is what a user's key signs to log in (PROTOCOL.md §10.2):
//
//	"securechat v1 user auth\x00" || TH || u8(len(user)) || user || public_key
//
// TH is unique to one session, so a signature captured in one session
// proves nothing in another, to this server or any other; it binds the
// server's host key too, which SERVER_HELLO carries. This plays the part of
// the session identifier in SSH's publickey userauth (RFC 4252 §7).
func UserAuthMessage(th [32]byte, user string, pub ed25519.PublicKey) []byte {
	msg := make([]byte, 0, len(userAuthContext)+len(th)+1+len(user)+len(pub))
	msg = append(msg, userAuthContext...)
	msg = append(msg, th[:]...)
	msg = append(msg, byte(len(user)))
	msg = append(msg, user...)
	return append(msg, pub...)
}

// marshalKeyAuth signs the login message with signer and encodes
//
//	method 0x02 | username opaque8 | data opaque16
//	data = sig_alg u16 | public_key opaque16 | signature opaque16
//
// The outer form is the one every AUTH has, so a server that predates
// method 0x02 answers it with the ordinary failure byte, and the client
// goes on to its password.
func marshalKeyAuth(th [32]byte, user string, signer crypto.Signer) ([]byte, error) {
	pub, ok := signer.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("handshake: user key is a %T, not an Ed25519 key", signer.Public())
	}
	// Ed25519 signs the message itself: crypto.Hash(0) says "no prehash".
	sig, err := signer.Sign(rand.Reader, UserAuthMessage(th, user, pub), crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("handshake: signing the login with key %s: %w", Fingerprint(pub), err)
	}
	if !verifyEd25519(pub, UserAuthMessage(th, user, pub), sig) {
		// An agent that signed something else (or with another key) would
		// only burn one of our attempts: say so here instead.
		return nil, fmt.Errorf("handshake: the signature by key %s does not verify", Fingerprint(pub))
	}
	var b cryptobyte.Builder
	b.AddUint8(authMethodPublicKey)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(user)) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(sigAlgEd25519)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(pub) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sig) })
	})
	return b.Bytes()
}

// keyAuth is a parsed method 0x02 AUTH.
type keyAuth struct {
	sigAlg uint16
	key    []byte
	sig    []byte
}

// parseKeyAuth reads the data of a method 0x02 AUTH. Lengths that do not
// add up are malformed (fatal); an unknown algorithm or a key or signature
// of the wrong size is an ordinary failure, decided by the caller.
func parseKeyAuth(data []byte) (*keyAuth, error) {
	rest := cryptobyte.String(data)
	var a keyAuth
	var key, sig cryptobyte.String
	if !rest.ReadUint16(&a.sigAlg) || !rest.ReadUint16LengthPrefixed(&key) ||
		!rest.ReadUint16LengthPrefixed(&sig) || !rest.Empty() {
		return nil, errors.New("handshake: malformed AUTH")
	}
	a.key, a.sig = bytes.Clone(key), bytes.Clone(sig)
	return &a, nil
}

// errBadUserSignature is a key AUTH whose signature does not verify for
// this session: a replay, a signature by another key, or garbage.
var errBadUserSignature = fmt.Errorf("%w: the user key's signature does not verify for this session", ErrAuthFailed)

// verifyKeyAuth decides a key login: a supported algorithm, a signature
// by the key over this session's message, and a key the Verifier knows for
// user. The signature comes first, so the Verifier is asked only about
// keys that are really held by the client. A refusal before the Verifier
// is asked is reported to a RejectRecorder, so that it counts as a failed
// login like a wrong password.
func (hs *serverHandshake) verifyKeyAuth(user string, a *keyAuth) (ed25519.PublicKey, error) {
	if a.sigAlg != sigAlgEd25519 || len(a.key) != ed25519.PublicKeySize || len(a.sig) != ed25519.SignatureSize {
		hs.rejected("unsupported user key")
		return nil, fmt.Errorf("%w: unsupported user key (algorithm 0x%04x)", ErrAuthFailed, a.sigAlg)
	}
	pub := ed25519.PublicKey(a.key)
	if !verifyEd25519(pub, UserAuthMessage(hs.th, user, pub), a.sig) {
		hs.rejected("user key signature does not verify for this session")
		return nil, errBadUserSignature
	}
	pkv, ok := hs.cfg.Verifier.(PublicKeyVerifier)
	if !ok {
		hs.rejected("key login, and the server takes none")
		return nil, fmt.Errorf("%w: this server takes no key logins", ErrAuthFailed)
	}
	if err := pkv.VerifyPublicKey(hs.ctx, user, pub); err != nil {
		return nil, err
	}
	return pub, nil
}
