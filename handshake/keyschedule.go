package handshake

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"

	"securechat/cipher"
)

const (
	transcriptPrefix  = "securechat v1 transcript\x00"
	signatureContext  = "securechat v1 server signature\x00"
	extractSalt       = "securechat v1"
	labelPrefix       = "securechat v1 "
	secretLen         = 32
	maxChannelBinding = 255
)

// transcriptPrefix returns "securechat v1 transcript\x00" || u8(len(CB)) || CB
// (PROTOCOL.md §5.3).
func transcriptPrefixBytes(cb []byte) ([]byte, error) {
	if len(cb) > maxChannelBinding {
		return nil, fmt.Errorf("handshake: channel binding of %d bytes (max 255)", len(cb))
	}
	p := make([]byte, 0, len(transcriptPrefix)+1+len(cb))
	p = append(p, transcriptPrefix...)
	p = append(p, byte(len(cb)))
	return append(p, cb...), nil
}

// transcriptHash is TH = SHA-256(prefix || CH || SH).
func transcriptHash(prefix, ch, sh []byte) [32]byte {
	h := sha256.New()
	h.Write(prefix)
	h.Write(ch)
	h.Write(sh)
	var th [32]byte
	h.Sum(th[:0])
	return th
}

// signedMessage is what the host key signs (PROTOCOL.md §7.2): the context
// string and SHA-256(prefix || CH || SH_unsigned), where SH_unsigned is the
// SERVER_HELLO frame without its last 66 bytes.
func signedMessage(prefix, ch, shUnsigned []byte) []byte {
	h := sha256.New()
	h.Write(prefix)
	h.Write(ch)
	h.Write(shUnsigned)
	msg := make([]byte, 0, len(signatureContext)+sha256.Size)
	msg = append(msg, signatureContext...)
	return h.Sum(msg)
}

func signServerHello(key ed25519.PrivateKey, prefix, ch, sh []byte) []byte {
	return ed25519.Sign(key, signedMessage(prefix, ch, sh[:len(sh)-signatureFieldLen]))
}

var errBadSignature = errors.New("handshake: server signature does not verify")

func verifyServerHello(pub ed25519.PublicKey, prefix, ch, sh, sig []byte) error {
	if len(sh) < frameHeaderLen+signatureFieldLen ||
		!verifyEd25519(pub, signedMessage(prefix, ch, sh[:len(sh)-signatureFieldLen]), sig) {
		return errBadSignature
	}
	return nil
}

// verifyEd25519 is RFC 8032 verification as crypto/ed25519 does it (it
// rejects non-canonical S), without panicking on a bad key length.
func verifyEd25519(pub ed25519.PublicKey, msg, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, msg, sig)
}

// expandLabel is HKDF-Expand(secret, label(name, context), 32) with the
// label encoding of PROTOCOL.md §8, shared with the record layer.
func expandLabel(secret []byte, name string, context []byte) []byte {
	k := cipher.ExpandLabel(secret, name, context)
	out := bytes.Clone(k[:])
	clear(k[:])
	return out
}

// sessionKeys is everything the key schedule derives from ss and TH.
type sessionKeys struct {
	c2s, s2c   []byte // generation-0 traffic secrets, handed to the record layer
	finC, finS []byte // Finished keys
	sessionID  [32]byte
}

// deriveKeys runs PROTOCOL.md §8. PRK is cleared before returning; the caller
// erases ss and, when done, the returned secrets (sessionKeys.erase).
func deriveKeys(ss []byte, th [32]byte) *sessionKeys {
	prk, err := hkdf.Extract(sha256.New, ss, []byte(extractSalt))
	if err != nil {
		panic("handshake: hkdf extract: " + err.Error())
	}
	defer clear(prk)
	k := &sessionKeys{
		c2s:  expandLabel(prk, "c2s traffic", th[:]),
		s2c:  expandLabel(prk, "s2c traffic", th[:]),
		finC: expandLabel(prk, "c finished", th[:]),
		finS: expandLabel(prk, "s finished", th[:]),
	}
	sid := expandLabel(prk, "session id", th[:])
	copy(k.sessionID[:], sid)
	return k
}

// erase clears the secrets we own. The record layer keeps its own copies of
// the traffic secrets; hkdf and hmac keep internal states Go cannot reach.
func (k *sessionKeys) erase() {
	clear(k.c2s)
	clear(k.s2c)
	clear(k.finC)
	clear(k.finS)
}

// finishedMAC is HMAC-SHA-256(fin, TH) (PROTOCOL.md §10.1).
func finishedMAC(fin []byte, th [32]byte) []byte {
	m := hmac.New(sha256.New, fin)
	m.Write(th[:])
	return m.Sum(nil)
}
