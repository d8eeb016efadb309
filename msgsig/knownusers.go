package msgsig

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"securechat/internal/atomicfile"
)

// The known_users file (PROTOCOL.md §13.16.6) pins each user's signing key
// per server, as known_hosts pins host keys (§7.3):
//
//	alice@chat.example.org:7000 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... [comment]
//	@revoked alice@chat.example.org:7000 ssh-ed25519 AAAA...
//	@revoked * ssh-ed25519 AAAA...
//
// The key is in OpenSSH's public key form, so a line can be made from a
// user's .pub file; user names belong to one server, hence user@host:port.

// keyType is the one key type of known_users lines, OpenSSH's name for it.
const keyType = ssh.KeyAlgoED25519

const revokedMarker = "@revoked"

// KnownUser is one parsed known_users line.
type KnownUser struct {
	// Who is "user@host:port", or "*" (every user of every server) on a
	// @revoked line.
	Who     string
	Key     ed25519.PublicKey
	Line    int
	Revoked bool
}

// KnownUsers is the content of one known_users file.
type KnownUsers struct {
	File  string
	Users []KnownUser
}

// UserAt names user of the server at hostport as known_users does.
func UserAt(user, hostport string) string { return user + "@" + hostport }

// LoadKnownUsers reads the file at path. A missing file is an empty set:
// the first pinned key creates it.
func LoadKnownUsers(path string) (*KnownUsers, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &KnownUsers{File: path}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("msgsig: known_users: %w", err)
	}
	defer f.Close()
	return ParseKnownUsers(f, path)
}

// ParseKnownUsers parses known_users lines from r; file names the source
// in errors ("msgsig: known_users FILE:LINE: ..."). A line that does not
// parse makes the whole file invalid, as in known_hosts: a file the client
// cannot read whole could hide a pin or a revocation.
func ParseKnownUsers(r io.Reader, file string) (*KnownUsers, error) {
	k := &KnownUsers{File: file}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		u, err := parseKnownUserLine(text)
		if err != nil {
			return nil, fmt.Errorf("msgsig: known_users %s:%d: %v", file, line, err)
		}
		u.Line = line
		k.Users = append(k.Users, u)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("msgsig: known_users %s:%d: %v", file, line+1, err)
	}
	return k, nil
}

func parseKnownUserLine(text string) (KnownUser, error) {
	fields := strings.Fields(text)
	revoked := false
	if len(fields) > 0 && strings.HasPrefix(fields[0], "@") {
		if fields[0] != revokedMarker {
			return KnownUser{}, fmt.Errorf("unknown marker %q (only %s is known)", fields[0], revokedMarker)
		}
		revoked = true
		fields = fields[1:]
	}
	// Anything after the key is a comment, as in a .pub file.
	if len(fields) < 3 {
		return KnownUser{}, fmt.Errorf("want \"[%s] user@host:port %s KEY [comment]\", got %d fields", revokedMarker, keyType, len(fields))
	}
	if !revoked || fields[0] != "*" {
		if err := checkWho(fields[0]); err != nil {
			return KnownUser{}, err
		}
	}
	if fields[1] != keyType {
		return KnownUser{}, fmt.Errorf("unknown key type %q (want %s)", fields[1], keyType)
	}
	key, err := parseSSHKey(fields[2])
	if err != nil {
		return KnownUser{}, err
	}
	return KnownUser{Who: fields[0], Key: key, Revoked: revoked}, nil
}

func parseSSHKey(b64 string) (ed25519.PublicKey, error) {
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("key is not valid base64")
	}
	pub, err := ssh.ParsePublicKey(blob)
	if err != nil || pub.Type() != keyType {
		return nil, errors.New("key is not an OpenSSH ssh-ed25519 public key")
	}
	cp, ok := pub.(ssh.CryptoPublicKey)
	if !ok {
		return nil, errors.New("key has no public key value")
	}
	key, ok := cp.CryptoPublicKey().(ed25519.PublicKey)
	if !ok || len(key) != ed25519.PublicKeySize {
		return nil, errors.New("key is not an Ed25519 public key")
	}
	return key, nil
}

