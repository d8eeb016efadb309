package handshake

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"
)

func TestFFDHE3072Prime(t *testing.T) {
	p := ffdheP
	if p.BitLen() != 3072 {
		t.Fatalf("p has %d bits", p.BitLen())
	}
	ones := new(big.Int).SetUint64(^uint64(0))
	if new(big.Int).Rsh(p, 3072-64).Cmp(ones) != 0 {
		t.Error("top 64 bits are not all ones")
	}
	if new(big.Int).And(p, ones).Cmp(ones) != 0 {
		t.Error("bottom 64 bits are not all ones")
	}
	q := new(big.Int).Rsh(ffdhePMinus1, 1)
	if !p.ProbablyPrime(20) || !q.ProbablyPrime(20) {
		t.Error("p is not a safe prime")
	}
	// Rebuild p from RFC 7919 Appendix A.2:
	// p = 2^3072 - 2^3008 + {[2^2942 * e] + 2625351} * 2^64 - 1.
	// floor(2^2942 * e) comes from sum_k 2^(2942+64)/k!, with 64 guard bits.
	const guard = 64
	scale := new(big.Int).Lsh(big.NewInt(1), 2942+guard)
	sum, term := new(big.Int), new(big.Int).Set(scale)
	for k := int64(1); term.Sign() > 0; k++ {
		sum.Add(sum, term)
		term.Quo(term, big.NewInt(k))
	}
	sum.Rsh(sum, guard)
	want := new(big.Int).Lsh(big.NewInt(1), 3072)
	want.Sub(want, new(big.Int).Lsh(big.NewInt(1), 3008))
	sum.Add(sum, big.NewInt(2625351))
	want.Add(want, sum.Lsh(sum, 64))
	want.Sub(want, big.NewInt(1))
	if want.Cmp(p) != 0 {
		t.Error("p does not match the RFC 7919 formula")
	}
}

