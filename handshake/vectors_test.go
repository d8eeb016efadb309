package handshake

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"securechat/cipher"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors_x25519.json from the current code")

const vectorsFile = "testdata/vectors_x25519.json"

// katRecord is one sealed record of the vector session.
type katRecord struct {
	Direction string `json:"direction"` // "c2s" or "s2c"
	Seq       uint64 `json:"seq"`
	Type      string `json:"type"`
	IV        string `json:"iv"`
	Plaintext string `json:"plaintext"`
	Record    string `json:"record"`
}

// katVector is a complete x25519 session: fixed inputs, the two hellos and
// every value of the key schedule, then records sealed with fixed IVs. All
// byte strings are hex.
type katVector struct {
	Comment             string      `json:"comment"`
	Group               string      `json:"group"`
	Transport           string      `json:"transport"`
	ChannelBinding      string      `json:"channel_binding"`
	ClientRandom        string      `json:"client_random"`
	ClientX25519Private string      `json:"client_x25519_private"`
	ClientX25519Public  string      `json:"client_x25519_public"`
	ServerRandom        string      `json:"server_random"`
	ServerX25519Private string      `json:"server_x25519_private"`
	ServerX25519Public  string      `json:"server_x25519_public"`
	HostKeySeed         string      `json:"host_key_seed"`
	HostPublicKey       string      `json:"host_public_key"`
	HostFingerprint     string      `json:"host_key_fingerprint"`
	ClientHello         string      `json:"client_hello"`
	ServerHello         string      `json:"server_hello"`
	TranscriptPrefix    string      `json:"transcript_prefix"`
	SignedHash          string      `json:"signed_hash"`
	Signature           string      `json:"signature"`
	SharedSecret        string      `json:"shared_secret"`
	TranscriptHash      string      `json:"transcript_hash"`
	PRK                 string      `json:"prk"`
	C2SSecret0          string      `json:"c2s_secret_0"`
	S2CSecret0          string      `json:"s2c_secret_0"`
	FinC                string      `json:"fin_c"`
	FinS                string      `json:"fin_s"`
	SessionID           string      `json:"session_id"`
	C2SEncKey0          string      `json:"c2s_enc_key_0"`
	C2SMacKey0          string      `json:"c2s_mac_key_0"`
	C2SSecret1          string      `json:"c2s_secret_1"`
	S2CEncKey0          string      `json:"s2c_enc_key_0"`
	S2CMacKey0          string      `json:"s2c_mac_key_0"`
	S2CSecret1          string      `json:"s2c_secret_1"`
	ServerFinished      string      `json:"server_finished"`
	ClientFinished      string      `json:"client_finished"`
	User                string      `json:"user"`
	Password            string      `json:"password"`
	Records             []katRecord `json:"records"`
}

// katInput makes a fixed, random-looking input from a name.
func katInput(name string) []byte {
	s := sha256.Sum256([]byte("securechat v1 test vector " + name))
	return s[:]
}

// katInfo builds an HKDF info string for PROTOCOL.md §8 by hand, apart from
// the package's own label code.
func katInfo(name string, context []byte) string {
	full := "securechat v1 " + name
	return string([]byte{byte(len(full))}) + full + string([]byte{byte(len(context))}) + string(context)
}

