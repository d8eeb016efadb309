package credstore

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"golang.org/x/crypto/ssh"
)

// The authorized keys file
//
// Public keys for key logins live in a file of their own beside creds.txt
// (creds.keys by default, see [KeysPath]), one key per line, as in
// OpenSSH's authorized_keys with the account name in front:
//
//	alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... alice@laptop
//
// A file of its own, rather than more fields in creds.txt, because an
// account may have several keys and keys without a password, because the
// lines can be pasted from ~/.ssh/*.pub as they are, and because checking
// a key must never wait on the password hashing that creds.txt serves.
// The file follows creds.txt's rules: it is used whole or not at all,
// edited under the same kind of lock and replaced atomically with mode
// 0600. Its contents are public, but whoever can write it can log in as
// anyone, so the server refuses a file that group or others may write.

// KeyType is the one key type accepted, in OpenSSH's name.
const KeyType = ssh.KeyAlgoED25519

// Errors of the key edit operations.
var (
	ErrKeyExists = errors.New("credstore: key already authorized for this user")
	ErrNoSuchKey = errors.New("credstore: no such key")
)

// KeysPath returns the default authorized keys file for the creds file at
// credsPath: the same name with the extension ".keys" (creds.txt ->
// creds.keys).
func KeysPath(credsPath string) string {
	ext := filepath.Ext(credsPath)
	base := strings.TrimSuffix(credsPath, ext)
	if ext == "" || ext == ".keys" || strings.HasSuffix(base, "/") || base == "" {
		return credsPath + ".keys"
	}
	return base + ".keys"
}

// AuthorizedKey is one line of the keys file.
type AuthorizedKey struct {
	User    string
	Key     ed25519.PublicKey
	Comment string
}

// Fingerprint is the key's SHA-256 fingerprint as ssh-keygen -l prints it.
func (k AuthorizedKey) Fingerprint() string {
	pub, _ := ssh.NewPublicKey(k.Key)
	return ssh.FingerprintSHA256(pub)
}

// AuthorizedLine is the key in authorized_keys form, without the user:
// "ssh-ed25519 BASE64 comment".
func (k AuthorizedKey) AuthorizedLine() string {
	pub, _ := ssh.NewPublicKey(k.Key)
	line := KeyType + " " + base64.StdEncoding.EncodeToString(pub.Marshal())
	if k.Comment != "" {
		line += " " + k.Comment
	}
	return line
}

func (k AuthorizedKey) String() string { return k.User + " " + k.AuthorizedLine() }

// ParseAuthorizedKey reads one public key in OpenSSH authorized_keys form
// ("ssh-ed25519 BASE64 [comment]", as in a .pub file) for user. Only
// Ed25519 keys are accepted, and no options.
func ParseAuthorizedKey(user, line string) (AuthorizedKey, error) {
	if err := CheckName(user); err != nil {
		return AuthorizedKey{}, err
	}
	line = strings.TrimSpace(line)
	typ, rest, _ := strings.Cut(line, " ")
	if typ != KeyType {
		if strings.HasPrefix(typ, "ssh-") || strings.HasPrefix(typ, "ecdsa-") || strings.HasPrefix(typ, "sk-") {
			return AuthorizedKey{}, fmt.Errorf("%s keys are not supported (only %s)", typ, KeyType)
		}
		return AuthorizedKey{}, fmt.Errorf("not an OpenSSH public key line (want %q; options are not supported)", KeyType+" AAAA... [comment]")
	}
	b64, comment, _ := strings.Cut(strings.TrimLeft(rest, " \t"), " ")
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return AuthorizedKey{}, errors.New("key is not valid base64")
	}
	pub, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return AuthorizedKey{}, fmt.Errorf("key does not parse: %v", err)
	}
	if pub.Type() != KeyType {
		return AuthorizedKey{}, fmt.Errorf("line says %s but the key is %s", KeyType, pub.Type())
	}
	cp, ok := pub.(ssh.CryptoPublicKey)
	if !ok {
		return AuthorizedKey{}, errors.New("key has no public key value")
	}
	key, ok := cp.CryptoPublicKey().(ed25519.PublicKey)
	if !ok || len(key) != ed25519.PublicKeySize {
		return AuthorizedKey{}, errors.New("key is not an Ed25519 public key")
	}
	comment = strings.TrimSpace(comment)
	for _, r := range comment {
		if unicode.IsControl(r) {
			return AuthorizedKey{}, errors.New("comment contains a control character")
		}
	}
	return AuthorizedKey{User: user, Key: key, Comment: comment}, nil
}

// KeysFile is the parsed text of an authorized keys file, every line kept
// as written so that an edit changes only the lines it means to.
type KeysFile struct {
	lines []keyLine
}

type keyLine struct {
	text string
	key  *AuthorizedKey // nil for comments and blank lines
}

// parseKeysFile parses data completely; the first bad line is the error.
func parseKeysFile(path string, data []byte) (*KeysFile, error) {
	f := &KeysFile{}
	if len(data) == 0 {
		return f, nil
	}
	seen := make(map[string]int) // user + key -> line
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		kl := keyLine{text: line}
		if trimmed := strings.TrimLeft(line, " \t"); trimmed != "" && trimmed[0] != '#' {
			user, rest, _ := strings.Cut(trimmed, " ")
			k, err := ParseAuthorizedKey(user, rest)
			if err != nil {
				return nil, &ParseError{Path: path, Line: i + 1, Err: err}
			}
			id := user + " " + string(k.Key)
			if first, dup := seen[id]; dup {
				return nil, &ParseError{Path: path, Line: i + 1,
					Err: fmt.Errorf("key %s of user %s is listed twice (first on line %d)", k.Fingerprint(), user, first)}
			}
			seen[id] = i + 1
			kl.key = &k
		}
		f.lines = append(f.lines, kl)
	}
	return f, nil
}

