package msgsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite signed_messages in "+vectorsFile+" from the current code")

const vectorsFile = "../vectors/securechat-v1.json"

// The inputs follow the file's input_rule (PROTOCOL.md §15); alice's key
// is the one of user_key_auth.
const (
	katPrefix     = "securechat v1 test vector "
	katUserLabel  = "user key seed"
	katOtherLabel = "another user key seed"
	katServer     = "chat.example.org:7000"
	katCts        = 1796032800123 // 2026-11-30T10:00:00.123Z
)

type katInputRef struct {
	Field string `json:"field"`
	Label string `json:"label"`
	Size  int    `json:"size"`
}

// katWire is a chat request or event, its keys in the order the
// specification shows them.
type katWire struct {
	T       string `json:"t"`
	ID      string `json:"id,omitempty"`
	MID     uint64 `json:"mid,omitempty"`
	TS      string `json:"ts,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Room    string `json:"room,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	Text    string `json:"text,omitempty"`
	History bool   `json:"history,omitempty"`
	Key     string `json:"key,omitempty"`
	Sig     string `json:"sig,omitempty"`
	Ctr     uint64 `json:"ctr,omitempty"`
	Cts     uint64 `json:"cts,omitempty"`
}

type katMessage struct {
	Name          string  `json:"name"`
	Kind          string  `json:"kind"`
	Target        string  `json:"target"`
	From          string  `json:"from"`
	Ctr           uint64  `json:"ctr"`
	Cts           uint64  `json:"cts"`
	Text          string  `json:"text"`
	SignedMessage string  `json:"signed_message"`
	Signature     string  `json:"signature"`
	Request       katWire `json:"request"`
	Event         katWire `json:"event"`
}

// katCheck is one event as a receiver gets it, in order, and the mark the
// rules of §13.16.5 give it.
type katCheck struct {
	Name        string  `json:"name"`
	StartReplay bool    `json:"start_replay,omitempty"`
	Event       katWire `json:"event"`
	Status      string  `json:"status"`
	Reason      string  `json:"reason"`
}

type katSigned struct {
	Comment            string        `json:"comment"`
	Inputs             []katInputRef `json:"inputs"`
	Server             string        `json:"server"`
	User               string        `json:"user"`
	UserPublicKey      string        `json:"user_public_key"`
	UserKeyFingerprint string        `json:"user_key_fingerprint"`
	KnownUsersLine     string        `json:"known_users_line"`
	OtherPublicKey     string        `json:"other_public_key"`
	Messages           []katMessage  `json:"messages"`
	Receiver           string        `json:"receiver"`
	ReceiverPolicy     string        `json:"receiver_policy"`
	ReceiverNow        uint64        `json:"receiver_now_ms"`
	Checks             []katCheck    `json:"checks"`
}

func katKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(katPrefix + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

// handMessage puts the signed bytes of §13.16.2 together by hand, apart
// from Message.
func handMessage(pub ed25519.PublicKey, kind, target, from string, ctr, cts uint64, text string) []byte {
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	return slices.Concat([]byte("securechat v1 signed message\x00"),
		[]byte{byte(len(kind))}, []byte(kind), []byte{byte(len(target))}, []byte(target),
		[]byte{byte(len(from))}, []byte(from), pub, u64(ctr), u64(cts),
		binary.BigEndian.AppendUint32(nil, uint32(len(text))), []byte(text))
}

func buildSignedVectors(t *testing.T) katSigned {
	t.Helper()
	alice, other := katKey(katUserLabel), katKey(katOtherLabel)
	pub := alice.Public().(ed25519.PublicKey)
	k := katSigned{
		Comment: "PROTOCOL.md §13.16: messages signed by alice with the user key of user_key_auth, as she sends them " +
			"and as the server relays them, and what receiver bob (policy accept-new, known_users empty at first, " +
			"his clock at receiver_now_ms) makes of each check event, in order",
		Inputs: []katInputRef{
			{Field: "user_key_seed", Label: katUserLabel, Size: 32},
			{Field: "other_key_seed", Label: katOtherLabel, Size: 32},
		},
		Server: katServer, User: "alice",
		UserPublicKey:      hex.EncodeToString(pub),
		UserKeyFingerprint: Fingerprint(pub),
		KnownUsersLine:     FormatKnownUser(UserAt("alice", katServer), pub, false),
		OtherPublicKey:     hex.EncodeToString(other.Public().(ed25519.PublicKey)),
		Receiver:           "bob", ReceiverPolicy: PolicyAcceptNew.String(), ReceiverNow: katCts + 1500,
	}
	ts := time.UnixMilli(katCts + 250).UTC().Format("2006-01-02T15:04:05.000Z")
	specs := []struct{ name, kind, target, text string }{
		{"room message", KindMsg, "#general", "hello, world"},
		{"action", KindMe, "#general", "waves"},
		{"direct message", KindDM, "bob", "psst — ünïcode ✓"},
	}
	events := map[string]katWire{}
	for i, s := range specs {
		ctr := uint64(katCts)*1000 + uint64(i)
		msg := handMessage(pub, s.kind, s.target, "alice", ctr, katCts, s.text)
		f := Fields{Kind: s.kind, Target: s.target, From: "alice", Counter: ctr, Time: katCts, Text: s.text}
		if got := Message(pub, &f); !bytes.Equal(got, msg) {
			t.Errorf("%s: Message:\n got  %x\n want %x", s.name, got, msg)
		}
		sig := ed25519.Sign(alice, msg)
		if made, err := Sign(alice, &f); err != nil || !bytes.Equal(made, sig) {
			t.Errorf("%s: Sign gave %x, %v", s.name, made, err)
		}
		req := katWire{T: "msg", ID: "c-" + string(rune('1'+i)), Text: s.text, Sig: EncodeSig(sig), Ctr: ctr, Cts: katCts}
		ev := katWire{T: "msg", MID: uint64(58 + i), TS: ts, Kind: s.kind, From: "alice", Text: s.text,
			Key: EncodeKey(pub), Sig: EncodeSig(sig), Ctr: ctr, Cts: katCts}
		if s.kind == KindDM {
			req.To, ev.To = s.target, s.target
		} else {
			req.Room, ev.Room = s.target, s.target
		}
		if s.kind == KindMe {
			req.Kind = KindMe
		}
		events[s.name] = ev
		k.Messages = append(k.Messages, katMessage{Name: s.name, Kind: s.kind, Target: s.target, From: "alice",
			Ctr: ctr, Cts: katCts, Text: s.text, SignedMessage: hex.EncodeToString(msg),
			Signature: hex.EncodeToString(sig), Request: req, Event: ev})
	}

	room, action, dm := events["room message"], events["action"], events["direct message"]
	forged := room
	{
		f := Fields{Kind: KindMsg, Target: "#general", From: "alice", Counter: room.Ctr + 10, Time: katCts, Text: "send me your password"}
		sig, _ := Sign(other, &f)
		forged.Key, forged.Sig, forged.Ctr, forged.Text, forged.MID = EncodeKey(other.Public().(ed25519.PublicKey)), EncodeSig(sig), f.Counter, f.Text, 70
	}
	moved := room
	moved.Room, moved.MID = "#random", 71
	asMe := room
	asMe.Kind, asMe.MID = KindMe, 72
	stripped := katWire{T: "msg", MID: 73, TS: ts, Kind: KindMsg, Room: "#general", From: "alice", Text: "no signature"}
	short := action
	short.Sig, short.MID = EncodeSig(make([]byte, 63)), 74
	history := room
	history.History = true
	steps := []struct {
		name   string
		replay bool
		ev     katWire
	}{
		{"first signed message pins alice's key", false, room},
		{"the same message again", false, room},
		{"replayed into another room", false, moved},
		{"replayed as an action", false, asMe},
		{"forged from alice with another key", false, forged},
		{"signature stripped", false, stripped},
		{"signature of the wrong length", false, short},
		{"an action", false, action},
		{"a direct message to bob", false, dm},
		{"the room message replayed as history", true, history},
		{"the same history message twice in one replay", false, history},
	}
	now := time.UnixMilli(int64(k.ReceiverNow))
	v, err := NewVerifier(Config{KnownUsers: filepath.Join(t.TempDir(), "known_users"), HostPort: katServer,
		Self: "bob", Policy: PolicyAcceptNew, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if s.replay {
			v.StartReplay("#general")
		}
		r := v.Check(&Event{Kind: s.ev.Kind, Room: s.ev.Room, To: s.ev.To, From: s.ev.From, Text: s.ev.Text,
			History: s.ev.History, Key: s.ev.Key, Sig: s.ev.Sig, Ctr: s.ev.Ctr, Cts: s.ev.Cts})
		k.Checks = append(k.Checks, katCheck{Name: s.name, StartReplay: s.replay, Event: s.ev,
			Status: r.Status.String(), Reason: r.Reason.String()})
	}
	return k
}

// TestVectors builds the signed message vectors (the signed bytes by
// hand, the package's Message and Sign compared with them, the checks
// judged by a Verifier) and compares them with signed_messages in the
// shared vector file. -update rewrites that member only.
func TestVectors(t *testing.T) {
	got := buildSignedVectors(t)
	// The checks mean what §13.16.5 says: spelled out here, so that a
	// change of the rules cannot slip into the file unseen.
	want := []string{"verified/", "failed/replayed", "failed/bad_signature", "failed/bad_signature",
		"failed/key_changed", "failed/signature_missing", "failed/malformed", "verified/", "verified/",
		"verified/", "failed/replayed"}
	for i, c := range got.Checks {
		if c.Status+"/"+c.Reason != want[i] {
			t.Errorf("check %q: %s/%s, want %s", c.Name, c.Status, c.Reason, want[i])
		}
	}
	if *update {
		value, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if err := replaceMember(vectorsFile, "signed_messages", value); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote signed_messages in %s", vectorsFile)
	}
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Signed *katSigned `json:"signed_messages"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if file.Signed == nil {
		t.Fatalf("%s has no signed_messages (run go test ./msgsig -run TestVectors -update)", vectorsFile)
	}
	if !reflect.DeepEqual(*file.Signed, got) {
		t.Errorf("signed_messages differ:\n got  %+v\n want %+v", got, *file.Signed)
	}
	// The stored messages verify, and the stored line pins the stored key.
	pub, _ := hex.DecodeString(file.Signed.UserPublicKey)
	for _, m := range file.Signed.Messages {
		sig, _ := hex.DecodeString(m.Signature)
		f := Fields{Kind: m.Kind, Target: m.Target, From: m.From, Counter: m.Ctr, Time: m.Cts, Text: m.Text}
		if !Verify(pub, &f, sig) {
			t.Errorf("stored %s does not verify", m.Name)
		}
	}
	k, err := ParseKnownUsers(bytes.NewReader([]byte(file.Signed.KnownUsersLine)), "vector")
	if err != nil || len(k.Users) != 1 || !bytes.Equal(k.Users[0].Key, pub) {
		t.Errorf("known_users_line: %+v %v", k, err)
	}
}

// replaceMember sets the top-level member name of the JSON object in path
// to value (appending it if new), keeping the other members and their
// order, and writes the file indented as package handshake's TestVectors
// writes it, so that either may rewrite the file.
func replaceMember(path, name string, value []byte) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	var out bytes.Buffer
	out.WriteByte('{')
	found := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		if key == name {
			raw, found = value, true
		}
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		k, _ := json.Marshal(key)
		out.Write(k)
		out.WriteByte(':')
		out.Write(raw)
	}
	if !found {
		k, _ := json.Marshal(name)
		out.WriteString("," + string(k) + ":")
		out.Write(value)
	}
	out.WriteByte('}')
	var indented bytes.Buffer
	if err := json.Indent(&indented, out.Bytes(), "", "  "); err != nil {
		return err
	}
	indented.WriteByte('\n')
	return os.WriteFile(path, indented.Bytes(), 0o644)
}
