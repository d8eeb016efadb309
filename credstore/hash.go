package credstore

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Params are the Argon2id cost parameters of one hash.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
}

// DefaultParams is the cost of new hashes, chosen by measurement on a
// 2-core host (BenchmarkHash, BenchmarkVerifyParallel): about 110 ms and
// 64 MiB per hash, and about 15 logins per second with both cores hashing
// (the pool admits two at once, so hashing holds at most 128 MiB). The OWASP
// minimum (19 MiB, t=2, p=1) took 20 ms; the stronger setting still keeps
// a login well under a human's notice and makes each offline guess about
// five times dearer. It is the RFC 9106 second recommendation with one
// lane instead of four: extra lanes only shorten one login by taking the
// core another login needs.
var DefaultParams = Params{Memory: 64 * 1024, Time: 3, Threads: 1}

// MinParams is the OWASP minimum. New hashes below it get a warning from
// the user command; stored hashes below DefaultParams are upgraded at login.
var MinParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// MaxParams is the default ceiling for stored hashes. A line above it is
// refused when the file is loaded, before anything is hashed, so a crafted
// creds.txt cannot make the server allocate gigabytes.
var MaxParams = Params{Memory: 256 * 1024, Time: 10, Threads: 8}

// MaxBcryptCost caps imported bcrypt hashes for the same reason: each step
// doubles the CPU time, and cost 14 already takes about a second.
const MaxBcryptCost = 14

// Sizes of new hashes (RFC 9106 recommendation) and the bounds the PHC
// string format allows for stored ones.
const (
	saltSize    = 16
	keySize     = 32
	minSaltSize = 8
	maxSaltSize = 48
	minKeySize  = 12
	maxKeySize  = 64
)

// b64 is the PHC encoding: standard alphabet, no padding, and strict about
// the unused trailing bits so that every hash has exactly one spelling.
var b64 = base64.RawStdEncoding.Strict()

// String formats p as in a PHC string: "m=65536,t=3,p=1".
func (p Params) String() string {
	return fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads)
}

// ParseParams parses the PHC parameter list "m=<KiB>,t=<passes>,p=<lanes>",
// in that order, with plain decimal numbers. It checks the values argon2
// itself needs (t ≥ 1, 1 ≤ p ≤ 255, m ≥ 8·p) but no ceiling; see [Params.Check].
func ParseParams(s string) (Params, error) {
	fields := strings.Split(s, ",")
	if len(fields) != 3 {
		return Params{}, fmt.Errorf("parameters %q are not m=<KiB>,t=<passes>,p=<lanes>", s)
	}
	var vals [3]uint32
	for i, key := range []string{"m", "t", "p"} {
		k, v, ok := strings.Cut(fields[i], "=")
		if !ok || k != key {
			return Params{}, fmt.Errorf("parameters %q are not m=<KiB>,t=<passes>,p=<lanes>", s)
		}
		n, err := parseDecimal(v)
		if err != nil {
			return Params{}, fmt.Errorf("parameter %s: %v", key, err)
		}
		vals[i] = n
	}
	p := Params{Memory: vals[0], Time: vals[1]}
	switch {
	case vals[1] < 1:
		return Params{}, errors.New("parameter t must be at least 1")
	case vals[2] < 1 || vals[2] > 255:
		return Params{}, errors.New("parameter p must be between 1 and 255")
	}
	p.Threads = uint8(vals[2])
	if p.Memory < 8*uint32(p.Threads) {
		return Params{}, fmt.Errorf("parameter m must be at least 8·p = %d", 8*uint32(p.Threads))
	}
	return p, nil
}

// parseDecimal accepts only the canonical spelling of a uint32: digits,
// no sign, no leading zero.
func parseDecimal(s string) (uint32, error) {
	if s == "" {
		return 0, errors.New("empty number")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return uint32(n), nil
}

// Check reports an error if p exceeds the ceiling max in any dimension.
func (p Params) Check(max Params) error {
	switch {
	case p.Memory > max.Memory:
		return fmt.Errorf("memory m=%d KiB is above the ceiling of %d KiB", p.Memory, max.Memory)
	case p.Time > max.Time:
		return fmt.Errorf("passes t=%d are above the ceiling of %d", p.Time, max.Time)
	case p.Threads > max.Threads:
		return fmt.Errorf("lanes p=%d are above the ceiling of %d", p.Threads, max.Threads)
	}
	return nil
}

// below reports whether p is cheaper than def in memory or passes, the two
// knobs that set an attacker's cost per guess. Lanes only change how the
// work is spread over cores, so they do not count.
func (p Params) below(def Params) bool {
	return p.Memory < def.Memory || p.Time < def.Time
}

// scheme tells the two accepted hash formats apart.
type scheme uint8

const (
	schemeArgon2id scheme = iota + 1
	schemeBcrypt
)

// passwordHash is one parsed hash string. text is the string exactly as
// stored, so that a parsed line serializes back to the same bytes.
type passwordHash struct {
	scheme scheme
	text   string
	params Params // argon2id
	salt   []byte // argon2id
	key    []byte // argon2id
	cost   int    // bcrypt
}

// parseHash parses a PHC argon2id string or a bcrypt string, strictly,
// and refuses costs above the ceilings.
func parseHash(s string, max Params) (*passwordHash, error) {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s, max)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		return parseBcrypt(s)
	case strings.HasPrefix(s, "$argon2i$"), strings.HasPrefix(s, "$argon2d$"):
		return nil, errors.New("only the argon2id variant is accepted")
	case strings.HasPrefix(s, "$2"):
		return nil, errors.New("unsupported bcrypt variant (want $2a$, $2b$ or $2y$)")
	}
	return nil, errors.New("unknown hash scheme (want $argon2id$ or bcrypt)")
}

