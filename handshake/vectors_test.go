package handshake

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"securechat/cipher"
)

var update = flag.Bool("update", false, "rewrite "+vectorsFile+" from the current code")

// vectorsFile is the machine-readable test vector file that PROTOCOL.md §15
// names; interop/test_vectors.py recomputes every value in it.
const vectorsFile = "../vectors/securechat-v1.json"

// katInputPrefix starts the hashed name of every fixed input.
const katInputPrefix = "securechat v1 test vector "

// katFile is the whole vector file. All byte strings are lower-case hex.
type katFile struct {
	Comment    string       `json:"comment"`
	InputRule  string       `json:"input_rule"`
	FFDHEPrime string       `json:"ffdhe3072_p"`
	FFDHEGen   int          `json:"ffdhe3072_g"`
	Sessions   []katSession `json:"sessions"`

	Announcement katAnnouncement `json:"host_key_announcement"`
	UserKeyAuth  katKeyAuth      `json:"user_key_auth"`
}

// katAnnouncement is the host key announcement of PROTOCOL.md §7.5 as the
// server of one vector session would send it while it holds a next key:
// both signed messages, both proofs, the APP payload and the record, sealed
// as that session's s2c generation 0 seq 2 (the first APP record after
// login, in place of the session's own).
type katAnnouncement struct {
	Comment         string        `json:"comment"`
	Session         string        `json:"session"`
	Inputs          []katInputRef `json:"inputs"`
	SessionID       string        `json:"session_id"`
	HostPublicKey   string        `json:"host_public_key"`
	NextHostKeySeed string        `json:"next_host_key_seed"`
	NextPublicKey   string        `json:"next_host_public_key"`
	NextFingerprint string        `json:"next_host_key_fingerprint"`
	CurrentMessage  string        `json:"current_signed_message"`
	NextMessage     string        `json:"next_signed_message"`
	ProofCurrent    string        `json:"proof_current"`
	ProofNext       string        `json:"proof_next"`
	Payload         string        `json:"payload"`
	Record          katRecord     `json:"record"`
}

// katInputRef names one fixed input: the session field that holds it, the
// label it is hashed from and its size in bytes.
type katInputRef struct {
	Field string `json:"field"`
	Label string `json:"label"`
	Size  int    `json:"size"`
}

// katRecord is one sealed record of a vector session.
type katRecord struct {
	Direction  string `json:"direction"` // "c2s" or "s2c"
	Generation int    `json:"generation"`
	Seq        uint64 `json:"seq"`
	Type       string `json:"type"`
	IVLabel    string `json:"iv_label"`
	IV         string `json:"iv"`
	Plaintext  string `json:"plaintext"`
	Record     string `json:"record"`
}

// katSession is one complete session: fixed inputs, the two hellos, every
// value of the key schedule for generations 0 and 1 of both directions, and
// every record, sealed with fixed IVs. Group-specific fields are empty for
// the other groups.
type katSession struct {
	Name           string        `json:"name"`
	Comment        string        `json:"comment"`
	Group          string        `json:"group"`
	Transport      string        `json:"transport"`
	ChannelBinding string        `json:"channel_binding"`
	Inputs         []katInputRef `json:"inputs"`

	ClientRandom    string `json:"client_random"`
	ServerRandom    string `json:"server_random"`
	HostKeySeed     string `json:"host_key_seed"`
	HostPublicKey   string `json:"host_public_key"`
	HostFingerprint string `json:"host_key_fingerprint"`

	ClientX25519Private string `json:"client_x25519_private,omitempty"`
	ClientX25519Public  string `json:"client_x25519_public,omitempty"`
	ServerX25519Private string `json:"server_x25519_private,omitempty"`
	ServerX25519Public  string `json:"server_x25519_public,omitempty"`
	ClientMLKEMSeed     string `json:"client_mlkem_seed,omitempty"`
	ClientMLKEMEncapKey string `json:"client_mlkem_encapsulation_key,omitempty"`
	ServerMLKEMRandom   string `json:"server_mlkem_random,omitempty"`
	ServerMLKEMCipher   string `json:"server_mlkem_ciphertext,omitempty"`
	MLKEMSharedSecret   string `json:"mlkem_shared_secret,omitempty"`
	MLKEMRejectedKey    string `json:"mlkem_implicit_rejection_key,omitempty"`
	X25519SharedSecret  string `json:"x25519_shared_secret,omitempty"`
	ClientFFDHEPrivate  string `json:"client_ffdhe_private,omitempty"`
	ServerFFDHEPrivate  string `json:"server_ffdhe_private,omitempty"`
	ClientShare         string `json:"client_share"`
	ServerShare         string `json:"server_share"`

	ClientHello      string      `json:"client_hello"`
	ServerHello      string      `json:"server_hello"`
	TranscriptPrefix string      `json:"transcript_prefix"`
	SignedHash       string      `json:"signed_hash"`
	Signature        string      `json:"signature"`
	SharedSecret     string      `json:"shared_secret"`
	TranscriptHash   string      `json:"transcript_hash"`
	PRK              string      `json:"prk"`
	C2SSecret0       string      `json:"c2s_secret_0"`
	S2CSecret0       string      `json:"s2c_secret_0"`
	FinC             string      `json:"fin_c"`
	FinS             string      `json:"fin_s"`
	SessionID        string      `json:"session_id"`
	C2SEncKey0       string      `json:"c2s_enc_key_0"`
	C2SMacKey0       string      `json:"c2s_mac_key_0"`
	C2SSecret1       string      `json:"c2s_secret_1"`
	C2SEncKey1       string      `json:"c2s_enc_key_1"`
	C2SMacKey1       string      `json:"c2s_mac_key_1"`
	C2SSecret2       string      `json:"c2s_secret_2"`
	S2CEncKey0       string      `json:"s2c_enc_key_0"`
	S2CMacKey0       string      `json:"s2c_mac_key_0"`
	S2CSecret1       string      `json:"s2c_secret_1"`
	S2CEncKey1       string      `json:"s2c_enc_key_1"`
	S2CMacKey1       string      `json:"s2c_mac_key_1"`
	S2CSecret2       string      `json:"s2c_secret_2"`
	ServerFinished   string      `json:"server_finished"`
	ClientFinished   string      `json:"client_finished"`
	User             string      `json:"user"`
	Password         string      `json:"password"`
	Records          []katRecord `json:"records"`
}

