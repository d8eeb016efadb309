package credstore

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Role is what an account may do beyond chatting.
type Role uint8

const (
	RoleUser  Role = iota // no role field
	RoleAdmin             // ":admin"; may use the moderation commands
)

func (r Role) String() string {
	if r == RoleAdmin {
		return "admin"
	}
	return "user"
}

// Password limits. The maximum is the login protocol's (PROTOCOL.md §10.2).
const (
	MinPasswordLength = 8    // characters
	MaxPasswordLength = 1024 // bytes
	MaxNameLength     = 32
)

// NamePattern describes valid user names, for help texts and error hints.
const NamePattern = "[a-z0-9_.-]{1,32}"

// Account is one creds.txt line: a name, a password hash and a role. The
// hash itself is not exported; it is only ever compared or written back.
type Account struct {
	Name string
	Role Role
	hash *passwordHash
}

// CheckName reports whether name matches [NamePattern]. The restriction
// keeps ":" and line breaks out of creds.txt and control characters out of
// logs.
func CheckName(name string) error {
	if name == "" {
		return errors.New("empty user name")
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("user name is longer than %d characters", MaxNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("user name %q has characters outside %s", name, NamePattern)
		}
	}
	return nil
}

// CheckPassword enforces the rules for new passwords: at least
// MinPasswordLength characters, at most MaxPasswordLength bytes of UTF-8,
// no control characters (none of them can be typed at a login prompt).
func CheckPassword(password []byte) error {
	switch {
	case len(password) == 0:
		return errors.New("empty password")
	case len(password) > MaxPasswordLength:
		return fmt.Errorf("password is longer than %d bytes", MaxPasswordLength)
	case !utf8.Valid(password):
		return errors.New("password is not valid UTF-8")
	}
	for _, r := range string(password) {
		if r < 0x20 || r == 0x7f {
			return errors.New("password contains a control character or line break")
		}
	}
	if n := utf8.RuneCount(password); n < MinPasswordLength {
		return fmt.Errorf("password is too short (%d characters, at least %d)", n, MinPasswordLength)
	}
	return nil
}

// NewAccount hashes password with Argon2id at p and a fresh salt. It does not
// check the password rules (see [CheckPassword]) so that tests can use any
// password, but it does refuse p above [MaxParams].
func NewAccount(name string, role Role, password []byte, p Params) (Account, error) {
	if err := CheckName(name); err != nil {
		return Account{}, fmt.Errorf("credstore: %v", err)
	}
	if role != RoleUser && role != RoleAdmin {
		return Account{}, errors.New("credstore: unknown role")
	}
	if err := p.valid(); err != nil {
		return Account{}, fmt.Errorf("credstore: %v", err)
	}
	if err := p.Check(MaxParams); err != nil {
		return Account{}, fmt.Errorf("credstore: %v", err)
	}
	return Account{Name: name, Role: role, hash: newArgon2id(password, p)}, nil
}

// valid checks what argon2 needs to run at all (it panics otherwise).
func (p Params) valid() error {
	_, err := ParseParams(p.String())
	return err
}

// String returns the creds.txt line for a, without a line break.
func (a Account) String() string {
	if a.hash == nil {
		return a.Name + ":"
	}
	s := a.Name + ":" + a.hash.text
	if a.Role == RoleAdmin {
		s += ":admin"
	}
	return s
}

// Scheme describes the hash without revealing it:
// "argon2id m=65536,t=3,p=1" or "bcrypt cost=10".
func (a Account) Scheme() string {
	if a.hash == nil {
		return "none"
	}
	return a.hash.describe()
}

// NeedsRehash reports whether the stored hash is bcrypt or an Argon2id hash
// below def; such hashes are replaced at the next successful login.
func (a Account) NeedsRehash(def Params) bool {
	return a.hash == nil || a.hash.weak(def)
}

// WithPassword returns a copy of a with a new Argon2id hash of password at p.
func (a Account) WithPassword(password []byte, p Params) (Account, error) {
	return NewAccount(a.Name, a.Role, password, p)
}

// ParseLine parses one account line (not a comment or a blank line) with
// the default ceiling [MaxParams].
func ParseLine(line string) (Account, error) {
	a, err := parseAccount(line, MaxParams)
	if err != nil {
		return Account{}, fmt.Errorf("credstore: %v", err)
	}
	return a, nil
}

// parseAccount parses "name:hash[:admin]". Its errors carry no prefix; the
// caller adds "credstore: file:line: ".
func parseAccount(line string, max Params) (Account, error) {
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 || c == 0x7f {
			if c == '\r' {
				return Account{}, errors.New("carriage return in line (the file must use LF line endings)")
			}
			return Account{}, fmt.Errorf("control character 0x%02x in line", c)
		}
	}
	fields := strings.Split(line, ":")
	if len(fields) < 2 || len(fields) > 3 {
		return Account{}, errors.New("want name:hash or name:hash:admin")
	}
	// No error below may quote a field that could hold a hash (PHC and
	// bcrypt strings start with '$'): a misplaced ':' shifts the hash into
	// the name or role field, and error text ends up in logs and terminals.
	name := fields[0]
	if strings.Contains(name, "$") {
		return Account{}, errors.New("the user name field holds a '$' (is the name missing before the hash?)")
	}
	if err := CheckName(name); err != nil {
		return Account{}, err
	}
	a := Account{Name: name}
	if len(fields) == 3 {
		switch role := fields[2]; {
		case role == "admin":
			a.Role = RoleAdmin
		case strings.Contains(role, "$"):
			return Account{}, errors.New("the hash is not the second field (a user name cannot contain ':'; want name:hash or name:hash:admin)")
		case len(role) > 16:
			return Account{}, errors.New("unknown role (the only role is admin)")
		default:
			return Account{}, fmt.Errorf("unknown role %q (the only role is admin)", role)
		}
	}
	if fields[1] == "" {
		return Account{}, fmt.Errorf("user %s has no password hash", name)
	}
	h, err := parseHash(fields[1], max)
	if err != nil {
		return Account{}, fmt.Errorf("user %s: %v", name, err)
	}
	a.hash = h
	return a, nil
}
