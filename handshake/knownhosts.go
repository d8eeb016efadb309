package handshake

import (
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"securechat/internal/pinfile"
	"strings"
	"sync"
)

// knownHostKeyType is the key type field of a known_hosts line (PROTOCOL.md §7.3).
const knownHostKeyType = "securechat-ed25519"

// HostKeyPolicy says what to do with a server that known_hosts does not list,
// like OpenSSH's StrictHostKeyChecking. A server listed with a different key
// is refused under every policy.
type HostKeyPolicy int

const (
	// PolicyAsk asks the user, showing the fingerprint (OpenSSH "ask").
	PolicyAsk HostKeyPolicy = iota
	// PolicyAcceptNew records an unknown key without asking (OpenSSH "accept-new").
	PolicyAcceptNew
	// PolicyStrict refuses unknown hosts (OpenSSH "yes").
	PolicyStrict
)

func (p HostKeyPolicy) String() string {
	switch p {
	case PolicyAsk:
		return "ask"
	case PolicyAcceptNew:
		return "accept-new"
	case PolicyStrict:
		return "strict"
	}
	return fmt.Sprintf("HostKeyPolicy(%d)", int(p))
}

// ParseHostKeyPolicy accepts "ask", "accept-new" and "strict".
func ParseHostKeyPolicy(s string) (HostKeyPolicy, error) {
	for _, p := range []HostKeyPolicy{PolicyAsk, PolicyAcceptNew, PolicyStrict} {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("handshake: unknown host key policy %q (want ask, accept-new or strict)", s)
}

// HostKeyChangedError reports a server whose key differs from the one
// known_hosts lists for it. It is never overridable at a prompt: the user has
// to edit File at Line.
type HostKeyChangedError struct {
	HostPort string
	File     string
	Line     int
	Want     string // fingerprint recorded in File
	Got      string // fingerprint the server presented
}

func (e *HostKeyChangedError) Error() string {
	return fmt.Sprintf("handshake: host key for %s has changed: %s:%d lists %s, the server presented %s",
		e.HostPort, e.File, e.Line, e.Want, e.Got)
}

// HostKeyUnknownError reports a server that known_hosts does not list when
// the policy does not allow adding it.
type HostKeyUnknownError struct {
	HostPort    string
	File        string
	Fingerprint string
}

func (e *HostKeyUnknownError) Error() string {
	return fmt.Sprintf("handshake: no host key for %s in %s (server presented %s) and host key checking is strict",
		e.HostPort, e.File, e.Fingerprint)
}

// PinnedKeyMismatchError reports a server whose key does not have the
// fingerprint the user pinned in advance.
type PinnedKeyMismatchError struct {
	HostPort string
	Want     string
	Got      string
}

func (e *PinnedKeyMismatchError) Error() string {
	if e.HostPort == "" {
		return fmt.Sprintf("handshake: host key is %s, not the pinned %s", e.Got, e.Want)
	}
	return fmt.Sprintf("handshake: host key for %s is %s, not the pinned %s", e.HostPort, e.Got, e.Want)
}

// HostKeyRevokedError reports a server whose key known_hosts marks
// @revoked, for its host:port or for every host ("*"). A revoked key is
// refused under every policy, even where another line lists it as valid.
type HostKeyRevokedError struct {
	HostPort    string
	File        string
	Line        int
	Fingerprint string
}

func (e *HostKeyRevokedError) Error() string {
	return fmt.Sprintf("handshake: host key %s of %s is REVOKED (%s:%d)", e.Fingerprint, e.HostPort, e.File, e.Line)
}

// ErrHostKeyRejected is returned when the user declines an unknown host key.
var ErrHostKeyRejected = errors.New("handshake: host key not accepted")

// KnownHost is one parsed known_hosts line.
type KnownHost struct {
	HostPort string // "*" only on a revoked line: every host
	Key      ed25519.PublicKey
	Line     int
	// Revoked marks a "@revoked" line: the key is never trusted.
	Revoked bool
}

// revokedMarker starts a line that revokes a key (PROTOCOL.md §7.3), as in
// OpenSSH's known_hosts.
const revokedMarker = pinfile.RevokedMarker

// KnownHosts is the content of one known_hosts file.
type KnownHosts struct {
	File  string
	Hosts []KnownHost
}

// LoadKnownHosts reads the file at path. A missing file is an empty set: the
// first accepted key creates it.
func LoadKnownHosts(path string) (*KnownHosts, error) {
	f, err := pinfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("handshake: known_hosts: %w", err)
	}
	if f == nil {
		return &KnownHosts{File: path}, nil
	}
	defer f.Close()
	return ParseKnownHosts(f, path)
}