// katInput makes a fixed, random-looking input of size bytes from a label:
// SHA-256 of the prefixed label for 32 bytes, the first size bytes of
// SHA-512 for 33..64.
func katInput(label string, size int) []byte {
	switch {
	case size == 32:
		s := sha256.Sum256([]byte(katInputPrefix + label))
		return s[:]
	case size > 32 && size <= 64:
		s := sha512.Sum512([]byte(katInputPrefix + label))
		return s[:size]
	}
	panic("katInput: unsupported size " + strconv.Itoa(size))
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

// boundConn gives a connection a fixed channel binding, standing in for the
// QUIC transport's TLS exporter (PROTOCOL.md §3).
type boundConn struct {
	net.Conn
	cb []byte
}

func (c *boundConn) ChannelBinding() ([]byte, error) { return bytes.Clone(c.cb), nil }

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

// katParams describes one vector session.
type katParams struct {
	name      string
	prefix    string // prepended to every input label but the host key's
	group     Group
	transport string
	bound     bool // a fixed channel binding, as over QUIC
	comment   string
}

var katSessions = []katParams{
	{
		name: "x25519-tcp", group: GroupX25519, transport: "tcp",
		comment: "x25519 over TCP (empty channel binding); after login both sides rekey once and end with CLOSE",
	},
	{
		name: "mlkem768x25519-tcp", prefix: "mlkem768x25519 ", group: GroupMLKEM768X25519, transport: "tcp",
		comment: "the hybrid group: ML-KEM-768 key pair from a 64-byte seed d||z (FIPS 203 ML-KEM.KeyGen_internal), " +
			"encapsulation with fixed 32-byte randomness m (ML-KEM.Encaps_internal); " +
			"mlkem_implicit_rejection_key is what the ciphertext decapsulates to with its first byte XOR 0x01",
	},
	{
		name: "ffdhe3072-tcp", prefix: "ffdhe3072 ", group: GroupFFDHE3072, transport: "tcp",
		comment: "ffdhe3072: secret exponents are the 48 input bytes read as a big-endian integer",
	},
	{
		name: "x25519-quic", prefix: "quic ", group: GroupX25519, transport: "quic", bound: true,
		comment: "x25519 with transport quic and a 32-byte channel binding, given here as an input " +
			"(a live connection takes it from the QUIC TLS exporter, PROTOCOL.md §3)",
	},
}

// katPlain is one record of the session script before sealing.
type katPlain struct {
	dir     string
	gen     int
	seq     uint64
	typ     cipher.RecordType
	payload []byte
}

// The APP payloads of every session: one each way under generation 0, one
// each way under generation 1.
var (
	katAppC2S0 = []byte("hello from the client")
	katAppS2C0 = []byte("hello from the server")
	katAppC2S1 = []byte("after the client's key update")
	katAppS2C1 = []byte("after the server's key update")
)

const (
	katUser     = "alice"
	katPassword = "correct horse"
)

// runKatSession runs a real Client and Server with the fixed inputs through
// the whole script (handshake, login, APP, KEY_UPDATE, APP, CLOSE) and
// returns what each side wrote on the wire.
func runKatSession(t *testing.T, p katParams, in map[string][]byte) (c2s, s2c []byte) {
	t.Helper()
	hostKey := ed25519.NewKeyFromSeed(in["host_key_seed"])
	hostPub := hostKey.Public().(ed25519.PublicKey)

	// The hooks hand out randomness in the order the code draws it: the
	// client takes its random and then its share's secrets; the server
	// answers the share (its X25519 scalar or DH exponent) and then draws
	// its random. ML-KEM encapsulation takes its 32 bytes from its own hook.
	var cr, sr []byte
	cr = append(cr, in["client_random"]...)
	switch p.group {
	case GroupX25519:
		cr = append(cr, in["client_x25519_private"]...)
		sr = append(sr, in["server_x25519_private"]...)
	case GroupMLKEM768X25519:
		cr = append(append(cr, in["client_mlkem_seed"]...), in["client_x25519_private"]...)
		sr = append(sr, in["server_x25519_private"]...)
	case GroupFFDHE3072:
		cr = append(cr, in["client_ffdhe_private"]...)
		sr = append(sr, in["server_ffdhe_private"]...)
	}
	sr = append(sr, in["server_random"]...)
	shooks := &testHooks{rand: bytes.NewReader(sr)}
	if m := in["server_mlkem_random"]; m != nil {
		shooks.encapsulate = func(ek *mlkem.EncapsulationKey768) ([]byte, []byte, error) {
			return mlkemtest.Encapsulate768(ek, m)
		}
	}
	ccfg := &ClientConfig{
		Groups:          []Group{p.group},
		Transport:       p.transport,
		HostKeyCallback: FixedHostKey(hostPub),
		User:            katUser,
		Password:        func(int) ([]byte, error) { return []byte(katPassword), nil },
		hooks:           &testHooks{rand: bytes.NewReader(cr)},
	}
	scfg := &ServerConfig{
		HostKey:   hostKey,
		Verifier:  &testVerifier{accounts: map[string]string{katUser: katPassword}},
		Transport: p.transport,
		Groups:    []Group{p.group},
		hooks:     shooks,
	}
	cEnd, sEnd := net.Pipe()
	tap := &tapConn{Conn: cEnd}
	var cConn, sConn net.Conn = tap, sEnd
	if p.bound {
		cConn = &boundConn{Conn: tap, cb: in["channel_binding"]}
		sConn = &boundConn{Conn: sEnd, cb: in["channel_binding"]}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := make(chan result, 1)
	go func() {
		s, err := Server(ctx, sConn, scfg)
		srv <- result{s, err}
	}()
	cs, err := Client(ctx, cConn, ccfg)
	res := <-srv
	if err != nil || res.err != nil {
		t.Fatalf("client: %v, server: %v", err, res.err)
	}
	ss := res.s

	// The server echoes the script: it reads the client's APP, answers, and
	// rekeys after the client has; then it answers the client's CLOSE.
	errc := make(chan error, 1)
	go func() {
		errc <- func() error {
			for _, step := range []struct{ want, send []byte }{{katAppC2S0, katAppS2C0}, {katAppC2S1, katAppS2C1}} {
				got, err := ss.ReadMessage()
				if err != nil {
					return err
				}
				if !bytes.Equal(got, step.want) {
					return fmt.Errorf("server read %q", got)
				}
				if bytes.Equal(step.want, katAppC2S1) {
					if err := ss.KeyUpdate(); err != nil {
						return err
					}
				}
				if err := ss.WriteMessage(step.send); err != nil {
					return err
				}
			}
			if typ, _, err := ss.ReadRecord(); typ != cipher.TypeClose || err != io.EOF {
				return fmt.Errorf("server: got %v %v, want CLOSE", typ, err)
			}
			return nil
		}()
	}()
	for i, step := range []struct{ send, want []byte }{{katAppC2S0, katAppS2C0}, {katAppC2S1, katAppS2C1}} {
		if i == 1 {
			if err := cs.KeyUpdate(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cs.WriteMessage(step.send); err != nil {
			t.Fatal(err)
		}
		got, err := cs.ReadMessage()
		if err != nil || !bytes.Equal(got, step.want) {
			t.Fatalf("client read %q, %v", got, err)
		}
	}
	if err := cs.Close(); err != nil {
		t.Fatalf("client Close: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	ss.Close()

	tap.mu.Lock()
	defer tap.mu.Unlock()
	return bytes.Clone(tap.wrote.Bytes()), bytes.Clone(tap.read.Bytes())
}

// buildSession runs one session, checks every intermediate value against an
// independent computation and the record layer against sealRecord, and
// returns the session's vector.
func buildSession(t *testing.T, p katParams) katSession {
	t.Helper()
	vec := katSession{
		Name:      p.name,
		Comment:   p.comment,
		Group:     p.group.String(),
		Transport: p.transport,
		User:      katUser,
		Password:  katPassword,
	}
	in := map[string][]byte{}
	input := func(field, label string, size int) []byte {
		if field != "host_key_seed" {
			label = p.prefix + label
		}
		vec.Inputs = append(vec.Inputs, katInputRef{Field: field, Label: label, Size: size})
		in[field] = katInput(label, size)
		return in[field]
	}
	input("client_random", "client random", 32)
	switch p.group {
	case GroupX25519:
		input("client_x25519_private", "client x25519 private", 32)
		input("server_x25519_private", "server x25519 private", 32)
	case GroupMLKEM768X25519:
		input("client_mlkem_seed", "client mlkem seed", 64)
		input("client_x25519_private", "client x25519 private", 32)
		input("server_mlkem_random", "server mlkem random", 32)
		input("server_x25519_private", "server x25519 private", 32)
	case GroupFFDHE3072:
		input("client_ffdhe_private", "client ffdhe private", 48)
		input("server_ffdhe_private", "server ffdhe private", 48)
	}
	input("server_random", "server random", 32)
	input("host_key_seed", "host key seed", 32)
	var cb []byte
	if p.bound {
		cb = input("channel_binding", "channel binding", 32)
	}

	c2sStream, s2cStream := runKatSession(t, p, in)
	_, chFrame, err := readFrame(bytes.NewReader(c2sStream), frameClientHello)
	if err != nil {
		t.Fatal(err)
	}
	_, shFrame, err := readFrame(bytes.NewReader(s2cStream), frameServerHello)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := parseClientHello(chFrame)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := parseServerHello(shFrame)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.keyShares) != 1 || ch.keyShares[0].group != p.group || sh.group != p.group {
		t.Fatalf("negotiated %v with shares %v", sh.group, ch.keyShares)
	}
	clientShare, serverShare := ch.keyShares[0].data, sh.keyShare
	if !bytes.Equal(ch.random[:], in["client_random"]) || !bytes.Equal(sh.random[:], in["server_random"]) {
		t.Fatal("hello randoms are not the fixed inputs")
	}

	// Independent computation of each group's shares and secret (§6).
	var sharedSecret []byte
	x25519Pair := func(cPrivB, sPrivB, cPub, sPub []byte) []byte {
		cPriv, _ := ecdh.X25519().NewPrivateKey(cPrivB)
		sPriv, _ := ecdh.X25519().NewPrivateKey(sPrivB)
		if !bytes.Equal(cPub, cPriv.PublicKey().Bytes()) || !bytes.Equal(sPub, sPriv.PublicKey().Bytes()) {
			t.Fatal("x25519 shares are not from the fixed scalars")
		}
		ssC, err := cPriv.ECDH(sPriv.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		ssS, err := sPriv.ECDH(cPriv.PublicKey())
		if err != nil || !bytes.Equal(ssC, ssS) {
			t.Fatal("x25519 sides disagree")
		}
		vec.ClientX25519Private, vec.ClientX25519Public = hex.EncodeToString(cPrivB), hex.EncodeToString(cPub)
		vec.ServerX25519Private, vec.ServerX25519Public = hex.EncodeToString(sPrivB), hex.EncodeToString(sPub)
		return ssC
	}
	switch p.group {
	case GroupX25519:
		sharedSecret = x25519Pair(in["client_x25519_private"], in["server_x25519_private"], clientShare, serverShare)
	case GroupMLKEM768X25519:
		dk, err := mlkem.NewDecapsulationKey768(in["client_mlkem_seed"])
		if err != nil {
			t.Fatal(err)
		}
		ek := dk.EncapsulationKey()
		if !bytes.Equal(clientShare[:mlkemEncapKeyLen], ek.Bytes()) {
			t.Fatal("ML-KEM encapsulation key is not from the fixed seed")
		}
		kss, ct, err := mlkemtest.Encapsulate768(ek, in["server_mlkem_random"])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(serverShare[:mlkemCiphertextLen], ct) {
			t.Fatal("ML-KEM ciphertext is not from the fixed randomness")
		}
		if got, err := dk.Decapsulate(ct); err != nil || !bytes.Equal(got, kss) {
			t.Fatal("ML-KEM decapsulation disagrees")
		}
		// Implicit rejection (FIPS 203 Algorithm 18): a changed ciphertext
		// decapsulates to J(z || c), not to an error.
		bad := bytes.Clone(ct)
		bad[0] ^= 1
		rejected, err := dk.Decapsulate(bad)
		if err != nil || bytes.Equal(rejected, kss) {
			t.Fatalf("ML-KEM implicit rejection: %x, %v", rejected, err)
		}
		vec.MLKEMRejectedKey = hex.EncodeToString(rejected)
		xss := x25519Pair(in["client_x25519_private"], in["server_x25519_private"],
			clientShare[mlkemEncapKeyLen:], serverShare[mlkemCiphertextLen:])
		sharedSecret = append(bytes.Clone(kss), xss...)
		vec.ClientMLKEMSeed = hex.EncodeToString(in["client_mlkem_seed"])
		vec.ClientMLKEMEncapKey = hex.EncodeToString(ek.Bytes())
		vec.ServerMLKEMRandom = hex.EncodeToString(in["server_mlkem_random"])
		vec.ServerMLKEMCipher = hex.EncodeToString(ct)
		vec.MLKEMSharedSecret = hex.EncodeToString(kss)
		vec.X25519SharedSecret = hex.EncodeToString(xss)
	case GroupFFDHE3072:
		xc := new(big.Int).SetBytes(in["client_ffdhe_private"])
		xs := new(big.Int).SetBytes(in["server_ffdhe_private"])
		yc := new(big.Int).Exp(big.NewInt(2), xc, ffdheP).FillBytes(make([]byte, 384))
		ys := new(big.Int).Exp(big.NewInt(2), xs, ffdheP).FillBytes(make([]byte, 384))
		if !bytes.Equal(clientShare, yc) || !bytes.Equal(serverShare, ys) {
			t.Fatal("ffdhe shares are not from the fixed exponents")
		}
		kc := new(big.Int).Exp(new(big.Int).SetBytes(ys), xc, ffdheP).FillBytes(make([]byte, 384))
		ks := new(big.Int).Exp(new(big.Int).SetBytes(yc), xs, ffdheP).FillBytes(make([]byte, 384))
		if !bytes.Equal(kc, ks) {
			t.Fatal("ffdhe sides disagree")
		}
		sharedSecret = kc
		vec.ClientFFDHEPrivate = hex.EncodeToString(in["client_ffdhe_private"])
		vec.ServerFFDHEPrivate = hex.EncodeToString(in["server_ffdhe_private"])
	}

	// Independent computation of PROTOCOL.md §5.3, §7.2 and §8.
	hostPub := ed25519.NewKeyFromSeed(in["host_key_seed"]).Public().(ed25519.PublicKey)
	prefix := append([]byte("securechat v1 transcript\x00"), byte(len(cb)))
	prefix = append(prefix, cb...)
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
	type genKeys struct{ secret, enc, mac, next []byte }
	generations := func(secret0 []byte) [2]genKeys {
		var g [2]genKeys
		secret := secret0
		for n := range g {
			g[n] = genKeys{secret, katExpand(t, secret, "enc", nil), katExpand(t, secret, "mac", nil), katExpand(t, secret, "next", nil)}
			secret = g[n].next
		}
		return g
	}
	keys := map[string][2]genKeys{"c2s": generations(c2s0), "s2c": generations(s2c0)}
	mac := func(key []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(th[:])
		return m.Sum(nil)
	}
	serverFinished, clientFinished := mac(finS), mac(finC)

	// The package's own key schedule and the record layer's key derivation
	// must agree with the above.
	own := deriveKeys(sharedSecret, th)
	if !bytes.Equal(own.c2s, c2s0) || !bytes.Equal(own.s2c, s2c0) || !bytes.Equal(own.finC, finC) ||
		!bytes.Equal(own.finS, finS) || !bytes.Equal(own.sessionID[:], sid) {
		t.Fatal("deriveKeys disagrees with the independent key schedule")
	}
	if transcriptHash(prefix, chFrame, shFrame) != th {
		t.Fatal("transcriptHash disagrees")
	}
	for _, d := range keys {
		for _, g := range d {
			e, m, n := cipher.DeriveKeys(g.secret)
			if !bytes.Equal(e[:], g.enc) || !bytes.Equal(m[:], g.mac) || !bytes.Equal(n[:], g.next) {
				t.Fatal("cipher.DeriveKeys disagrees with the independent key schedule")
			}
		}
	}

	auth, err := marshalAuth(katUser, []byte(katPassword))
	if err != nil {
		t.Fatal(err)
	}
	// The records in the order of the conversation; each direction's seq
	// restarts after its KEY_UPDATE.
	script := []katPlain{
		{"s2c", 0, 0, cipher.TypeFinished, serverFinished},
		{"c2s", 0, 0, cipher.TypeFinished, clientFinished},
		{"c2s", 0, 1, cipher.TypeAuth, auth},
		{"s2c", 0, 1, cipher.TypeAuthResult, []byte{authSuccess}},
		{"c2s", 0, 2, cipher.TypeApp, katAppC2S0},
		{"s2c", 0, 2, cipher.TypeApp, katAppS2C0},
		{"c2s", 0, 3, cipher.TypeKeyUpdate, nil},
		{"c2s", 1, 0, cipher.TypeApp, katAppC2S1},
		{"s2c", 0, 3, cipher.TypeKeyUpdate, nil},
		{"s2c", 1, 0, cipher.TypeApp, katAppS2C1},
		{"c2s", 1, 1, cipher.TypeClose, nil},
		{"s2c", 1, 1, cipher.TypeClose, nil},
	}

	// What the record layer sent in the real run must be exactly what the
	// reference sealer makes with the same IV, key generation and seq.
	wire := map[string][][]byte{
		"c2s": splitRecords(t, c2sStream[len(chFrame):]),
		"s2c": splitRecords(t, s2cStream[len(shFrame):]),
	}
	sent := map[string]int{}
	for _, r := range script {
		i := sent[r.dir]
		sent[r.dir]++
		if i >= len(wire[r.dir]) {
			t.Fatalf("%s record %d (%v) missing from the wire", r.dir, i, r.typ)
		}
		got := wire[r.dir][i]
		k := keys[r.dir][r.gen]
		if want := sealRecord(k.enc, k.mac, r.seq, r.typ, got[5:21], r.payload); !bytes.Equal(got, want) {
			t.Fatalf("%s record %d (%v, generation %d seq %d): record layer output differs from the reference sealer",
				r.dir, i, r.typ, r.gen, r.seq)
		}
	}
	for dir, n := range sent {
		if len(wire[dir]) != n {
			t.Fatalf("%s: %d records on the wire, want %d", dir, len(wire[dir]), n)
		}
	}

	vec.ChannelBinding = hex.EncodeToString(cb)
	vec.ClientRandom = hex.EncodeToString(in["client_random"])
	vec.ServerRandom = hex.EncodeToString(in["server_random"])
	vec.HostKeySeed = hex.EncodeToString(in["host_key_seed"])
	vec.HostPublicKey = hex.EncodeToString(hostPub)
	vec.HostFingerprint = Fingerprint(hostPub)
	vec.ClientShare = hex.EncodeToString(clientShare)
	vec.ServerShare = hex.EncodeToString(serverShare)
	vec.ClientHello = hex.EncodeToString(chFrame)
	vec.ServerHello = hex.EncodeToString(shFrame)
	vec.TranscriptPrefix = hex.EncodeToString(prefix)
	vec.SignedHash = hex.EncodeToString(signed[:])
	vec.Signature = hex.EncodeToString(sh.signature)
	vec.SharedSecret = hex.EncodeToString(sharedSecret)
	vec.TranscriptHash = hex.EncodeToString(th[:])
	vec.PRK = hex.EncodeToString(prk)
	vec.C2SSecret0 = hex.EncodeToString(c2s0)
	vec.S2CSecret0 = hex.EncodeToString(s2c0)
	vec.FinC = hex.EncodeToString(finC)
	vec.FinS = hex.EncodeToString(finS)
	vec.SessionID = hex.EncodeToString(sid)
	c, s := keys["c2s"], keys["s2c"]
	vec.C2SEncKey0, vec.C2SMacKey0, vec.C2SSecret1 = hex.EncodeToString(c[0].enc), hex.EncodeToString(c[0].mac), hex.EncodeToString(c[0].next)
	vec.C2SEncKey1, vec.C2SMacKey1, vec.C2SSecret2 = hex.EncodeToString(c[1].enc), hex.EncodeToString(c[1].mac), hex.EncodeToString(c[1].next)
	vec.S2CEncKey0, vec.S2CMacKey0, vec.S2CSecret1 = hex.EncodeToString(s[0].enc), hex.EncodeToString(s[0].mac), hex.EncodeToString(s[0].next)
	vec.S2CEncKey1, vec.S2CMacKey1, vec.S2CSecret2 = hex.EncodeToString(s[1].enc), hex.EncodeToString(s[1].mac), hex.EncodeToString(s[1].next)
	vec.ServerFinished = hex.EncodeToString(serverFinished)
	vec.ClientFinished = hex.EncodeToString(clientFinished)
	for i, r := range script {
		label := p.prefix + "record iv " + strconv.Itoa(i)
		iv := katInput(label, 32)[:16]
		k := keys[r.dir][r.gen]
		vec.Records = append(vec.Records, katRecord{
			Direction:  r.dir,
			Generation: r.gen,
			Seq:        r.seq,
			Type:       r.typ.String(),
			IVLabel:    label,
			IV:         hex.EncodeToString(iv),
			Plaintext:  hex.EncodeToString(r.payload),
			Record:     hex.EncodeToString(sealRecord(k.enc, k.mac, r.seq, r.typ, iv, r.payload)),
		})
	}
	return vec
}

// streamConn reads a fixed stream and throws writes away: the peer of a
// record layer that opens stored records (and answers their CLOSE).
type streamConn struct {
	net.Conn // nil: methods not overridden panic
	r        io.Reader
}

func (c *streamConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *streamConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *streamConn) Close() error                     { return nil }
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// openWithRecordLayer feeds the session's records of one direction to a
// record layer and checks that it opens them to the stated plaintexts,
// handling KEY_UPDATE itself and ending at CLOSE.
func openWithRecordLayer(t *testing.T, vec *katSession, dir string, sendSecret, recvSecret []byte) {
	t.Helper()
	var stream []byte
	var want []katRecord
	for _, r := range vec.Records {
		if r.Direction == dir {
			stream = append(stream, mustHex(t, r.Record)...)
			if r.Type != cipher.TypeKeyUpdate.String() {
				want = append(want, r)
			}
		}
	}
	conn := cipher.New(&streamConn{r: bytes.NewReader(stream)}, sendSecret, recvSecret, nil)
	for _, r := range want {
		if r.Type == cipher.TypeApp.String() {
			conn.SetEstablished()
		}
		typ, p, err := conn.ReadRecord()
		if r.Type == cipher.TypeClose.String() {
			if typ != cipher.TypeClose || err != io.EOF {
				t.Fatalf("%s: %s: got %v %v, want CLOSE", vec.Name, dir, typ, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %s generation %d seq %d: %v", vec.Name, dir, r.Generation, r.Seq, err)
		}
		if typ.String() != r.Type || hex.EncodeToString(p) != r.Plaintext {
			t.Fatalf("%s: %s generation %d seq %d: opened %v %x", vec.Name, dir, r.Generation, r.Seq, typ, p)
		}
	}
	if _, _, err := conn.ReadRecord(); err != io.EOF {
		t.Fatalf("%s: %s: read after CLOSE: %v", vec.Name, dir, err)
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

func buildVectors(t *testing.T) *katFile {
	f := &katFile{
		Comment: "securechat v1 test vectors (PROTOCOL.md §15): complete sessions with fixed inputs; " +
			"records are sealed with the fixed IVs given (PROTOCOL.md §9); all byte strings are hex",
		InputRule: "each input named in a session's inputs is SHA-256(\"" + katInputPrefix + "\" || label) " +
			"when size is 32, else the first size bytes of SHA-512(\"" + katInputPrefix + "\" || label); " +
			"a record's IV is the first 16 bytes of SHA-256(\"" + katInputPrefix + "\" || iv_label)",
		FFDHEPrime: hex.EncodeToString(ffdheP.FillBytes(make([]byte, ffdheShareLen))),
		FFDHEGen:   int(ffdheG.Int64()),
	}
	for _, p := range katSessions {
		f.Sessions = append(f.Sessions, buildSession(t, p))
	}
	f.Announcement = buildAnnouncement(t, &f.Sessions[0])
	f.UserKeyAuth = buildKeyAuth(t, &f.Sessions[0])
	return f
}

// buildAnnouncement makes the announcement vector for session vec. The
// signed messages are put together here by hand, with the labels written
// out, apart from the package's code; the payload must be the one the
// package makes, and it must verify.
func buildAnnouncement(t *testing.T, vec *katSession) katAnnouncement {
	t.Helper()
	const seedLabel = "next host key seed"
	seed := katInput(seedLabel, 32)
	current := ed25519.NewKeyFromSeed(mustHex(t, vec.HostKeySeed))
	next := ed25519.NewKeyFromSeed(seed)
	curPub, nextPub := current.Public().(ed25519.PublicKey), next.Public().(ed25519.PublicKey)
	sid := mustHex(t, vec.SessionID)
	msg := func(label string) []byte {
		return slices.Concat([]byte(label), sid, curPub, nextPub)
	}
	curMsg := msg("securechat v1 host key announcement, current\x00")
	nextMsg := msg("securechat v1 host key announcement, next\x00")
	proofCur, proofNext := ed25519.Sign(current, curMsg), ed25519.Sign(next, nextMsg)
	b64 := base64.StdEncoding.EncodeToString
	payload := []byte(`{"t":"hostkeys","next":"` + b64(nextPub) + `","proof_current":"` + b64(proofCur) +
		`","proof_next":"` + b64(proofNext) + `"}`)

	var sessionID [32]byte
	copy(sessionID[:], sid)
	made, err := MarshalHostKeyAnnouncement(current, next, sessionID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(made, payload) {
		t.Errorf("announcement payload:\n got  %s\n want %s", made, payload)
	}
	if got, err := VerifyHostKeyAnnouncement(payload, curPub, sessionID); err != nil || !bytes.Equal(got, nextPub) {
		t.Errorf("the vector's announcement does not verify: %v", err)
	}

	const ivLabel = "host key announcement record iv"
	iv := katInput(ivLabel, 32)[:16]
	const seq = 2
	return katAnnouncement{
		Comment: "PROTOCOL.md §7.5: what the server of session " + vec.Name + " sends, holding the next host key " +
			"made from next_host_key_seed, as its first APP record after login: s2c generation 0 seq 2, in place of " +
			"that session's first server APP record; proofs are Ed25519 over the signed messages",
		Session:         vec.Name,
		Inputs:          []katInputRef{{Field: "next_host_key_seed", Label: seedLabel, Size: 32}},
		SessionID:       vec.SessionID,
		HostPublicKey:   vec.HostPublicKey,
		NextHostKeySeed: hex.EncodeToString(seed),
		NextPublicKey:   hex.EncodeToString(nextPub),
		NextFingerprint: Fingerprint(nextPub),
		CurrentMessage:  hex.EncodeToString(curMsg),
		NextMessage:     hex.EncodeToString(nextMsg),
		ProofCurrent:    hex.EncodeToString(proofCur),
		ProofNext:       hex.EncodeToString(proofNext),
		Payload:         hex.EncodeToString(payload),
		Record: katRecord{
			Direction: "s2c", Generation: 0, Seq: seq, Type: cipher.TypeApp.String(),
			IVLabel: ivLabel, IV: hex.EncodeToString(iv), Plaintext: hex.EncodeToString(payload),
			Record: hex.EncodeToString(sealRecord(mustHex(t, vec.S2CEncKey0), mustHex(t, vec.S2CMacKey0), seq, cipher.TypeApp, iv, payload)),
		},
	}
}

// TestVectors runs every vector session with the real Client and Server,
// checks each value against an independent computation, and compares the
// result with the stored file field by field; the stored records must open
// with the record layer in both roles. -update rewrites the file.
func TestVectors(t *testing.T) {
	got := buildVectors(t)
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
	if errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%v (run go test ./handshake -run TestVectors -update to create it)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var want katFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil {
		t.Fatal(err)
	}

	// The prime in the file is the implementation's constant.
	if p, ok := new(big.Int).SetString(want.FFDHEPrime, 16); !ok || p.Cmp(ffdheP) != 0 || want.FFDHEGen != 2 {
		t.Error("ffdhe3072_p or ffdhe3072_g differ from the implementation's group")
	}
	if got.Comment != want.Comment || got.InputRule != want.InputRule {
		t.Error("comment or input_rule differ")
	}
	if len(got.Sessions) != len(want.Sessions) {
		t.Fatalf("%d sessions built, %d stored", len(got.Sessions), len(want.Sessions))
	}
	if !reflect.DeepEqual(got.Announcement, want.Announcement) {
		t.Errorf("host_key_announcement differs:\n got  %+v\n want %+v", got.Announcement, want.Announcement)
	}
	openAnnouncement(t, &want)
	if !reflect.DeepEqual(got.UserKeyAuth, want.UserKeyAuth) {
		t.Errorf("user_key_auth differs:\n got  %+v\n want %+v", got.UserKeyAuth, want.UserKeyAuth)
	}
	openKeyAuth(t, &want)
	for i := range got.Sessions {
		gv, wv := reflect.ValueOf(got.Sessions[i]), reflect.ValueOf(want.Sessions[i])
		for j := 0; j < gv.NumField(); j++ {
			name := gv.Type().Field(j).Name
			if !reflect.DeepEqual(gv.Field(j).Interface(), wv.Field(j).Interface()) {
				t.Errorf("session %s: %s differs:\n got  %v\n want %v", got.Sessions[i].Name, name, gv.Field(j).Interface(), wv.Field(j).Interface())
			}
		}
		w := &want.Sessions[i]
		c2s, s2c := mustHex(t, w.C2SSecret0), mustHex(t, w.S2CSecret0)
		openWithRecordLayer(t, w, "c2s", s2c, c2s) // as the server
		openWithRecordLayer(t, w, "s2c", c2s, s2c) // as the client
	}
}

// openAnnouncement opens the stored announcement record with the record
// layer as the client of its session would, after FINISHED and
// AUTH_RESULT (seq 0 and 1), and verifies what it carries.
func openAnnouncement(t *testing.T, f *katFile) {
	t.Helper()
	a := &f.Announcement
	var vec *katSession
	for i := range f.Sessions {
		if f.Sessions[i].Name == a.Session {
			vec = &f.Sessions[i]
		}
	}
	if vec == nil {
		t.Fatalf("host_key_announcement names session %q, which the file does not have", a.Session)
	}
	var stream []byte
	for _, r := range vec.Records {
		if r.Direction == "s2c" && r.Generation == 0 && r.Seq < a.Record.Seq {
			stream = append(stream, mustHex(t, r.Record)...)
		}
	}
	stream = append(stream, mustHex(t, a.Record.Record)...)
	conn := cipher.New(&streamConn{r: bytes.NewReader(stream)}, mustHex(t, vec.C2SSecret0), mustHex(t, vec.S2CSecret0), nil)
	for range a.Record.Seq {
		if _, _, err := conn.ReadRecord(); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetEstablished()
	typ, p, err := conn.ReadRecord()
	if err != nil || typ != cipher.TypeApp || hex.EncodeToString(p) != a.Payload {
		t.Fatalf("announcement record opened to %v %x, %v", typ, p, err)
	}
	var sid [32]byte
	copy(sid[:], mustHex(t, vec.SessionID))
	next, err := VerifyHostKeyAnnouncement(p, mustHex(t, vec.HostPublicKey), sid)
	if err != nil || hex.EncodeToString(next) != a.NextPublicKey {
		t.Errorf("stored announcement: next %x, %v", next, err)
	}
}