func parseArgon2id(s string, max Params) (*passwordHash, error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	parts := strings.Split(s, "$")
	if len(parts) != 6 {
		return nil, errors.New("malformed argon2id hash (want $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>)")
	}
	// The version and parameter fields are quoted in errors only if they
	// hold a '=', which unpadded base64 never does: a shifted salt or key
	// is never shown.
	if parts[2] != "v=19" {
		if !strings.Contains(parts[2], "=") {
			return nil, errors.New("malformed argon2id version (want v=19)")
		}
		return nil, fmt.Errorf("unsupported argon2 version %q (want v=19)", parts[2])
	}
	if !strings.Contains(parts[3], "=") {
		return nil, errors.New("malformed argon2id parameters (want m=<KiB>,t=<passes>,p=<lanes>)")
	}
	p, err := ParseParams(parts[3])
	if err != nil {
		return nil, err
	}
	if err := p.Check(max); err != nil {
		return nil, err
	}
	salt, err := decodeB64(parts[4])
	if err != nil {
		return nil, fmt.Errorf("salt: %v", err)
	}
	if len(salt) < minSaltSize || len(salt) > maxSaltSize {
		return nil, fmt.Errorf("salt is %d bytes (want %d to %d)", len(salt), minSaltSize, maxSaltSize)
	}
	key, err := decodeB64(parts[5])
	if err != nil {
		return nil, fmt.Errorf("hash: %v", err)
	}
	if len(key) < minKeySize || len(key) > maxKeySize {
		return nil, fmt.Errorf("hash is %d bytes (want %d to %d)", len(key), minKeySize, maxKeySize)
	}
	return &passwordHash{scheme: schemeArgon2id, text: s, params: p, salt: salt, key: key}, nil
}

// decodeB64 decodes unpadded standard base64 and insists that the input is
// the canonical encoding (the decoder would skip CR and LF otherwise).
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsRune(s, '=') {
		return nil, errors.New("base64 must be unpadded")
	}
	b, err := b64.DecodeString(s)
	if err != nil || b64.EncodeToString(b) != s {
		return nil, errors.New("not canonical unpadded standard base64")
	}
	return b, nil
}

// bcryptAlphabet is the base64 variant bcrypt uses.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func parseBcrypt(s string) (*passwordHash, error) {
	// "$2b$" + 2-digit cost + "$" + 22 salt + 31 hash characters.
	const size = 4 + 2 + 1 + 22 + 31
	if len(s) != size || s[6] != '$' {
		return nil, errors.New("malformed bcrypt hash (want $2b$<cost>$<53 characters>)")
	}
	if s[4] < '0' || s[4] > '9' || s[5] < '0' || s[5] > '9' {
		return nil, errors.New("malformed bcrypt cost")
	}
	cost := int(s[4]-'0')*10 + int(s[5]-'0')
	if cost < bcrypt.MinCost {
		return nil, fmt.Errorf("bcrypt cost %d is below the minimum of %d", cost, bcrypt.MinCost)
	}
	if cost > MaxBcryptCost {
		return nil, fmt.Errorf("bcrypt cost %d is above the ceiling of %d", cost, MaxBcryptCost)
	}
	for i := 7; i < len(s); i++ {
		if strings.IndexByte(bcryptAlphabet, s[i]) < 0 {
			return nil, errors.New("malformed bcrypt hash (bad character)")
		}
	}
	return &passwordHash{scheme: schemeBcrypt, text: s, cost: cost}, nil
}

// newArgon2id hashes password with a fresh random salt.
func newArgon2id(password []byte, p Params) *passwordHash {
	salt := make([]byte, saltSize)
	rand.Read(salt)
	key := argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, keySize)
	text := "$argon2id$v=19$" + p.String() + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key)
	return &passwordHash{scheme: schemeArgon2id, text: text, params: p, salt: salt, key: key}
}

// matches does the expensive comparison. The caller holds a pool slot.
func (h *passwordHash) matches(password []byte) bool {
	switch h.scheme {
	case schemeArgon2id:
		got := argon2.IDKey(password, h.salt, h.params.Time, h.params.Memory, h.params.Threads, uint32(len(h.key)))
		return subtle.ConstantTimeCompare(got, h.key) == 1
	case schemeBcrypt:
		if len(password) > bcryptMaxPassword {
			// bcrypt would compare the first 72 bytes only and call a
			// longer password right by its prefix. Refuse it, after the
			// same work as a real check so the refusal takes as long.
			bcrypt.CompareHashAndPassword([]byte(h.text), password[:bcryptMaxPassword])
			return false
		}
		return bcrypt.CompareHashAndPassword([]byte(h.text), password) == nil
	}
	return false
}

// bcryptMaxPassword is the most bcrypt reads of a password, in bytes.
const bcryptMaxPassword = 72

// cheaperThan reports whether checking a password against h costs less
// than a check at def: bcrypt (whatever its cost, it is not what an unknown
// user costs) or an Argon2id hash below def in memory or passes.
func (h *passwordHash) cheaperThan(def Params) bool {
	return h.scheme == schemeBcrypt || h.params.below(def)
}

// weak reports whether h should be replaced by a hash at def.
func (h *passwordHash) weak(def Params) bool {
	if h.scheme != schemeArgon2id {
		return true
	}
	return h.params.below(def) || len(h.salt) < saltSize || len(h.key) < keySize
}

// describe names the scheme and cost, never the hash itself.
func (h *passwordHash) describe() string {
	if h.scheme == schemeBcrypt {
		return fmt.Sprintf("bcrypt cost=%d", h.cost)
	}
	return "argon2id " + h.params.String()
}