func TestFFDHEPublicValidation(t *testing.T) {
	enc := func(x *big.Int) []byte { return x.FillBytes(make([]byte, 384)) }
	p := ffdheP
	two := big.NewInt(2)
	for name, b := range map[string][]byte{
		"0":        enc(big.NewInt(0)),
		"1":        enc(big.NewInt(1)),
		"p-1":      enc(ffdhePMinus1),
		"p":        enc(p),
		"p+1":      enc(new(big.Int).Add(p, bigOne)),
		"2^3072-1": bytes.Repeat([]byte{0xff}, 384),
		"2^3072":   append([]byte{1}, make([]byte, 384)...),
		"short":    enc(two)[1:],
		"long":     append([]byte{0}, enc(two)...),
		"empty":    nil,
	} {
		if _, err := parseFFDHEPublic(b); !errors.Is(err, errBadShare) {
			t.Errorf("Y=%s accepted", name)
		}
		s, err := newFFDHEShare(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.finish(b); !errors.Is(err, errBadShare) {
			t.Errorf("client accepted Y=%s", name)
		}
		if _, _, err := serverKeyExchange(GroupFFDHE3072, b, rand.Reader); !errors.Is(err, errBadShare) {
			t.Errorf("server accepted Y=%s", name)
		}
	}
	for _, ok := range []*big.Int{two, new(big.Int).Sub(ffdhePMinus1, bigOne)} {
		if _, err := parseFFDHEPublic(enc(ok)); err != nil {
			t.Errorf("Y=%v refused: %v", ok, err)
		}
	}
}

// TestFFDHESharedSecretValidation forces K into {1, p-1}: with Y = p-1
// bypassing the public value check, K = (p-1)^x is 1 or p-1.
func TestFFDHESharedSecretValidation(t *testing.T) {
	for _, x := range []int64{1, 2, 3, 4} {
		s := &ffdheShare{x: big.NewInt(x)}
		if _, err := s.sharedSecret(ffdhePMinus1); !errors.Is(err, errBadShare) {
			t.Errorf("x=%d: K=(p-1)^x accepted", x)
		}
		if _, err := s.sharedSecret(big.NewInt(1)); !errors.Is(err, errBadShare) {
			t.Errorf("x=%d: K=1 accepted", x)
		}
	}
	s := &ffdheShare{x: big.NewInt(5)}
	k, err := s.sharedSecret(big.NewInt(2))
	if err != nil || len(k) != 384 || new(big.Int).SetBytes(k).Int64() != 32 {
		t.Errorf("K=2^5: %x, %v", k, err)
	}
}

func TestFFDHEAgreement(t *testing.T) {
	c, err := newFFDHEShare(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if c.x.BitLen() > 384 || len(c.public()) != 384 {
		t.Fatal("bad share sizes")
	}
	sshare, sss, err := serverKeyExchange(GroupFFDHE3072, c.public(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	css, err := c.finish(sshare)
	if err != nil || !bytes.Equal(css, sss) {
		t.Fatalf("secrets differ: %v", err)
	}
	c.erase()
	if _, err := c.finish(sshare); err == nil {
		t.Error("share usable after erase")
	}
}

func TestGroupAgreementAndSizes(t *testing.T) {
	for _, g := range allGroups {
		c, err := newClientKeyShare(g, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.public()) != g.clientShareLen() {
			t.Errorf("%v: client share %d bytes", g, len(c.public()))
		}
		sshare, sss, err := serverKeyExchange(g, c.public(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(sshare) != g.serverShareLen() {
			t.Errorf("%v: server share %d bytes", g, len(sshare))
		}
		css, err := c.finish(sshare)
		if err != nil || !bytes.Equal(css, sss) {
			t.Fatalf("%v: secrets differ: %v", g, err)
		}
		wantLen := map[Group]int{GroupX25519: 32, GroupMLKEM768X25519: 64, GroupFFDHE3072: 384}[g]
		if len(css) != wantLen {
			t.Errorf("%v: ss %d bytes", g, len(css))
		}
	}
}

// TestHybridLayout checks the TLS X25519MLKEM768 order: ML-KEM first in the
// shares and in ss.
func TestHybridLayout(t *testing.T) {
	c, err := newClientKeyShare(GroupMLKEM768X25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := c.(*hybridShare)
	pub := c.public()
	if !bytes.Equal(pub[:1184], h.dk.EncapsulationKey().Bytes()) || !bytes.Equal(pub[1184:], h.x.PublicKey().Bytes()) {
		t.Fatal("client share is not ek || x25519")
	}
	// Answer by hand and compare with finish.
	ek, _ := mlkem.NewEncapsulationKey768(pub[:1184])
	kss, ct := ek.Encapsulate()
	xk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	xss, _ := xk.ECDH(h.x.PublicKey())
	ss, err := c.finish(append(append([]byte{}, ct...), xk.PublicKey().Bytes()...))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ss, append(append([]byte{}, kss...), xss...)) {
		t.Error("ss is not mlkem_ss || x25519_ss")
	}
}

func TestParseGroup(t *testing.T) {
	for _, g := range allGroups {
		if got, err := ParseGroup(g.String()); err != nil || got != g {
			t.Errorf("ParseGroup(%q) = %v, %v", g.String(), got, err)
		}
	}
	if _, err := ParseGroup("x448"); err == nil {
		t.Error("ParseGroup accepted x448")
	}
	if Group(0x0017).String() != "group(0x0017)" {
		t.Error(Group(0x0017).String())
	}
}

// Wycheproof vectors (C2SP/wycheproof testvectors_v1).

type wycheproofFile[G any] struct {
	Algorithm  string `json:"algorithm"`
	TestGroups []G    `json:"testGroups"`
}

func loadWycheproof[G any](t *testing.T, name string) []G {
	t.Helper()
	path := findTestVectors(t, "wycheproof/"+name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f wycheproofFile[G]
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.TestGroups) == 0 {
		t.Fatalf("%s: no test groups", name)
	}
	return f.TestGroups
}

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// TestWycheproofX25519 runs x25519_test.json through the handshake's
// X25519 path. Every low-order (zero shared secret) case must be refused,
// whatever its result label; every other case must match.
func TestWycheproofX25519(t *testing.T) {
	type test struct {
		TcID    int      `json:"tcId"`
		Public  hexBytes `json:"public"`
		Private hexBytes `json:"private"`
		Shared  hexBytes `json:"shared"`
		Result  string   `json:"result"`
		Flags   []string `json:"flags"`
	}
	type group struct {
		Curve string `json:"curve"`
		Tests []test `json:"tests"`
	}
	refused, matched := 0, 0
	for _, g := range loadWycheproof[group](t, "x25519_test.json") {
		if g.Curve != "curve25519" {
			t.Fatalf("curve %q", g.Curve)
		}
		for _, tc := range g.Tests {
			priv, err := ecdh.X25519().NewPrivateKey(tc.Private)
			if err != nil {
				t.Fatalf("tc %d: %v", tc.TcID, err)
			}
			ss, err := x25519SharedSecret(priv, tc.Public)
			mustRefuse := tc.Result == "invalid" || hasFlag(tc.Flags, "ZeroSharedSecret") || hasFlag(tc.Flags, "LowOrderPublic")
			switch {
			case mustRefuse && err == nil:
				t.Errorf("tc %d (%v): accepted", tc.TcID, tc.Flags)
			case mustRefuse:
				refused++
			case err != nil:
				t.Errorf("tc %d (%v): %v", tc.TcID, tc.Flags, err)
			case !bytes.Equal(ss, tc.Shared):
				t.Errorf("tc %d: shared secret mismatch", tc.TcID)
			default:
				matched++
			}
		}
	}
	if refused < 31 || matched < 400 {
		t.Errorf("only %d refused and %d matched", refused, matched)
	}
	t.Logf("%d refused, %d matched", refused, matched)
}

// TestWycheproofEd25519 runs ed25519_test.json through the signature check
// the client applies to SERVER_HELLO (ed25519.Verify).
func TestWycheproofEd25519(t *testing.T) {
	type test struct {
		TcID   int      `json:"tcId"`
		Msg    hexBytes `json:"msg"`
		Sig    hexBytes `json:"sig"`
		Result string   `json:"result"`
	}
	type group struct {
		PublicKey struct {
			PK hexBytes `json:"pk"`
		} `json:"publicKey"`
		Tests []test `json:"tests"`
	}
	n := 0
	for _, g := range loadWycheproof[group](t, "ed25519_test.json") {
		for _, tc := range g.Tests {
			ok := verifyEd25519(ed25519.PublicKey(g.PublicKey.PK), tc.Msg, tc.Sig)
			if ok != (tc.Result == "valid") {
				t.Errorf("tc %d: verify = %v, want %s", tc.TcID, ok, tc.Result)
			}
			n++
		}
	}
	if n < 150 {
		t.Errorf("only %d cases", n)
	}
}

// TestWycheproofHKDF checks crypto/hkdf as the key schedule calls it:
// Extract(secret, salt) then Expand(prk, info, size).
func TestWycheproofHKDF(t *testing.T) {
	type test struct {
		TcID   int      `json:"tcId"`
		IKM    hexBytes `json:"ikm"`
		Salt   hexBytes `json:"salt"`
		Info   hexBytes `json:"info"`
		Size   int      `json:"size"`
		OKM    hexBytes `json:"okm"`
		Result string   `json:"result"`
	}
	type group struct {
		Tests []test `json:"tests"`
	}
	n := 0
	for _, g := range loadWycheproof[group](t, "hkdf_sha256_test.json") {
		for _, tc := range g.Tests {
			prk, err := hkdf.Extract(sha256.New, tc.IKM, tc.Salt)
			if err != nil {
				t.Fatalf("tc %d: %v", tc.TcID, err)
			}
			okm, err := hkdf.Expand(sha256.New, prk, string(tc.Info), tc.Size)
			switch tc.Result {
			case "valid":
				if err != nil || !bytes.Equal(okm, tc.OKM) {
					t.Errorf("tc %d: %x, %v", tc.TcID, okm, err)
				}
			default:
				if err == nil {
					t.Errorf("tc %d: size %d accepted", tc.TcID, tc.Size)
				}
			}
			n++
		}
	}
	if n < 86 {
		t.Errorf("only %d cases", n)
	}
}

// TestWycheproofMLKEMDecaps runs mlkem_768_test.json through the client's
// ML-KEM path: the seed makes the decapsulation key (as newClientKeyShare
// does from its random bytes), ek must match, and mlkemDecapsulate must
// give K or refuse a bad ciphertext.
func TestWycheproofMLKEMDecaps(t *testing.T) {
	type test struct {
		TcID   int      `json:"tcId"`
		Seed   hexBytes `json:"seed"`
		EK     hexBytes `json:"ek"`
		C      hexBytes `json:"c"`
		K      hexBytes `json:"K"`
		Result string   `json:"result"`
	}
	type group struct {
		ParameterSet string `json:"parameterSet"`
		Tests        []test `json:"tests"`
	}
	n := 0
	for _, g := range loadWycheproof[group](t, "mlkem_768_test.json") {
		if g.ParameterSet != "ML-KEM-768" {
			t.Fatalf("parameter set %q", g.ParameterSet)
		}
		for _, tc := range g.Tests {
			n++
			if len(tc.Seed) != mlkemSeedLen {
				// Our path always draws exactly 64 seed bytes; a seed of
				// another length cannot reach it. The library refuses it.
				if _, err := mlkem.NewDecapsulationKey768(tc.Seed); err == nil || tc.Result == "valid" {
					t.Errorf("tc %d: %d-byte seed: %v, result %s", tc.TcID, len(tc.Seed), err, tc.Result)
				}
				continue
			}
			// newClientKeyShare reads the seed and then the X25519 scalar
			// from its random source.
			rnd := bytes.NewReader(append(append([]byte{}, tc.Seed...), make([]byte, 32)...))
			share, err := newClientKeyShare(GroupMLKEM768X25519, rnd)
			if err != nil {
				if tc.Result == "valid" {
					t.Errorf("tc %d: %v", tc.TcID, err)
				}
				continue
			}
			h := share.(*hybridShare)
			if tc.EK != nil && !bytes.Equal(share.public()[:mlkemEncapKeyLen], tc.EK) {
				t.Errorf("tc %d: ek mismatch", tc.TcID)
			}
			k, err := mlkemDecapsulate(h.dk, tc.C)
			switch tc.Result {
			case "valid":
				if err != nil || !bytes.Equal(k, tc.K) {
					t.Errorf("tc %d: K %x, %v", tc.TcID, k, err)
				}
			default:
				if err == nil {
					t.Errorf("tc %d: accepted", tc.TcID)
				}
			}
		}
	}
	if n < 193 {
		t.Errorf("only %d cases", n)
	}
}

// TestWycheproofMLKEMEncaps runs mlkem_768_encaps_test.json: the server's
// share check must refuse every invalid ek (modulus overflow, wrong length),
// and a valid ek with the fixed randomness m must give c and K.
func TestWycheproofMLKEMEncaps(t *testing.T) {
	type test struct {
		TcID   int      `json:"tcId"`
		M      hexBytes `json:"m"`
		EK     hexBytes `json:"ek"`
		C      hexBytes `json:"c"`
		K      hexBytes `json:"K"`
		Result string   `json:"result"`
		Flags  []string `json:"flags"`
	}
	type group struct {
		Tests []test `json:"tests"`
	}
	xk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	n := 0
	for _, g := range loadWycheproof[group](t, "mlkem_768_encaps_test.json") {
		for _, tc := range g.Tests {
			n++
			share := append(append([]byte{}, tc.EK...), xk.PublicKey().Bytes()...)
			_, _, err := serverKeyExchange(GroupMLKEM768X25519, share, rand.Reader)
			if tc.Result == "invalid" {
				if err == nil {
					t.Errorf("tc %d (%v): server accepted the encapsulation key", tc.TcID, tc.Flags)
				}
				continue
			}
			if err != nil {
				t.Errorf("tc %d: %v", tc.TcID, err)
				continue
			}
			ek, err := mlkem.NewEncapsulationKey768(tc.EK)
			if err != nil {
				t.Fatal(err)
			}
			k, c, err := mlkemtest.Encapsulate768(ek, tc.M)
			if err != nil || !bytes.Equal(k, tc.K) || !bytes.Equal(c, tc.C) {
				t.Errorf("tc %d: derandomized encapsulation mismatch (%v)", tc.TcID, err)
			}
		}
	}
	if n < 265 {
		t.Errorf("only %d cases", n)
	}
}

func TestParseGroups(t *testing.T) {
	gs, err := ParseGroups(" x25519, mlkem768x25519 ")
	if err != nil || len(gs) != 2 || gs[0] != GroupX25519 || gs[1] != GroupMLKEM768X25519 {
		t.Errorf("ParseGroups = %v, %v", gs, err)
	}
	if gs, err := ParseGroups(" "); gs != nil || err != nil {
		t.Errorf("ParseGroups of an empty list = %v, %v; want nil, nil", gs, err)
	}
	if _, err := ParseGroups("x25519,rot13"); err == nil || !strings.Contains(err.Error(), `"rot13"`) {
		t.Errorf("ParseGroups with an unknown name: %v", err)
	}
}
