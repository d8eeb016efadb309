package msgsig

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Kinds of message that are signed; the kind is part of the signed bytes,
// so an action cannot pass for a message, nor a room message for a DM.
const (
	KindMsg = "msg" // a room message
	KindMe  = "me"  // a room action (/me)
	KindDM  = "dm"  // a direct message
)

// signedContext starts every signed message. No other signature in
// securechat starts with it (host key: "securechat v1 server signature",
// login: "securechat v1 user auth"), so none can stand for another.
const signedContext = "securechat v1 signed message\x00"

// MaxCounter bounds Fields.Counter and Fields.Time: both travel as JSON
// numbers, which many decoders read as float64, exact only below 2^53.
const MaxCounter = 1<<53 - 1

// Fields are the parts of a message the sender signs (PROTOCOL.md §13.16).
type Fields struct {
	Kind string // KindMsg, KindMe or KindDM
	// Target is the room ("#general") for KindMsg and KindMe, the
	// recipient's user name for KindDM; lower case, as the server sends it.
	Target string
	From   string // the sender's user name, lower case
	// Counter increases with every message the key signs, in any room or
	// DM; recipients refuse one that does not (a replay). 1..MaxCounter.
	Counter uint64
	// Time is the sender's clock when it signed, in milliseconds since
	// the Unix epoch. 0..MaxCounter.
	Time uint64
	// Text is the text as the server relays it: already sanitised
	// (PROTOCOL.md §13.10), so that the server has nothing to change.
	Text string
}

// check says why f cannot be signed or verified, or nil.
func (f *Fields) check() error {
	switch f.Kind {
	case KindMsg, KindMe, KindDM:
	default:
		return fmt.Errorf("msgsig: kind %q cannot be signed (want msg, me or dm)", f.Kind)
	}
	switch {
	case f.Kind == KindDM && !validUser(f.Target):
		return fmt.Errorf("msgsig: recipient %q is not a user name", f.Target)
	case f.Kind != KindDM && !validRoom(f.Target):
		return fmt.Errorf("msgsig: room %q is not a room name", f.Target)
	case !validUser(f.From):
		return fmt.Errorf("msgsig: sender %q is not a user name", f.From)
	case f.Counter == 0 || f.Counter > MaxCounter:
		return fmt.Errorf("msgsig: counter %d outside 1..2^53-1", f.Counter)
	case f.Time > MaxCounter:
		return fmt.Errorf("msgsig: time %d over 2^53-1", f.Time)
	case len(f.Text) > 1<<24:
		return errors.New("msgsig: text too long to sign")
	}
	return nil
}

// Message returns the bytes that pub's owner signs for f:
//
//	"securechat v1 signed message\x00"
//	|| u8(len(kind))   || kind
//	|| u8(len(target)) || target
//	|| u8(len(from))   || from
//	|| public_key                       (32 bytes)
//	|| u64(counter) || u64(time)        (big-endian)
//	|| u32(len(text))  || text
//
// Every variable field has a length in front, so no two different Fields
// give the same bytes, and no JSON is ever canonicalised. The key is
// signed too, as in the login message (§10.2), so a signature names the
// key it was made with.
func Message(pub ed25519.PublicKey, f *Fields) []byte {
	n := len(signedContext) + 3 + len(f.Kind) + len(f.Target) + len(f.From) + len(pub) + 16 + 4 + len(f.Text)
	b := make([]byte, 0, n)
	b = append(b, signedContext...)
	b = append(b, byte(len(f.Kind)))
	b = append(b, f.Kind...)
	b = append(b, byte(len(f.Target)))
	b = append(b, f.Target...)
	b = append(b, byte(len(f.From)))
	b = append(b, f.From...)
	b = append(b, pub...)
	b = binary.BigEndian.AppendUint64(b, f.Counter)
	b = binary.BigEndian.AppendUint64(b, f.Time)
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.Text)))
	return append(b, f.Text...)
}

// Sign signs f with signer, an Ed25519 key held in memory
// (ed25519.PrivateKey) or by an ssh-agent, and returns the 64-byte
// signature. It checks the signature before returning it, so an agent that
// signed with another key is caught here rather than at every recipient.
func Sign(signer crypto.Signer, f *Fields) ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	pub, ok := signer.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("msgsig: signing key is a %T, not an Ed25519 key", signer.Public())
	}
	msg := Message(pub, f)
	// Pure Ed25519: crypto.Hash(0) says "no prehash", as an agent signs.
	sig, err := signer.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("msgsig: signing: %w", err)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		return nil, errors.New("msgsig: the signer's signature does not verify with its own key")
	}
	return sig, nil
}

// Verify reports whether sig is pub's signature over f. Fields that could
// not have been signed (an unknown kind, a bad name, counter 0) never
// verify. Signatures with S ≥ L are refused (RFC 8032 §5.1.7), as Go's
// crypto/ed25519 does.
func Verify(pub ed25519.PublicKey, f *Fields, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize || f.check() != nil {
		return false
	}
	return ed25519.Verify(pub, Message(pub, f), sig)
}

// EncodeKey and EncodeSig give the wire forms of the event's "key" and
// "sig" fields: standard base64 with padding of the raw bytes.
func EncodeKey(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }

// EncodeSig is the wire form of a signature; see EncodeKey.
func EncodeSig(sig []byte) string { return base64.StdEncoding.EncodeToString(sig) }

// DecodeKey reads the wire form of a public key: exactly 32 bytes.
func DecodeKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("msgsig: key is not a base64 32-byte Ed25519 public key")
	}
	return b, nil
}

// DecodeSig reads the wire form of a signature: exactly 64 bytes.
func DecodeSig(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != ed25519.SignatureSize {
		return nil, errors.New("msgsig: sig is not a base64 64-byte Ed25519 signature")
	}
	return b, nil
}

// The name rules of PROTOCOL.md §13.8, on names as the server sends them
// (already lower case). They are repeated here rather than imported so
// that the chat package may import this one.
func validUser(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

func validRoom(s string) bool {
	if len(s) < 2 || len(s) > 33 || s[0] != '#' {
		return false
	}
	if c := s[1]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

// Signed is what a sender adds to a msg request (PROTOCOL.md §13.16.3),
// in wire form.
type Signed struct {
	Key string // base64 of the signing key; the server fills the event's "key" itself
	Sig string // "sig"
	Ctr uint64 // "ctr"
	Cts uint64 // "cts"
}

// Sender numbers and signs the messages of one signing key. The counter
// follows the clock, max(previous + 1, cts × 1000), so it keeps increasing
// across restarts and reinstalls without being stored, and two clients
// sharing one key stay in order as far as their clocks agree. It is safe
// for concurrent use.
type Sender struct {
	Signer crypto.Signer
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu   sync.Mutex
	last uint64
}

// Sign signs a message of kind to target (a room, or the recipient of a
// DM) from user from. text must already be sanitised as the server would
// (PROTOCOL.md §13.10, chat.SanitizeText), or the server refuses it.
func (s *Sender) Sign(kind, target, from, text string) (Signed, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cts := uint64(max(now().UnixMilli(), 0))
	ctr := max(s.last+1, cts*1000)
	f := Fields{Kind: kind, Target: target, From: from, Counter: ctr, Time: cts, Text: text}
	sig, err := Sign(s.Signer, &f)
	if err != nil {
		return Signed{}, err
	}
	s.last = ctr
	return Signed{Key: EncodeKey(s.Signer.Public().(ed25519.PublicKey)), Sig: EncodeSig(sig), Ctr: ctr, Cts: cts}, nil
}
