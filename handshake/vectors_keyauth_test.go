package handshake

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"slices"
	"testing"

	"securechat/cipher"
)

// katKeyAuth is a public-key AUTH (PROTOCOL.md §10.2, method 0x02) as the
// client of one vector session would send it in place of that session's
// password AUTH: c2s generation 0 seq 1.
type katKeyAuth struct {
	Comment        string        `json:"comment"`
	Session        string        `json:"session"`
	Inputs         []katInputRef `json:"inputs"`
	User           string        `json:"user"`
	TranscriptHash string        `json:"transcript_hash"`
	UserKeySeed    string        `json:"user_key_seed"`
	UserPublicKey  string        `json:"user_public_key"`
	SignedMessage  string        `json:"signed_message"`
	Signature      string        `json:"signature"`
	Payload        string        `json:"payload"`
	Record         katRecord     `json:"record"`
}

// buildKeyAuth makes the key AUTH vector for session vec. The signed
// message and the payload are put together here by hand, apart from the
// package's code; the package must make the same payload.
func buildKeyAuth(t *testing.T, vec *katSession) katKeyAuth {
	t.Helper()
	const seedLabel = "user key seed"
	const user = "alice"
	seed := katInput(seedLabel, 32)
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	th := mustHex(t, vec.TranscriptHash)
	msg := slices.Concat([]byte("securechat v1 user auth\x00"), th, []byte{byte(len(user))}, []byte(user), pub)
	sig := ed25519.Sign(key, msg)
	data := slices.Concat([]byte{0x08, 0x07, 0, 32}, pub, []byte{0, 64}, sig)
	payload := slices.Concat([]byte{0x02, byte(len(user))}, []byte(user), []byte{0, byte(len(data))}, data)

	var th32 [32]byte
	copy(th32[:], th)
	made, err := marshalKeyAuth(th32, user, key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(made, payload) {
		t.Errorf("key AUTH payload:\n got  %x\n want %x", made, payload)
	}

	const ivLabel = "user key auth record iv"
	iv := katInput(ivLabel, 32)[:16]
	const seq = 1
	return katKeyAuth{
		Comment: "PROTOCOL.md §10.2: the AUTH that the client of session " + vec.Name + " sends to log in as " + user +
			" with the Ed25519 key made from user_key_seed, in place of that session's password AUTH: c2s generation 0 seq 1; " +
			"the signature is Ed25519 over signed_message",
		Session:        vec.Name,
		Inputs:         []katInputRef{{Field: "user_key_seed", Label: seedLabel, Size: 32}},
		User:           user,
		TranscriptHash: vec.TranscriptHash,
		UserKeySeed:    hex.EncodeToString(seed),
		UserPublicKey:  hex.EncodeToString(pub),
		SignedMessage:  hex.EncodeToString(msg),
		Signature:      hex.EncodeToString(sig),
		Payload:        hex.EncodeToString(payload),
		Record: katRecord{
			Direction: "c2s", Generation: 0, Seq: seq, Type: cipher.TypeAuth.String(),
			IVLabel: ivLabel, IV: hex.EncodeToString(iv), Plaintext: hex.EncodeToString(payload),
			Record: hex.EncodeToString(sealRecord(mustHex(t, vec.C2SEncKey0), mustHex(t, vec.C2SMacKey0), seq, cipher.TypeAuth, iv, payload)),
		},
	}
}

// openKeyAuth opens the stored key AUTH record as the server of its
// session would, after the client's FINISHED, and checks that the server's
// own verification accepts it for this session and refuses it for every
// other session of the file.
func openKeyAuth(t *testing.T, f *katFile) {
	t.Helper()
	a := &f.UserKeyAuth
	var vec *katSession
	for i := range f.Sessions {
		if f.Sessions[i].Name == a.Session {
			vec = &f.Sessions[i]
		}
	}
	if vec == nil {
		t.Fatalf("user_key_auth names session %q, which the file does not have", a.Session)
	}
	var stream []byte
	for _, r := range vec.Records {
		if r.Direction == "c2s" && r.Generation == 0 && r.Seq < a.Record.Seq {
			stream = append(stream, mustHex(t, r.Record)...)
		}
	}
	stream = append(stream, mustHex(t, a.Record.Record)...)
	conn := cipher.New(&streamConn{r: bytes.NewReader(stream)}, mustHex(t, vec.S2CSecret0), mustHex(t, vec.C2SSecret0), nil)
	for range a.Record.Seq {
		if _, _, err := conn.ReadRecord(); err != nil {
			t.Fatal(err)
		}
	}
	typ, p, err := conn.ReadRecord()
	if err != nil || typ != cipher.TypeAuth || hex.EncodeToString(p) != a.Payload {
		t.Fatalf("key AUTH record opened to %v %x, %v", typ, p, err)
	}
	method, user, data, err := parseAuth(p)
	if err != nil || method != authMethodPublicKey || user != a.User {
		t.Fatalf("parseAuth: %d %q %v", method, user, err)
	}
	ka, err := parseKeyAuth(data)
	if err != nil {
		t.Fatal(err)
	}
	v := newKeyVerifier()
	v.keys[a.User] = []ed25519.PublicKey{mustHex(t, a.UserPublicKey)}
	for _, s := range f.Sessions {
		hs := &serverHandshake{ctx: t.Context(), cfg: &ServerConfig{Verifier: v}}
		copy(hs.th[:], mustHex(t, s.TranscriptHash))
		_, err := hs.verifyKeyAuth(user, ka)
		if s.Name == a.Session && err != nil {
			t.Errorf("the stored key AUTH is refused in its own session: %v", err)
		}
		if s.Name != a.Session && err == nil {
			t.Errorf("the key AUTH of session %s is accepted in session %s", a.Session, s.Name)
		}
	}
}
