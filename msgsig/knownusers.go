package msgsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"securechat/internal/pinfile"
	"strings"

	"golang.org/x/crypto/ssh"
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

const revokedMarker = pinfile.RevokedMarker

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
	f, err := pinfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("msgsig: known_users: %w", err)
	}
	if f == nil {
		return &KnownUsers{File: path}, nil
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
	line, err := pinfile.Scan(r, func(line int, text string) error {
		u, err := parseKnownUserLine(text)
		if err != nil {
			return err
		}
		u.Line = line
		k.Users = append(k.Users, u)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("msgsig: known_users %s:%d: %v", file, line, err)
	}
	return k, nil
}

func parseKnownUserLine(text string) (KnownUser, error) {
	fields, revoked, err := pinfile.CutMarker(text)
	if err != nil {
		return KnownUser{}, err
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
	// What the file says of who and key is no I/O error: it goes back
	// to the caller as it is.
	var refused error
	lineNo, err := pinfile.Append(path, func(existing []byte) (string, error) {
		var add bool
		add, refused = needsLine(existing, path, who, key, revoke)
		if !add {
			return "", refused
		}
		return FormatKnownUser(who, key, revoke), nil
	})
	if refused != nil {
		return false, refused
	}
	if err != nil {
		return false, fmt.Errorf("msgsig: known_users: %w", err)
	}
	return lineNo > 0, nil
}

// needsLine decides, from the file as it is, whether a line pinning (or
// revoking) key for who is to be added: not when the file says so
// already, and never over a revoked or another pinned key.
func needsLine(existing []byte, path, who string, key ed25519.PublicKey, revoke bool) (bool, error) {
	k, err := ParseKnownUsers(bytes.NewReader(existing), path)
	if err != nil {
		return false, err
	}
	pin, line := k.Check(who, key)
	switch {
	case revoke && pin == PinRevoked && (line.Who == who || line.Who == "*"):
		return false, nil
	case revoke:
		return true, nil
	case pin == PinMatch:
		return false, nil
	case pin == PinRevoked:
		return false, &KeyRevokedError{Who: who, File: path, Line: line.Line, Fingerprint: Fingerprint(key)}
	case pin == PinChanged:
		return false, &KeyChangedError{Who: who, File: path, Line: line.Line, Want: Fingerprint(line.Key), Got: Fingerprint(key)}
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
	lines, err := pinfile.Remove(path, who)
	if err != nil {
		return nil, fmt.Errorf("msgsig: known_users: %w", err)
	}
	var removed []RemovedPin
	for _, l := range lines {
		rp := RemovedPin{Line: l.Line, Text: l.Text}
		if u, err := parseKnownUserLine(strings.TrimSpace(l.Text)); err == nil {
			rp.Key = u.Key
		}
		removed = append(removed, rp)
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