// Bytes returns the file text, each line ended by a line break.
func (f *KeysFile) Bytes() []byte {
	var b bytes.Buffer
	for _, l := range f.lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Keys returns the keys of user in file order, or every key if user is "".
func (f *KeysFile) Keys(user string) []AuthorizedKey {
	var out []AuthorizedKey
	for _, l := range f.lines {
		if l.key != nil && (user == "" || l.key.User == user) {
			out = append(out, *l.key)
		}
	}
	return out
}

// Add appends k as a new last line.
func (f *KeysFile) Add(k AuthorizedKey) error {
	if err := CheckName(k.User); err != nil {
		return err
	}
	if len(k.Key) != ed25519.PublicKeySize {
		return errors.New("credstore: not an Ed25519 public key")
	}
	for _, have := range f.Keys(k.User) {
		if have.Key.Equal(k.Key) {
			return fmt.Errorf("%w: %s %s", ErrKeyExists, k.User, k.Fingerprint())
		}
	}
	f.lines = append(f.lines, keyLine{text: k.String(), key: &k})
	return nil
}

// Delete removes the keys of user for which match is true and returns
// them. Removing none is [ErrNoSuchKey].
func (f *KeysFile) Delete(user string, match func(AuthorizedKey) bool) ([]AuthorizedKey, error) {
	var gone []AuthorizedKey
	kept := f.lines[:0]
	for _, l := range f.lines {
		if l.key != nil && l.key.User == user && match(*l.key) {
			gone = append(gone, *l.key)
			continue
		}
		kept = append(kept, l)
	}
	f.lines = kept
	if len(gone) == 0 {
		return nil, fmt.Errorf("%w for user %s", ErrNoSuchKey, user)
	}
	return gone, nil
}

// ReadKeysFile parses the keys file at path; a missing file is an empty
// one.
func ReadKeysFile(path string) (*KeysFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &KeysFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credstore: %w", err)
	}
	return parseKeysFile(path, data)
}

// EditKeys changes the keys file at path as [Edit] changes a creds file:
// under an exclusive lock, reading the file afresh, and replacing it
// atomically with mode 0600 if fn succeeds. A missing file is created.
func EditKeys(path string, fn func(*KeysFile) error) error {
	return lockedEdit(path, func(data []byte) (*KeysFile, error) { return parseKeysFile(path, data) }, fn)
}

// KeyStore holds the authorized keys the server checks key logins
// against. It is safe for concurrent use; its VerifyPublicKey method
// implements handshake.PublicKeyVerifier. Checking a key is a map lookup:
// it never takes a password hashing slot.
type KeyStore struct {
	path string
	mu   sync.Mutex // serializes Reload
	keys atomic.Pointer[map[string][]ed25519.PublicKey]
}

// LoadKeys reads the authorized keys file at path. A missing file means no
// keys (it may be created later and picked up by Reload); a malformed one,
// or one that group or others may write, is an error.
func LoadKeys(path string) (*KeyStore, error) {
	k := &KeyStore{path: path}
	m, err := k.read()
	if err != nil {
		return nil, err
	}
	k.keys.Store(&m)
	return k, nil
}

// Path is the file the store reads.
func (k *KeyStore) Path() string { return k.path }

func (k *KeyStore) read() (map[string][]ed25519.PublicKey, error) {
	data, err := readGuarded(k.path, 0o022, func(m fs.FileMode) error { return &KeysModeError{Path: k.path, Mode: m} })
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]ed25519.PublicKey{}, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := parseKeysFile(k.path, data)
	if err != nil {
		return nil, err
	}
	m := make(map[string][]ed25519.PublicKey)
	for _, ak := range f.Keys("") {
		m[ak.User] = append(m[ak.User], ak.Key)
	}
	return m, nil
}

// KeysModeError means the keys file may be written by group or others.
type KeysModeError struct {
	Path string
	Mode fs.FileMode
}

func (e *KeysModeError) Error() string {
	return fmt.Sprintf("credstore: %s: permissions %04o are too open (group and others must not write it; chmod 600 %s)",
		e.Path, e.Mode.Perm(), e.Path)
}

// Reload reads the file again and, only if all of it is valid, puts it in
// force. It returns the users who lost a key, sorted: sessions they logged
// in with that key should end. On error the old keys stay in force.
func (k *KeyStore) Reload() (lost []string, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	m, err := k.read()
	if err != nil {
		return nil, err
	}
	old := *k.keys.Load()
	for user, keys := range old {
		for _, key := range keys {
			if !containsKey(m[user], key) {
				lost = append(lost, user)
				break
			}
		}
	}
	sort.Strings(lost)
	k.keys.Store(&m)
	return lost, nil
}

// Users returns the names that have at least one key, sorted.
func (k *KeyStore) Users() []string {
	m := *k.keys.Load()
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// VerifyPublicKey returns nil if key is authorized for user, and otherwise
// an error wrapping [ErrAuthFailed] that says which (for the server log).
func (k *KeyStore) VerifyPublicKey(_ context.Context, user string, key ed25519.PublicKey) error {
	keys, ok := (*k.keys.Load())[user]
	switch {
	case !ok:
		return fmt.Errorf("%w: no keys for user %q", ErrAuthFailed, user)
	case !containsKey(keys, key):
		pub, _ := ssh.NewPublicKey(key)
		return fmt.Errorf("%w: key %s is not authorized for user %s", ErrAuthFailed, ssh.FingerprintSHA256(pub), user)
	}
	return nil
}

func containsKey(keys []ed25519.PublicKey, key ed25519.PublicKey) bool {
	for _, k := range keys {
		if k.Equal(key) {
			return true
		}
	}
	return false
}
