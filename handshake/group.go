package handshake

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Group is a key exchange group (PROTOCOL.md §6). The ids reuse the TLS
// supported_groups registry.
type Group uint16

const (
	GroupMLKEM768X25519 Group = 0x11EC
	GroupX25519         Group = 0x001D
	GroupFFDHE3072      Group = 0x0101
)

// defaultClientGroups is what a client offers when ClientConfig.Groups is nil:
// the hybrid first, X25519 as the fallback the server may prefer for speed.
var defaultClientGroups = []Group{GroupMLKEM768X25519, GroupX25519}

// allGroups lists every group this package implements.
var allGroups = []Group{GroupMLKEM768X25519, GroupX25519, GroupFFDHE3072}

// defaultServerGroups is what a server allows when ServerConfig.Groups is
// nil. ffdhe3072 is left out: its math/big exponentiation is variable-time
// and costs about 12 times the CPU of x25519, and any unauthenticated
// client could choose it. A server that needs it lists it.
var defaultServerGroups = []Group{GroupMLKEM768X25519, GroupX25519}

// String returns the protocol name of g, or a hex form for unknown ids.
func (g Group) String() string {
	switch g {
	case GroupMLKEM768X25519:
		return "mlkem768x25519"
	case GroupX25519:
		return "x25519"
	case GroupFFDHE3072:
		return "ffdhe3072"
	}
	return fmt.Sprintf("group(0x%04x)", uint16(g))
}

// ParseGroup maps a name printed by [Group.String] back to the group.
func ParseGroup(name string) (Group, error) {
	for _, g := range allGroups {
		if g.String() == name {
			return g, nil
		}
	}
	return 0, fmt.Errorf("handshake: unknown key exchange group %q (known: mlkem768x25519, x25519, ffdhe3072)", name)
}