// checkWho accepts "user@host:port" with a user name of §13.8.
func checkWho(who string) error {
	user, hp, ok := strings.Cut(who, "@")
	if !ok || !validUser(user) {
		return fmt.Errorf("bad user@host:port %q", who)
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("bad user@host:port %q", who)
	}
	return nil
}

// Lookup returns the lines that pin a trusted key for who, in file order;
// @revoked lines are not among them.
func (k *KnownUsers) Lookup(who string) []KnownUser {
	var out []KnownUser
	for _, u := range k.Users {
		if u.Who == who && !u.Revoked {
			out = append(out, u)
		}
	}
	return out
}

// IsRevoked returns the first @revoked line that covers key for who.
func (k *KnownUsers) IsRevoked(who string, key ed25519.PublicKey) (KnownUser, bool) {
	for _, u := range k.Users {
		if u.Revoked && (u.Who == who || u.Who == "*") && subtle.ConstantTimeCompare(u.Key, key) == 1 {
			return u, true
		}
	}
	return KnownUser{}, false
}

// Pin is what the file says about one user's key.
type Pin int

const (
	// PinUnknown: the file pins no key for the user.
	PinUnknown Pin = iota
	// PinMatch: the file pins this key for the user.
	PinMatch
	// PinChanged: the file pins other keys for the user, not this one.
	PinChanged
	// PinRevoked: a @revoked line covers this key, whatever else is listed.
	PinRevoked
)

// Check says what the file says about key for who, and the line that
// says it (for PinChanged, the first line pinning another key).
func (k *KnownUsers) Check(who string, key ed25519.PublicKey) (Pin, KnownUser) {
	if u, ok := k.IsRevoked(who, key); ok {
		return PinRevoked, u
	}
	lines := k.Lookup(who)
	for _, u := range lines {
		if subtle.ConstantTimeCompare(u.Key, key) == 1 {
			return PinMatch, u
		}
	}
	if len(lines) > 0 {
		return PinChanged, lines[0]
	}
	return PinUnknown, KnownUser{}
}

// FormatKnownUser returns the known_users line pinning key for who (or,
// revoked, revoking it), without the newline.
func FormatKnownUser(who string, key ed25519.PublicKey, revoked bool) string {
	pub, _ := ssh.NewPublicKey(key)
	line := who + " " + keyType + " " + base64.StdEncoding.EncodeToString(pub.Marshal())
	if revoked {
		line = revokedMarker + " " + line
	}
	return line
}

// Fingerprint is the key's SHA-256 fingerprint as ssh-keygen -l prints it,
// so that users can compare it with their own key's.
func Fingerprint(key ed25519.PublicKey) string {
	pub, err := ssh.NewPublicKey(key)
	if err != nil {
		return "(not an Ed25519 key)"
	}
	return ssh.FingerprintSHA256(pub)
}

// AddKnownUser pins key for who by appending a line to the file at path,
// unless the file pins it already. It creates the file with mode 0600 and
// its directory with 0700. It never pins a key the file revokes
// (*KeyRevokedError), nor a second key for a user pinned with another
// (*KeyChangedError): a changed key is accepted only by removing the old
// pin first (RemoveKnownUser). The file is read again under the append,
// so a key pinned by another client process meanwhile counts.
func AddKnownUser(path, who string, key ed25519.PublicKey) (added bool, err error) {
	return appendLine(path, who, key, false)
}

// RevokeKnownUser appends a @revoked line for who ("*": every user of every
// server) and key, unless the file revokes it already for who. From then
// on messages signed with key fail under every policy.
func RevokeKnownUser(path, who string, key ed25519.PublicKey) (added bool, err error) {
	return appendLine(path, who, key, true)
}

