package handshake

import (
	"fmt"
	"io"
	"math/big"
)

// ffdhe3072P is the RFC 7919 Appendix A.2 prime,
// p = 2^3072 - 2^3008 + {[2^2942 * e] + 2625351} * 2^64 - 1, with g = 2.
// It is a safe prime, so the only small subgroup is {1, p-1} (RFC 7919 §5.1);
// TestFFDHE3072Prime checks this and rebuilds p from the formula.
const ffdhe3072Hex = "" +
	"FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695" +
	"A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A" +
	"D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935" +
	"984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A" +
	"BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4" +
	"AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61" +
	"9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005" +
	"C58EF1837D1683B2C6F34A26C1B2EFFA886B4238611FCFDCDE355B3B6519035B" +
	"BC34F4DEF99C023861B46FC9D6E6C9077AD91D2691F7F7EE598CB0FAC186D91C" +
	"AEFE130985139270B4130C93BC437944F4FD4452E2D74DD364F2E21E71F54BFF" +
	"5CAE82AB9C9DF69EE86D2BC522363A0DABC521979B0DEADA1DBF9A42D5C4484E" +
	"0ABCD06BFA53DDEF3C1B20EE3FD59D7C25E41D2B66C62E37FFFFFFFFFFFFFFFF"

var (
	ffdheP, ffdhePMinus1 = func() (*big.Int, *big.Int) {
		p, ok := new(big.Int).SetString(ffdhe3072Hex, 16)
		if !ok {
			panic("handshake: bad ffdhe3072 constant")
		}
		return p, new(big.Int).Sub(p, big.NewInt(1))
	}()
	ffdheG = big.NewInt(2)
	bigOne = big.NewInt(1)
)

// ffdheExponentBytes is the secret exponent size: 384 bits, above the 275 bits
// RFC 7919 Appendix A.2 asks for this group (PROTOCOL.md §6).
const ffdheExponentBytes = 48

// ffdheShare holds one side's ephemeral exponent. math/big is not constant
// time and keeps temporaries we cannot reach; erase clears what we own.
type ffdheShare struct {
	x *big.Int
	y []byte
}

func newFFDHEShare(rnd io.Reader) (*ffdheShare, error) {
	b := make([]byte, ffdheExponentBytes)
	defer clear(b)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return nil, fmt.Errorf("handshake: reading randomness: %w", err)
	}
	x := new(big.Int).SetBytes(b)
	if x.Sign() == 0 {
		// Probability 2^-384; refuse rather than send g^0 = 1.
		return nil, fmt.Errorf("handshake: zero dh exponent")
	}
	y := new(big.Int).Exp(ffdheG, x, ffdheP)
	return &ffdheShare{x: x, y: y.FillBytes(make([]byte, ffdheShareLen))}, nil
}

func (s *ffdheShare) group() Group   { return GroupFFDHE3072 }
func (s *ffdheShare) public() []byte { return s.y }

func (s *ffdheShare) erase() {
	if s.x != nil {
		clear(s.x.Bits())
		s.x = nil
	}
}

func (s *ffdheShare) finish(peer []byte) ([]byte, error) {
	if s.x == nil {
		return nil, fmt.Errorf("handshake: key share already used")
	}
	y, err := parseFFDHEPublic(peer)
	if err != nil {
		return nil, err
	}
	return s.sharedSecret(y)
}

// parseFFDHEPublic enforces the exact length and 1 < Y < p-1 (RFC 7919 §5.1).
func parseFFDHEPublic(b []byte) (*big.Int, error) {
	if len(b) != ffdheShareLen {
		return nil, errBadShare
	}
	y := new(big.Int).SetBytes(b)
	if y.Cmp(bigOne) <= 0 || y.Cmp(ffdhePMinus1) >= 0 {
		return nil, errBadShare
	}
	return y, nil
}

// sharedSecret returns K = y^x mod p as 384 bytes, refusing K in {1, p-1}:
// with a safe prime those are the only values a small-subgroup peer can force.
func (s *ffdheShare) sharedSecret(y *big.Int) ([]byte, error) {
	k := new(big.Int).Exp(y, s.x, ffdheP)
	defer clear(k.Bits())
	if k.Cmp(bigOne) <= 0 || k.Cmp(ffdhePMinus1) >= 0 {
		return nil, errBadShare
	}
	return k.FillBytes(make([]byte, ffdheShareLen)), nil
}