func katExpand(t *testing.T, secret []byte, name string, context []byte) []byte {
	t.Helper()
	out, err := hkdf.Expand(sha256.New, secret, katInfo(name, context), 32)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tapConn records what passes through a connection in each direction.
type tapConn struct {
	net.Conn
	mu          sync.Mutex
	wrote, read bytes.Buffer
}

func (c *tapConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	c.wrote.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.read.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

// splitRecords cuts a byte stream into records.
func splitRecords(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		rec, err := readRawRecord(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("bad record stream: %v", err)
		}
		out = append(out, rec)
		b = b[len(rec):]
	}
	return out
}

// buildVector runs a real Client and Server with the fixed inputs, checks
// every intermediate value against an independent computation and the
// record layer against sealRecord, and returns the vector.
func buildVector(t *testing.T) *katVector {
	const (
		user     = "alice"
		password = "correct horse"
	)
	clientRandom, clientPriv := katInput("client random"), katInput("client x25519 private")
	serverRandom, serverPriv := katInput("server random"), katInput("server x25519 private")
	hostSeed := katInput("host key seed")
	hostKey := ed25519.NewKeyFromSeed(hostSeed)
	hostPub := hostKey.Public().(ed25519.PublicKey)
	appC2S, appS2C := []byte("hello from the client"), []byte("hello from the server")

	// The hooks hand out randomness in the order the code draws it: the
	// client takes its random and then its scalar; the server answers the
	// share (its scalar) and then draws its random.
	ccfg := &ClientConfig{
		Groups:          []Group{GroupX25519},
		Transport:       "tcp",
		HostKeyCallback: FixedHostKey(hostPub),
		User:            user,
		Password:        func(int) ([]byte, error) { return []byte(password), nil },
		hooks:           &testHooks{rand: bytes.NewReader(append(append([]byte{}, clientRandom...), clientPriv...))},
	}
	v := &testVerifier{accounts: map[string]string{user: password}}
	scfg := &ServerConfig{
		HostKey:   hostKey,
		Verifier:  v,
		Transport: "tcp",
		hooks:     &testHooks{rand: bytes.NewReader(append(append([]byte{}, serverPriv...), serverRandom...))},
	}
	cEnd, sEnd := net.Pipe()
	tap := &tapConn{Conn: cEnd}
	ctx := context.Background()
	srv := make(chan result, 1)
	go func() {
		s, err := Server(ctx, sEnd, scfg)
		srv <- result{s, err}
	}()
	cs, err := Client(ctx, tap, ccfg)
	sr := <-srv
	if err != nil || sr.err != nil {
		t.Fatalf("client: %v, server: %v", err, sr.err)
	}
	ss := sr.s
	// One APP record each way, sealed by the record layer with its own IVs.
	errc := make(chan error, 1)
	go func() {
		if _, err := ss.ReadMessage(); err != nil {
			errc <- err
			return
		}
		errc <- ss.WriteMessage(appS2C)
	}()
	if err := cs.WriteMessage(appC2S); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	cs.Abort()
	ss.Abort()

	tap.mu.Lock()
	c2sStream, s2cStream := tap.wrote.Bytes(), tap.read.Bytes()
	tap.mu.Unlock()
	_, chFrame, err := readFrame(bytes.NewReader(c2sStream), frameClientHello)
	if err != nil {
		t.Fatal(err)
	}
	_, shFrame, err := readFrame(bytes.NewReader(s2cStream), frameServerHello)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := parseServerHello(shFrame)
	if err != nil {
		t.Fatal(err)
	}

	// Independent computation of PROTOCOL.md §5.3, §6, §7.2 and §8.
	prefix := []byte("securechat v1 transcript\x00\x00")
	cPriv, _ := ecdh.X25519().NewPrivateKey(clientPriv)
	sPriv, _ := ecdh.X25519().NewPrivateKey(serverPriv)
	if !bytes.Equal(sh.keyShare, sPriv.PublicKey().Bytes()) {
		t.Fatal("server share is not from the fixed scalar")
	}
	sharedSecret, err := cPriv.ECDH(sPriv.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	signed := sha256.Sum256(append(append(bytes.Clone(prefix), chFrame...), shFrame[:len(shFrame)-66]...))
	if !ed25519.Verify(hostPub, append([]byte("securechat v1 server signature\x00"), signed[:]...), sh.signature) {
		t.Fatal("signature does not verify")
	}
	th := sha256.Sum256(append(append(bytes.Clone(prefix), chFrame...), shFrame...))
	prk, err := hkdf.Extract(sha256.New, sharedSecret, []byte("securechat v1"))
	if err != nil {
		t.Fatal(err)
	}
	c2s0 := katExpand(t, prk, "c2s traffic", th[:])
	s2c0 := katExpand(t, prk, "s2c traffic", th[:])
	finC := katExpand(t, prk, "c finished", th[:])
	finS := katExpand(t, prk, "s finished", th[:])
	sid := katExpand(t, prk, "session id", th[:])
	c2sEnc, c2sMac, c2s1 := katExpand(t, c2s0, "enc", nil), katExpand(t, c2s0, "mac", nil), katExpand(t, c2s0, "next", nil)
	s2cEnc, s2cMac, s2c1 := katExpand(t, s2c0, "enc", nil), katExpand(t, s2c0, "mac", nil), katExpand(t, s2c0, "next", nil)
	mac := func(key []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(th[:])
		return m.Sum(nil)
	}
	serverFinished, clientFinished := mac(finS), mac(finC)

	// The package's own key schedule and the record layer's key derivation
	// must agree with the above.
	keys := deriveKeys(sharedSecret, th)
	if !bytes.Equal(keys.c2s, c2s0) || !bytes.Equal(keys.s2c, s2c0) || !bytes.Equal(keys.finC, finC) ||
		!bytes.Equal(keys.finS, finS) || !bytes.Equal(keys.sessionID[:], sid) {
		t.Fatal("deriveKeys disagrees with the independent key schedule")
	}
	if cs.SessionID != [32]byte(sid) || ss.SessionID != [32]byte(sid) {
		t.Fatal("session ids differ from the key schedule")
	}
	if transcriptHash(prefix, chFrame, shFrame) != th {
		t.Fatal("transcriptHash disagrees")
	}
	for _, d := range []struct{ secret, enc, mac, next []byte }{{c2s0, c2sEnc, c2sMac, c2s1}, {s2c0, s2cEnc, s2cMac, s2c1}} {
		e, m, n := cipher.DeriveKeys(d.secret)
		if !bytes.Equal(e[:], d.enc) || !bytes.Equal(m[:], d.mac) || !bytes.Equal(n[:], d.next) {
			t.Fatal("cipher.DeriveKeys disagrees with the independent key schedule")
		}
	}

	auth, err := marshalAuth(user, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	type plain struct {
		dir     string
		seq     uint64
		typ     cipher.RecordType
		payload []byte
	}
	session := []plain{
		{"s2c", 0, cipher.TypeFinished, serverFinished},
		{"c2s", 0, cipher.TypeFinished, clientFinished},
		{"c2s", 1, cipher.TypeAuth, auth},
		{"s2c", 1, cipher.TypeAuthResult, []byte{authSuccess}},
		{"c2s", 2, cipher.TypeApp, appC2S},
		{"s2c", 2, cipher.TypeApp, appS2C},
	}
	keysFor := func(dir string) (enc, mac []byte) {
		if dir == "c2s" {
			return c2sEnc, c2sMac
		}
		return s2cEnc, s2cMac
	}

	// What the record layer sent in the real run must be exactly what the
	// reference sealer makes with the same IV.
	wire := map[string][][]byte{
		"c2s": splitRecords(t, c2sStream[len(chFrame):]),
		"s2c": splitRecords(t, s2cStream[len(shFrame):]),
	}
	for _, p := range session {
		recs := wire[p.dir]
		if int(p.seq) >= len(recs) {
			t.Fatalf("%s record %d missing from the wire", p.dir, p.seq)
		}
		got := recs[p.seq]
		enc, mk := keysFor(p.dir)
		if want := sealRecord(enc, mk, p.seq, p.typ, got[5:21], p.payload); !bytes.Equal(got, want) {
			t.Fatalf("%s seq %d (%v): record layer output differs from the reference sealer", p.dir, p.seq, p.typ)
		}
	}

	vec := &katVector{
		Comment: "securechat v1 x25519 session: inputs are SHA-256(\"securechat v1 test vector \" || name); " +
			"records are sealed with the fixed IVs given (PROTOCOL.md §9); transport tcp, empty channel binding",
		Group:               GroupX25519.String(),
		Transport:           "tcp",
		ChannelBinding:      "",
		ClientRandom:        hex.EncodeToString(clientRandom),
		ClientX25519Private: hex.EncodeToString(clientPriv),
		ClientX25519Public:  hex.EncodeToString(cPriv.PublicKey().Bytes()),
		ServerRandom:        hex.EncodeToString(serverRandom),
		ServerX25519Private: hex.EncodeToString(serverPriv),
		ServerX25519Public:  hex.EncodeToString(sPriv.PublicKey().Bytes()),
		HostKeySeed:         hex.EncodeToString(hostSeed),
		HostPublicKey:       hex.EncodeToString(hostPub),
		HostFingerprint:     Fingerprint(hostPub),
		ClientHello:         hex.EncodeToString(chFrame),
		ServerHello:         hex.EncodeToString(shFrame),
		TranscriptPrefix:    hex.EncodeToString(prefix),
		SignedHash:          hex.EncodeToString(signed[:]),
		Signature:           hex.EncodeToString(sh.signature),
		SharedSecret:        hex.EncodeToString(sharedSecret),
		TranscriptHash:      hex.EncodeToString(th[:]),
		PRK:                 hex.EncodeToString(prk),
		C2SSecret0:          hex.EncodeToString(c2s0),
		S2CSecret0:          hex.EncodeToString(s2c0),
		FinC:                hex.EncodeToString(finC),
		FinS:                hex.EncodeToString(finS),
		SessionID:           hex.EncodeToString(sid),
		C2SEncKey0:          hex.EncodeToString(c2sEnc),
		C2SMacKey0:          hex.EncodeToString(c2sMac),
		C2SSecret1:          hex.EncodeToString(c2s1),
		S2CEncKey0:          hex.EncodeToString(s2cEnc),
		S2CMacKey0:          hex.EncodeToString(s2cMac),
		S2CSecret1:          hex.EncodeToString(s2c1),
		ServerFinished:      hex.EncodeToString(serverFinished),
		ClientFinished:      hex.EncodeToString(clientFinished),
		User:                user,
		Password:            password,
	}
	for i, p := range session {
		iv := katInput("record iv " + string(rune('0'+i)))[:16]
		enc, mk := keysFor(p.dir)
		vec.Records = append(vec.Records, katRecord{
			Direction: p.dir,
			Seq:       p.seq,
			Type:      p.typ.String(),
			IV:        hex.EncodeToString(iv),
			Plaintext: hex.EncodeToString(p.payload),
			Record:    hex.EncodeToString(sealRecord(enc, mk, p.seq, p.typ, iv, p.payload)),
		})
	}
	return vec
}

// openWithRecordLayer feeds the vector's records of one direction to a
// record layer and checks that it opens them to the stated plaintexts.
func openWithRecordLayer(t *testing.T, vec *katVector, dir string, sendSecret, recvSecret []byte) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	conn := cipher.New(b, sendSecret, recvSecret, nil)
	defer conn.Abort()
	var stream []byte
	var want []katRecord
	for _, r := range vec.Records {
		if r.Direction == dir {
			stream = append(stream, mustHex(t, r.Record)...)
			want = append(want, r)
		}
	}
	go a.Write(stream)
	for _, r := range want {
		if r.Type == cipher.TypeApp.String() {
			conn.SetEstablished()
		}
		typ, p, err := conn.ReadRecord()
		if err != nil {
			t.Fatalf("%s seq %d: %v", dir, r.Seq, err)
		}
		if typ.String() != r.Type || hex.EncodeToString(p) != r.Plaintext {
			t.Fatalf("%s seq %d: opened %v %x", dir, r.Seq, typ, p)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectorsX25519(t *testing.T) {
	got := buildVector(t)
	path := filepath.FromSlash(vectorsFile)
	if *update {
		data, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestVectorsX25519 -update to create it)", err)
	}
	var want katVector
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	gv, wv := reflect.ValueOf(*got), reflect.ValueOf(want)
	for i := 0; i < gv.NumField(); i++ {
		name := gv.Type().Field(i).Name
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			t.Errorf("%s differs:\n got  %v\n want %v", name, gv.Field(i).Interface(), wv.Field(i).Interface())
		}
	}
	// The stored records open with the record layer in both roles.
	c2s, s2c := mustHex(t, want.C2SSecret0), mustHex(t, want.S2CSecret0)
	openWithRecordLayer(t, &want, "c2s", s2c, c2s) // as the server
	openWithRecordLayer(t, &want, "s2c", c2s, s2c) // as the client
}