func appendLine(path, who string, key ed25519.PublicKey, revoke bool) (bool, error) {
	if !(revoke && who == "*") {
		if err := checkWho(who); err != nil {
			return false, fmt.Errorf("msgsig: known_users: %v", err)
		}
	}
	if len(key) != ed25519.PublicKeySize {
		return false, errors.New("msgsig: known_users: key is not 32 bytes")
	}
	unlock, err := atomicfile.Lock(path)
	if err != nil {
		return false, fmt.Errorf("msgsig: known_users: %w", err)
	}
	defer unlock()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return false, fmt.Errorf("msgsig: known_users: %w", err)
	}
	defer f.Close()
	existing, err := io.ReadAll(f)
	if err != nil {
		return false, fmt.Errorf("msgsig: known_users: %w", err)
	}
	k, err := ParseKnownUsers(bytes.NewReader(existing), path)
	if err != nil {
		return false, err
	}
	pin, line := k.Check(who, key)
	switch {
	case revoke && pin == PinRevoked && (line.Who == who || line.Who == "*"):
		return false, nil
	case revoke:
	case pin == PinMatch:
		return false, nil
	case pin == PinRevoked:
		return false, &KeyRevokedError{Who: who, File: path, Line: line.Line, Fingerprint: Fingerprint(key)}
	case pin == PinChanged:
		return false, &KeyChangedError{Who: who, File: path, Line: line.Line, Want: Fingerprint(line.Key), Got: Fingerprint(key)}
	}
	text := FormatKnownUser(who, key, revoke) + "\n"
	// A file edited by hand may lack its final newline; do not glue our
	// line onto its last one.
	if len(existing) > 0 && existing[len(existing)-1] != '\n' {
		text = "\n" + text
	}
	if _, err := f.WriteString(text); err != nil {
		return false, fmt.Errorf("msgsig: known_users: %w", err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("msgsig: known_users: %w", err)
	}
	return true, nil
}

// RemovedPin is a line RemoveKnownUser removed.
type RemovedPin struct {
	Line int               // its number in the file before
	Text string            // the line, without its newline
	Key  ed25519.PublicKey // the key it pinned; nil if the line did not parse
}

// RemoveKnownUser removes every pin for who from the file at path, as
// ssh-keygen -R does for hosts, and returns the lines it removed, so that
// the caller can show which keys were forgotten. @revoked lines stay: a
// revocation is undone only by editing the file. The file is replaced
// atomically and keeps mode 0600; nothing is written when no line matches.
// Like the appends, it holds the file's lock (path+".lock"), so a pin
// another client writes meanwhile is not lost.
func RemoveKnownUser(path, who string) ([]RemovedPin, error) {
	if err := checkWho(who); err != nil {
		return nil, fmt.Errorf("msgsig: known_users: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("msgsig: known_users: %w", err)
	}
	unlock, err := atomicfile.Lock(path)
	if err != nil {
		return nil, fmt.Errorf("msgsig: known_users: %w", err)
	}
	defer unlock()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("msgsig: known_users: %w", err)
	}
	var kept strings.Builder
	var removed []RemovedPin
	for i, line := range strings.SplitAfter(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == who {
			text := strings.TrimRight(line, "\r\n")
			rp := RemovedPin{Line: i + 1, Text: text}
			if u, err := parseKnownUserLine(strings.TrimSpace(text)); err == nil {
				rp.Key = u.Key
			}
			removed = append(removed, rp)
			continue
		}
		kept.WriteString(line)
	}
	if len(removed) == 0 {
		return nil, nil
	}
	if err := atomicfile.Replace(path, []byte(kept.String())); err != nil {
		return nil, fmt.Errorf("msgsig: known_users: %w", err)
	}
	return removed, nil
}

// KeyChangedError reports a user whose message is signed by a key other
// than the one known_users pins for them. Like a changed host key it is
// never accepted at a prompt: the user removes the old pin on purpose.
type KeyChangedError struct {
	Who  string
	File string
	Line int
	Want string // fingerprint pinned in File
	Got  string // fingerprint of the key that signed
}

func (e *KeyChangedError) Error() string {
	return fmt.Sprintf("msgsig: the signing key of %s has CHANGED: %s:%d pins %s, the message is signed by %s",
		e.Who, e.File, e.Line, e.Want, e.Got)
}

// KeyRevokedError reports a key that known_users marks @revoked.
type KeyRevokedError struct {
	Who         string
	File        string
	Line        int
	Fingerprint string
}

func (e *KeyRevokedError) Error() string {
	return fmt.Sprintf("msgsig: the signing key %s of %s is REVOKED (%s:%d)", e.Fingerprint, e.Who, e.File, e.Line)
}

func dirOf(path string) string { return filepath.Dir(path) }