// ParseKnownHosts parses known_hosts lines from r; file names the source in
// errors ("handshake: known_hosts FILE:LINE: ..."). Blank lines and lines
// starting with '#' are skipped; anything else must be exactly
// "host:port securechat-ed25519 BASE64KEY", optionally after the marker
// "@revoked" (whose host may also be "*", every host).
func ParseKnownHosts(r io.Reader, file string) (*KnownHosts, error) {
	k := &KnownHosts{File: file}
	line, err := pinfile.Scan(r, func(line int, text string) error {
		h, err := parseKnownHostLine(text)
		if err != nil {
			return err
		}
		h.Line = line
		k.Hosts = append(k.Hosts, h)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("handshake: known_hosts %s:%d: %v", file, line, err)
	}
	return k, nil
}

func parseKnownHostLine(text string) (KnownHost, error) {
	fields, revoked, err := pinfile.CutMarker(text)
	if err != nil {
		return KnownHost{}, err
	}
	if len(fields) != 3 {
		return KnownHost{}, fmt.Errorf("want \"[%s] host:port %s KEY\", got %d fields", revokedMarker, knownHostKeyType, len(fields))
	}
	if !revoked || fields[0] != "*" {
		if err := checkHostPort(fields[0]); err != nil {
			return KnownHost{}, err
		}
	}
	if fields[1] != knownHostKeyType {
		return KnownHost{}, fmt.Errorf("unknown key type %q (want %s)", fields[1], knownHostKeyType)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(fields[2])
	if err != nil || len(key) != ed25519.PublicKeySize {
		return KnownHost{}, errors.New("key is not a base64 32-byte Ed25519 public key")
	}
	return KnownHost{HostPort: fields[0], Key: key, Revoked: revoked}, nil
}

func checkHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("bad host:port %q", hp)
	}
	return nil
}

// Lookup returns the lines listing hostport with a trusted key, in file
// order; @revoked lines are not among them.
func (k *KnownHosts) Lookup(hostport string) []KnownHost {
	var out []KnownHost
	for _, h := range k.Hosts {
		if h.HostPort == hostport && !h.Revoked {
			out = append(out, h)
		}
	}
	return out
}

// revoked returns the first @revoked line that covers key for hostport.
func (k *KnownHosts) revoked(hostport string, key ed25519.PublicKey) (KnownHost, bool) {
	for _, h := range k.Hosts {
		if h.Revoked && (h.HostPort == hostport || h.HostPort == "*") &&
			subtle.ConstantTimeCompare(h.Key, key) == 1 {
			return h, true
		}
	}
	return KnownHost{}, false
}

// Check returns a *HostKeyRevokedError if a @revoked line covers key for
// hostport, whatever else the file says; otherwise nil if hostport is
// listed with key, a *HostKeyChangedError if it is listed only with other
// keys, and a *HostKeyUnknownError if it is not listed at all.
func (k *KnownHosts) Check(hostport string, key ed25519.PublicKey) error {
	if h, ok := k.revoked(hostport, key); ok {
		return &HostKeyRevokedError{HostPort: hostport, File: k.File, Line: h.Line, Fingerprint: Fingerprint(key)}
	}
	lines := k.Lookup(hostport)
	for _, h := range lines {
		if subtle.ConstantTimeCompare(h.Key, key) == 1 {
			return nil
		}
	}
	if len(lines) > 0 {
		return &HostKeyChangedError{
			HostPort: hostport, File: k.File, Line: lines[0].Line,
			Want: Fingerprint(lines[0].Key), Got: Fingerprint(key),
		}
	}
	return &HostKeyUnknownError{HostPort: hostport, File: k.File, Fingerprint: Fingerprint(key)}
}

// FormatKnownHost returns the known_hosts line for hostport and key, without
// the newline.
func FormatKnownHost(hostport string, key ed25519.PublicKey) string {
	return hostport + " " + knownHostKeyType + " " + base64.StdEncoding.EncodeToString(key)
}