// ParseGroups reads a comma-separated list of group names, as the --kex
// flags take it. An empty list is nil: the caller's default.
func ParseGroups(list string) ([]Group, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var gs []Group
	for _, name := range strings.Split(list, ",") {
		g, err := ParseGroup(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, nil
}

func (g Group) known() bool {
	switch g {
	case GroupMLKEM768X25519, GroupX25519, GroupFFDHE3072:
		return true
	}
	return false
}

// Share sizes of PROTOCOL.md §6.
const (
	x25519ShareLen       = 32
	mlkemEncapKeyLen     = mlkem.EncapsulationKeySize768 // 1184
	mlkemCiphertextLen   = mlkem.CiphertextSize768       // 1088
	mlkemSeedLen         = mlkem.SeedSize                // 64
	hybridClientShareLen = mlkemEncapKeyLen + x25519ShareLen
	hybridServerShareLen = mlkemCiphertextLen + x25519ShareLen
	ffdheShareLen        = 384
)

// clientShareLen and serverShareLen give the exact share length of a known
// group; shares of any other length are refused before parsing.
func (g Group) clientShareLen() int {
	switch g {
	case GroupMLKEM768X25519:
		return hybridClientShareLen
	case GroupX25519:
		return x25519ShareLen
	case GroupFFDHE3072:
		return ffdheShareLen
	}
	return -1
}

func (g Group) serverShareLen() int {
	switch g {
	case GroupMLKEM768X25519:
		return hybridServerShareLen
	case GroupX25519:
		return x25519ShareLen
	case GroupFFDHE3072:
		return ffdheShareLen
	}
	return -1
}

var errBadShare = errors.New("handshake: invalid key share")

// clientKeyShare is the client's ephemeral state for one offered group. It is
// used once: finish consumes the server's share and erase drops the secrets.
type clientKeyShare interface {
	group() Group
	public() []byte
	// finish validates the server's share and returns the shared secret ss.
	finish(serverShare []byte) (ss []byte, err error)
	erase()
}

// newClientKeyShare makes a fresh ephemeral for g. Randomness comes from rnd
// so that known-answer tests can fix it; in production rnd is crypto/rand.
func newClientKeyShare(g Group, rnd io.Reader) (clientKeyShare, error) {
	switch g {
	case GroupX25519:
		k, err := newX25519Key(rnd)
		if err != nil {
			return nil, err
		}
		return &x25519Share{priv: k}, nil
	case GroupMLKEM768X25519:
		seed := make([]byte, mlkemSeedLen)
		defer clear(seed)
		if _, err := io.ReadFull(rnd, seed); err != nil {
			return nil, fmt.Errorf("handshake: reading randomness: %w", err)
		}
		dk, err := mlkem.NewDecapsulationKey768(seed)
		if err != nil {
			return nil, fmt.Errorf("handshake: ml-kem key generation: %w", err)
		}
		xk, err := newX25519Key(rnd)
		if err != nil {
			return nil, err
		}
		return &hybridShare{dk: dk, x: xk}, nil
	case GroupFFDHE3072:
		return newFFDHEShare(rnd)
	}
	return nil, fmt.Errorf("handshake: cannot make a key share for %v", g)
}

// encapsulateFunc is ML-KEM-768 encapsulation. Production code uses the
// standard library's randomized one; known-answer tests substitute a
// derandomized one, because Encapsulate takes no randomness source.
type encapsulateFunc func(ek *mlkem.EncapsulationKey768) (sharedKey, ciphertext []byte, err error)

func encapsulate768(ek *mlkem.EncapsulationKey768) ([]byte, []byte, error) {
	sharedKey, ciphertext := ek.Encapsulate()
	return sharedKey, ciphertext, nil
}

// serverKeyExchange validates the client's share for the chosen group and
// answers it: the server's share and the shared secret ss. The server's
// ephemeral private values never leave this function.
func serverKeyExchange(g Group, clientShare []byte, rnd io.Reader) (serverShare, ss []byte, err error) {
	return serverKeyExchangeWith(g, clientShare, rnd, encapsulate768)
}

// serverKeyExchangeWith is serverKeyExchange with the ML-KEM encapsulation
// made explicit, for test hooks.
func serverKeyExchangeWith(g Group, clientShare []byte, rnd io.Reader, encapsulate encapsulateFunc) (serverShare, ss []byte, err error) {
	if len(clientShare) != g.clientShareLen() {
		return nil, nil, errBadShare
	}
	switch g {
	case GroupX25519:
		k, err := newX25519Key(rnd)
		if err != nil {
			return nil, nil, err
		}
		ss, err := x25519SharedSecret(k, clientShare)
		if err != nil {
			return nil, nil, err
		}
		return k.PublicKey().Bytes(), ss, nil
	case GroupMLKEM768X25519:
		ek, err := mlkem.NewEncapsulationKey768(clientShare[:mlkemEncapKeyLen])
		if err != nil {
			// FIPS 203 §7.2 modulus check failed.
			return nil, nil, errBadShare
		}
		xk, err := newX25519Key(rnd)
		if err != nil {
			return nil, nil, err
		}
		xss, err := x25519SharedSecret(xk, clientShare[mlkemEncapKeyLen:])
		if err != nil {
			return nil, nil, err
		}
		defer clear(xss)
		kss, ct, err := encapsulate(ek)
		if err != nil {
			return nil, nil, fmt.Errorf("handshake: ml-kem encapsulation: %w", err)
		}
		defer clear(kss)
		serverShare = make([]byte, 0, hybridServerShareLen)
		serverShare = append(append(serverShare, ct...), xk.PublicKey().Bytes()...)
		ss = make([]byte, 0, 64)
		ss = append(append(ss, kss...), xss...)
		return serverShare, ss, nil
	case GroupFFDHE3072:
		y, err := parseFFDHEPublic(clientShare)
		if err != nil {
			return nil, nil, err
		}
		s, err := newFFDHEShare(rnd)
		if err != nil {
			return nil, nil, err
		}
		defer s.erase()
		ss, err := s.sharedSecret(y)
		if err != nil {
			return nil, nil, err
		}
		return s.public(), ss, nil
	}
	return nil, nil, fmt.Errorf("handshake: cannot answer a key share for %v", g)
}

// newX25519Key draws a 32-byte scalar from rnd. crypto/ecdh clamps it, so
// this is the RFC 7748 key generation; reading the bytes ourselves (rather than
// GenerateKey, which ignores its reader since Go 1.26) keeps test hooks simple.
func newX25519Key(rnd io.Reader) (*ecdh.PrivateKey, error) {
	var b [32]byte
	defer clear(b[:])
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return nil, fmt.Errorf("handshake: reading randomness: %w", err)
	}
	return ecdh.X25519().NewPrivateKey(b[:])
}

// x25519SharedSecret computes X25519(priv, peer) and refuses a peer share of
// the wrong length or one that yields the all-zero secret (RFC 7748 §6.1).
// crypto/ecdh already reports the low-order case as an error; the explicit
// zero check keeps the rule visible and independent of the library.
func x25519SharedSecret(priv *ecdh.PrivateKey, peer []byte) ([]byte, error) {
	if len(peer) != x25519ShareLen {
		return nil, errBadShare
	}
	pub, err := ecdh.X25519().NewPublicKey(peer)
	if err != nil {
		return nil, errBadShare
	}
	ss, err := priv.ECDH(pub)
	if err != nil {
		return nil, errBadShare
	}
	var zero [32]byte
	if subtle.ConstantTimeCompare(ss, zero[:]) == 1 {
		return nil, errBadShare
	}
	return ss, nil
}

type x25519Share struct {
	priv *ecdh.PrivateKey
}

func (s *x25519Share) group() Group   { return GroupX25519 }
func (s *x25519Share) public() []byte { return s.priv.PublicKey().Bytes() }
func (s *x25519Share) erase()         { s.priv = nil }
func (s *x25519Share) finish(peer []byte) ([]byte, error) {
	if s.priv == nil {
		return nil, errors.New("handshake: key share already used")
	}
	return x25519SharedSecret(s.priv, peer)
}

// hybridShare is the client half of X25519MLKEM768 in TLS order: the ML-KEM
// part comes first in shares and in ss.
type hybridShare struct {
	dk *mlkem.DecapsulationKey768
	x  *ecdh.PrivateKey
}

func (s *hybridShare) group() Group { return GroupMLKEM768X25519 }
func (s *hybridShare) public() []byte {
	b := make([]byte, 0, hybridClientShareLen)
	return append(append(b, s.dk.EncapsulationKey().Bytes()...), s.x.PublicKey().Bytes()...)
}
func (s *hybridShare) erase() { s.dk, s.x = nil, nil }
func (s *hybridShare) finish(peer []byte) ([]byte, error) {
	if s.dk == nil {
		return nil, errors.New("handshake: key share already used")
	}
	if len(peer) != hybridServerShareLen {
		return nil, errBadShare
	}
	kss, err := mlkemDecapsulate(s.dk, peer[:mlkemCiphertextLen])
	if err != nil {
		return nil, err
	}
	defer clear(kss)
	xss, err := x25519SharedSecret(s.x, peer[mlkemCiphertextLen:])
	if err != nil {
		return nil, err
	}
	defer clear(xss)
	ss := make([]byte, 0, 64)
	return append(append(ss, kss...), xss...), nil
}

// mlkemDecapsulate insists on the exact ciphertext length. ML-KEM has implicit
// rejection: a wrong but well-sized ciphertext yields a pseudorandom secret,
// which then fails the signature-bound Finished check.
func mlkemDecapsulate(dk *mlkem.DecapsulationKey768, ct []byte) ([]byte, error) {
	if len(ct) != mlkemCiphertextLen {
		return nil, errBadShare
	}
	ss, err := dk.Decapsulate(ct)
	if err != nil {
		return nil, errBadShare
	}
	return ss, nil
}
