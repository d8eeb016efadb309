package handshake

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Host key rotation (PROTOCOL.md §7.5). A server that holds a next host key
// beside its current one announces it inside every authenticated session,
// and proves there that it holds both private keys for this very session.
// A client that trusted the current key records the next one, so that
// when the server switches keys the client already knows the new one.

// HostKeysEventType is the chat-layer event type of the announcement. A
// client that does not know it ignores it (PROTOCOL.md §13.2), so servers
// may send it to every client.
const HostKeysEventType = "hostkeys"

// The context strings of the two proofs. They differ from each other and
// from the SERVER_HELLO signature's, so no signature made for one purpose
// verifies for another.
const (
	announceLabelCurrent = "securechat v1 host key announcement, current\x00"
	announceLabelNext    = "securechat v1 host key announcement, next\x00"
)

// hostKeysEvent is the JSON form of the announcement. Keys and signatures
// are standard base64 with padding, as in known_hosts.
type hostKeysEvent struct {
	T            string `json:"t"`
	Next         string `json:"next"`
	ProofCurrent string `json:"proof_current"`
	ProofNext    string `json:"proof_next"`
}

// announceMessage is what both proofs sign after their label: the session
// id, which only the two ends of this session know, then the current and
// the next public key.
func announceMessage(label string, sessionID [32]byte, current, next ed25519.PublicKey) []byte {
	m := make([]byte, 0, len(label)+32+2*ed25519.PublicKeySize)
	m = append(m, label...)
	m = append(m, sessionID[:]...)
	m = append(m, current...)
	return append(m, next...)
}

// MarshalHostKeyAnnouncement returns the APP payload with which a server
// holding current and next announces next in the session sessionID: the
// event {"t":"hostkeys",...} with a proof by each key.
func MarshalHostKeyAnnouncement(current, next ed25519.PrivateKey, sessionID [32]byte) ([]byte, error) {
	if len(current) != ed25519.PrivateKeySize || len(next) != ed25519.PrivateKeySize {
		return nil, errors.New("handshake: host key announcement needs two Ed25519 private keys")
	}
	cur := current.Public().(ed25519.PublicKey)
	nxt := next.Public().(ed25519.PublicKey)
	if bytes.Equal(cur, nxt) {
		return nil, errors.New("handshake: the next host key is the current one")
	}
	ev := hostKeysEvent{
		T:    HostKeysEventType,
		Next: base64.StdEncoding.EncodeToString(nxt),
		ProofCurrent: base64.StdEncoding.EncodeToString(
			ed25519.Sign(current, announceMessage(announceLabelCurrent, sessionID, cur, nxt))),
		ProofNext: base64.StdEncoding.EncodeToString(
			ed25519.Sign(next, announceMessage(announceLabelNext, sessionID, cur, nxt))),
	}
	return json.Marshal(ev)
}

// IsHostKeyAnnouncement reports whether an APP payload is a hostkeys event,
// without judging it. Only the type is looked at. It is cheap for the
// payloads that are not: those are never decoded here.
func IsHostKeyAnnouncement(payload []byte) bool {
	if !bytes.Contains(payload, []byte(`"`+HostKeysEventType+`"`)) {
		return false
	}
	var t struct {
		T string `json:"t"`
	}
	return json.Unmarshal(payload, &t) == nil && t.T == HostKeysEventType
}

// VerifyHostKeyAnnouncement checks a hostkeys event received in the
// session whose id is sessionID, from a server that proved current in the
// handshake, and returns the announced next key. It fails unless the
// event parses, the next key differs from current, and both proofs verify
// for this session: one by current, one by the next key.
func VerifyHostKeyAnnouncement(payload []byte, current ed25519.PublicKey, sessionID [32]byte) (ed25519.PublicKey, error) {
	var ev hostKeysEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("handshake: host key announcement: %v", err)
	}
	if ev.T != HostKeysEventType {
		return nil, fmt.Errorf("handshake: host key announcement: event type %q", ev.T)
	}
	next, err := base64.StdEncoding.Strict().DecodeString(ev.Next)
	if err != nil || len(next) != ed25519.PublicKeySize {
		return nil, errors.New("handshake: host key announcement: next is not a base64 32-byte Ed25519 key")
	}
	if len(current) != ed25519.PublicKeySize {
		return nil, errors.New("handshake: host key announcement: current key is not 32 bytes")
	}
	if bytes.Equal(next, current) {
		return nil, errors.New("handshake: host key announcement: the next key is the current one")
	}
	for _, p := range []struct {
		name, label, sig string
		key              ed25519.PublicKey
	}{
		{"current", announceLabelCurrent, ev.ProofCurrent, current},
		{"next", announceLabelNext, ev.ProofNext, next},
	} {
		sig, err := base64.StdEncoding.Strict().DecodeString(p.sig)
		if err != nil || len(sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("handshake: host key announcement: proof_%s is not a base64 64-byte signature", p.name)
		}
		if !ed25519.Verify(p.key, announceMessage(p.label, sessionID, current, next), sig) {
			return nil, fmt.Errorf("handshake: host key announcement: proof by the %s key does not verify for this session", p.name)
		}
	}
	return next, nil
}