// Add appends a line for hostport and key to the file, creating it with mode
// 0600 (and its directory with 0700) if needed.
func (k *KnownHosts) Add(hostport string, key ed25519.PublicKey) error {
	if err := checkHostPort(hostport); err != nil {
		return fmt.Errorf("handshake: known_hosts: %v", err)
	}
	if len(key) != ed25519.PublicKeySize {
		return errors.New("handshake: known_hosts: host key is not 32 bytes")
	}
	lineNo, err := pinfile.Append(k.File, func([]byte) (string, error) {
		return FormatKnownHost(hostport, key), nil
	})
	if err != nil {
		return fmt.Errorf("handshake: known_hosts: %w", err)
	}
	k.Hosts = append(k.Hosts, KnownHost{HostPort: hostport, Key: key, Line: lineNo})
	return nil
}

// KnownHostsChecker checks the host key of one server, at hostport as the
// user gave it, against a known_hosts file, and records a key accepted for
// the first time only once the server has proved it holds it (PROTOCOL.md
// §7.3). Check is a ClientConfig.HostKeyCallback and never writes; Record,
// called from ClientConfig.HostKeyVerified, appends the key. So a server
// that cannot sign the transcript or finish the handshake pins nothing.
//
// RecordNext records the next key a server announces during a host key
// rotation (PROTOCOL.md §7.5), for a current key that went through Record.
//
// Check decides:
//
//   - marked @revoked (for hostport or "*"): *HostKeyRevokedError, under
//     every policy and whatever the pin;
//   - listed with the same key: accepted (and checked against pinned, if set);
//   - listed with another key: *HostKeyChangedError, under every policy;
//   - not listed, pinned set ("SHA256:..."): accepted if the fingerprint
//     matches, *PinnedKeyMismatchError if not;
//   - not listed, no pin: by policy. PolicyStrict returns
//     *HostKeyUnknownError, PolicyAcceptNew accepts, PolicyAsk calls
//     ask(hostport, fingerprint) and accepts on yes or returns
//     ErrHostKeyRejected on no.
//
// The file is read on every call, so a key recorded by another process
// counts. A checker may serve one connection after another (reconnects)
// and is safe for concurrent use.
type KnownHostsChecker struct {
	file     string
	hostport string
	policy   HostKeyPolicy
	pinned   string
	ask      func(hostport, fingerprint string) (bool, error)

	mu sync.Mutex
	// accepted holds the unlisted keys Check let through, until Record
	// writes them or they are accepted again.
	accepted map[string]bool
	// verified holds the keys passed to Record: keys a server proved it
	// holds, which may vouch for a next key (RecordNext).
	verified map[string]bool
}

// NewKnownHostsChecker returns a checker for the server at hostport using
// the known_hosts file at file. ask is needed for PolicyAsk unless pinned is
// set.
func NewKnownHostsChecker(file, hostport string, policy HostKeyPolicy, pinned string,
	ask func(hostport, fingerprint string) (bool, error)) (*KnownHostsChecker, error) {
	if err := checkHostPort(hostport); err != nil {
		return nil, fmt.Errorf("handshake: %v", err)
	}
	if pinned != "" {
		if err := checkFingerprint(pinned); err != nil {
			return nil, err
		}
	}
	switch policy {
	case PolicyAsk:
		if ask == nil && pinned == "" {
			return nil, errors.New("handshake: host key policy ask needs a way to ask")
		}
	case PolicyAcceptNew, PolicyStrict:
	default:
		return nil, fmt.Errorf("handshake: unknown host key policy %v", policy)
	}
	return &KnownHostsChecker{
		file: file, hostport: hostport, policy: policy, pinned: pinned, ask: ask,
		accepted: map[string]bool{}, verified: map[string]bool{},
	}, nil
}

// Check decides whether key is trusted for the server, asking if the policy
// says so. It never writes the file: a key it accepts that the file does
// not list is remembered for Record.
func (k *KnownHostsChecker) Check(key ed25519.PublicKey) error {
	kh, err := LoadKnownHosts(k.file)
	if err != nil {
		return err
	}
	fp := Fingerprint(key)
	err = kh.Check(k.hostport, key)
	var unknown *HostKeyUnknownError
	switch {
	case err == nil:
		if k.pinned != "" && k.pinned != fp {
			return &PinnedKeyMismatchError{HostPort: k.hostport, Want: k.pinned, Got: fp}
		}
		return nil
	case !errors.As(err, &unknown):
		return err
	}
	switch {
	case k.pinned != "":
		if k.pinned != fp {
			return &PinnedKeyMismatchError{HostPort: k.hostport, Want: k.pinned, Got: fp}
		}
	case k.policy == PolicyStrict:
		return err
	case k.policy == PolicyAsk:
		ok, err := k.ask(k.hostport, fp)
		if err != nil {
			return err
		}
		if !ok {
			return ErrHostKeyRejected
		}
	}
	k.mu.Lock()
	k.accepted[string(key)] = true
	k.mu.Unlock()
	return nil
}

// Record appends key to the file if Check accepted it as a new key, and
// reports whether it did. Call it only once the server has proved that it
// holds key: after the signature and its FINISHED verified. A key that is
// listed by now (another process recorded it) is not added again; one
// listed with another key by now is refused with *HostKeyChangedError.
func (k *KnownHostsChecker) Record(key ed25519.PublicKey) (added bool, err error) {
	k.mu.Lock()
	k.verified[string(key)] = true
	accepted := k.accepted[string(key)]
	delete(k.accepted, string(key))
	k.mu.Unlock()
	if !accepted {
		return false, nil
	}
	kh, err := LoadKnownHosts(k.file)
	if err != nil {
		return false, err
	}
	var unknown *HostKeyUnknownError
	if err := kh.Check(k.hostport, key); !errors.As(err, &unknown) {
		return false, err
	}
	if err := kh.Add(k.hostport, key); err != nil {
		return false, err
	}
	return true, nil
}

// RecordNext appends next, the key that a server authenticated by current
// announced and proved (VerifyHostKeyAnnouncement), to the file for the
// same host:port, without asking, under every policy (PROTOCOL.md §7.5).
// It refuses unless current went through Record in this checker (its
// server signed the handshake and sent a valid FINISHED) and the file
// still trusts current for this host:port; and it never adds a key the
// file marks @revoked (*HostKeyRevokedError). added is false if next is
// listed already.
func (k *KnownHostsChecker) RecordNext(current, next ed25519.PublicKey) (added bool, err error) {
	k.mu.Lock()
	verified := k.verified[string(current)]
	k.mu.Unlock()
	if !verified {
		return false, errors.New("handshake: a next host key can only be recorded for a current key the server proved")
	}
	kh, err := LoadKnownHosts(k.file)
	if err != nil {
		return false, err
	}
	if err := kh.Check(k.hostport, current); err != nil {
		return false, fmt.Errorf("handshake: not recording the next host key of %s: the current key is not trusted: %w", k.hostport, err)
	}
	var revoked *HostKeyRevokedError
	switch err := kh.Check(k.hostport, next); {
	case err == nil:
		return false, nil
	case errors.As(err, &revoked):
		return false, err
	}
	if err := kh.Add(k.hostport, next); err != nil {
		return false, err
	}
	return true, nil
}

// RemovedLine is one line that RemoveKnownHost took out of the file.
type RemovedLine = pinfile.Removed

// RemoveKnownHost removes every line for hostport from the known_hosts
// file at path, as ssh-keygen -R does, and returns them. Comments, other
// hosts, lines it cannot parse for other hosts, and @revoked lines stay:
// a revocation is undone only by editing the file. The file is replaced
// atomically (a temporary file in the same directory, synced, then
// renamed over it) and keeps mode 0600. Nothing is written when no line
// matches. It holds the file's lock (path+".lock"), as [KnownHosts.Add]
// does, so a key another client records meanwhile is not lost.
func RemoveKnownHost(path, hostport string) ([]RemovedLine, error) {
	if err := checkHostPort(hostport); err != nil {
		return nil, fmt.Errorf("handshake: %v", err)
	}
	removed, err := pinfile.Remove(path, hostport)
	if err != nil {
		return nil, fmt.Errorf("handshake: known_hosts: %w", err)
	}
	return removed, nil
}

// checkFingerprint accepts what Fingerprint prints: "SHA256:" and 43
// characters of unpadded base64.
func checkFingerprint(fp string) error {
	b64, ok := strings.CutPrefix(fp, "SHA256:")
	if ok {
		if sum, err := base64.RawStdEncoding.Strict().DecodeString(b64); err == nil && len(sum) == 32 {
			return nil
		}
	}
	return fmt.Errorf("handshake: pinned fingerprint %q is not of the form SHA256:<43 base64 characters>", fp)
}
