package msgsig

import (
	"bufio"
	"crypto/ed25519"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"securechat/internal/atomicfile"
)

// Policy says what to do with a user's key that known_users does not pin
// yet, as for host keys (OpenSSH's StrictHostKeyChecking). A user pinned
// with another key fails under every policy.
type Policy int

const (
	// PolicyAsk asks the user, showing the fingerprint.
	PolicyAsk Policy = iota
	// PolicyAcceptNew pins a new user's key without asking.
	PolicyAcceptNew
	// PolicyStrict pins nothing: messages signed by a key not pinned fail.
	PolicyStrict
)

func (p Policy) String() string {
	switch p {
	case PolicyAsk:
		return "ask"
	case PolicyAcceptNew:
		return "accept-new"
	case PolicyStrict:
		return "strict"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy accepts "ask", "accept-new" and "strict".
func ParsePolicy(s string) (Policy, error) {
	for _, p := range []Policy{PolicyAsk, PolicyAcceptNew, PolicyStrict} {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("msgsig: unknown user key policy %q (want ask, accept-new or strict)", s)
}

// Status is the mark a message gets (PROTOCOL.md §13.16.7).
type Status int

const (
	// Unsigned: no signature, from a user with no pinned key (a password
	// account). Shown plainly, without a mark of trust.
	Unsigned Status = iota
	// Verified: signed by the key pinned for the sender, over exactly what
	// is shown, and not a replay.
	Verified
	// Failed: anything else. Shown with a loud warning, the text as suspect.
	Failed
)

func (s Status) String() string {
	switch s {
	case Unsigned:
		return "unsigned"
	case Verified:
		return "verified"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Reason says why a message failed.
type Reason int

const (
	ReasonNone Reason = iota
	// ReasonMalformed: key, sig, ctr and cts are not all present and
	// well-formed.
	ReasonMalformed
	// ReasonBadSignature: the signature does not verify over the message
	// as received: forged, altered, or replayed into another room, to
	// another recipient, or under another name or kind.
	ReasonBadSignature
	// ReasonSignatureMissing: unsigned, from a user this client has a key
	// pinned for (a stripped signature, or a password session).
	ReasonSignatureMissing
	// ReasonKeyChanged: signed by a key other than the one pinned.
	ReasonKeyChanged
	// ReasonKeyRevoked: signed by a key known_users marks @revoked.
	ReasonKeyRevoked
	// ReasonKeyUnknown: signed by a key not pinned, under PolicyStrict.
	ReasonKeyUnknown
	// ReasonKeyRejected: signed by a key not pinned, which the user
	// declined to trust when asked.
	ReasonKeyRejected
	// ReasonReplayed: the counter is not above what this key already
	// signed (live), or not above the previous message of the same replay.
	ReasonReplayed
	// ReasonStale: a live message signed longer ago than the stale limit.
	ReasonStale
	// ReasonMisdirected: a DM neither to nor from this user.
	ReasonMisdirected
	// ReasonKeyPending: signed by a key not pinned, about which the user
	// has been asked and has not answered yet (Config.Ask returned
	// ErrAskLater). Not verified, and nothing is remembered: the next
	// message asks again.
	ReasonKeyPending
)

// ErrAskLater is what Config.Ask returns when the question cannot be
// answered at once (an interactive client asks above its prompt and goes
// on showing messages): the message fails with ReasonKeyPending, and no
// refusal is remembered.
var ErrAskLater = errors.New("msgsig: the user has not answered yet")

var reasonNames = [...]string{
	ReasonNone:             "",
	ReasonMalformed:        "malformed",
	ReasonBadSignature:     "bad_signature",
	ReasonSignatureMissing: "signature_missing",
	ReasonKeyChanged:       "key_changed",
	ReasonKeyRevoked:       "key_revoked",
	ReasonKeyUnknown:       "key_unknown",
	ReasonKeyRejected:      "key_rejected",
	ReasonReplayed:         "replayed",
	ReasonStale:            "stale",
	ReasonMisdirected:      "misdirected",
	ReasonKeyPending:       "key_pending",
}

// String is the reason's name in script mode's JSON ("" for none).
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Result is a Verifier's judgement of one message.
type Result struct {
	Status Status
	Reason Reason
	// Key is the key that signed, when the signature verified.
	Key ed25519.PublicKey
	// Pinned is set when this message pinned its sender's key for the
	// first time (the client says so once).
	Pinned bool
	// Err says more for people: *KeyChangedError, *KeyRevokedError, or a
	// known_users file that could not be read or written.
	Err error
}

// Mark is the compact mark the interactive client shows before a message:
// "✓" verified, "" unsigned, "!!" failed.
func (r Result) Mark() string {
	switch r.Status {
	case Verified:
		return "✓"
	case Failed:
		return "!!"
	}
	return ""
}

// Event is what a Verifier needs of a chat msg event (PROTOCOL.md §13.7,
// §13.16.3): the wire fields as received, the signature fields still in
// their wire form.
type Event struct {
	Kind    string // msg, me or dm; other kinds are not judged
	Room    string // msg, me
	To      string // dm
	From    string
	Text    string
	History bool // a message replayed from history, or an offline DM

	Key string // "key": base64 of the sender's 32-byte public key
	Sig string // "sig": base64 of the 64-byte signature
	Ctr uint64 // "ctr"
	Cts uint64 // "cts": the sender's clock, ms since the Unix epoch
}

// DefaultStaleAfter is how long after signing a live message still counts
// as fresh. It only has to cover clock skew and delivery, but a generous
// bound keeps a slow clock from making every message fail.
const DefaultStaleAfter = 15 * time.Minute

// Config configures a Verifier. KnownUsers and HostPort are required.
type Config struct {
	KnownUsers string // path of the known_users file
	HostPort   string // the server as the user named it, as in known_hosts
	// Counters, if set, is a file keeping the highest counter seen per key
	// across runs (LoadCounters, SaveCounters).
	Counters string
	// Self is this session's user name; SelfKey its signing key, nil for a
	// session that logged in by password. The user's own messages are
	// checked against SelfKey, never pinned in known_users.
	Self    string
	SelfKey ed25519.PublicKey
	Policy  Policy
	// Ask asks the user whether to trust a new key for who (PolicyAsk).
	// It may return ErrAskLater to leave the question open.
	Ask func(who, fingerprint string) (bool, error)
	// StaleAfter: live messages signed longer ago fail (0: the default,
	// negative: no limit).
	StaleAfter time.Duration
	Now        func() time.Time
}

// Verifier judges incoming messages for one session (PROTOCOL.md
// §13.16.5). It is safe for concurrent use, but messages must be passed in
// the order they arrived: the counter rules depend on it.
type Verifier struct {
	cfg Config

	mu sync.Mutex
	// known caches the parsed known_users file; knownStamp says which
	// version of the file it is, so an edit counts at the next message.
	known      *KnownUsers
	knownStamp fileStamp
	// highest is the highest counter each (sender, key) has signed that
	// this client accepted, live or replayed.
	highest map[string]uint64
	// replay is the counter of the previous message of each (conversation,
	// sender, key) in the current history replay (StartReplay).
	replay map[string]uint64
	// declined holds the keys the user refused when asked, so that one
	// "no" is not asked again at every message.
	declined map[string]bool
}

type fileStamp struct {
	ok      bool
	size    int64
	modTime time.Time
}

// NewVerifier returns a Verifier, loading the counters file if one is set.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.KnownUsers == "" {
		return nil, errors.New("msgsig: no known_users file")
	}
	if err := checkWho(UserAt("x", cfg.HostPort)); err != nil {
		return nil, fmt.Errorf("msgsig: bad host:port %q", cfg.HostPort)
	}
	switch cfg.Policy {
	case PolicyAsk:
		if cfg.Ask == nil {
			return nil, errors.New("msgsig: user key policy ask needs a way to ask")
		}
	case PolicyAcceptNew, PolicyStrict:
	default:
		return nil, fmt.Errorf("msgsig: unknown user key policy %v", cfg.Policy)
	}
	if cfg.SelfKey != nil && len(cfg.SelfKey) != ed25519.PublicKeySize {
		return nil, errors.New("msgsig: own signing key is not an Ed25519 key")
	}
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = DefaultStaleAfter
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg, highest: map[string]uint64{}, replay: map[string]uint64{}, declined: map[string]bool{}}
	if cfg.Counters != "" {
		if err := v.loadCounters(); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// StartReplay begins a history replay of one conversation: a room name,
// or "" for the direct messages replayed at login. Call it when the room's
// state arrives (the `room` event that precedes its history) and before
// the offline DMs; it resets the order check of replayed messages.
func (v *Verifier) StartReplay(conversation string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	prefix := conversation + "\x00"
	for k := range v.replay {
		if strings.HasPrefix(k, prefix) {
			delete(v.replay, k)
		}
	}
}

// Reconsider forgets the keys the user declined for who ("user@host:port")
// when asked, so that the next message signed by one of them asks again:
// the way back from a "no" within one run.
func (v *Verifier) Reconsider(who string) (forgotten int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k := range v.declined {
		if strings.HasPrefix(k, who+"\x00") {
			delete(v.declined, k)
			forgotten++
		}
	}
	return forgotten
}

// Check judges one msg event. Only kinds msg, me and dm are judged; any
// other kind returns Unsigned with no reason.
func (v *Verifier) Check(ev *Event) Result {
	f := Fields{Kind: ev.Kind, From: ev.From, Counter: ev.Ctr, Time: ev.Cts, Text: ev.Text}
	switch ev.Kind {
	case KindMsg, KindMe:
		f.Target = ev.Room
	case KindDM:
		f.Target = ev.To
		if v.cfg.Self != "" && ev.To != v.cfg.Self && ev.From != v.cfg.Self {
			return Result{Status: Failed, Reason: ReasonMisdirected}
		}
	default:
		return Result{Status: Unsigned}
	}
	who := UserAt(ev.From, v.cfg.HostPort)
	self := v.cfg.Self != "" && ev.From == v.cfg.Self

	v.mu.Lock()
	defer v.mu.Unlock()
	known, err := v.knownUsers()
	if err != nil {
		// A file that cannot be read could hide a pin or a revocation:
		// nothing verifies, and nothing unsigned passes as plain.
		return Result{Status: Failed, Reason: ReasonKeyUnknown, Err: err}
	}

	if ev.Key == "" && ev.Sig == "" && ev.Ctr == 0 && ev.Cts == 0 {
		if self && v.cfg.SelfKey != nil {
			return Result{Status: Failed, Reason: ReasonSignatureMissing}
		}
		if len(known.Lookup(who)) > 0 {
			return Result{Status: Failed, Reason: ReasonSignatureMissing}
		}
		return Result{Status: Unsigned}
	}
	key, kerr := DecodeKey(ev.Key)
	sig, serr := DecodeSig(ev.Sig)
	if kerr != nil || serr != nil || f.check() != nil {
		return Result{Status: Failed, Reason: ReasonMalformed}
	}
	// The signature first, as for host keys: nobody is asked about, and
	// nothing pins, a key that did not sign this very message.
	if !Verify(key, &f, sig) {
		return Result{Status: Failed, Reason: ReasonBadSignature}
	}

	r, ok := v.trustLocked(known, who, self, key)
	if !ok {
		return r
	}
	res := Result{Status: Verified, Key: key, Pinned: r.Pinned, Err: r.Err}

	id := ev.From + "\x00" + string(key)
	if ev.History {
		conv := ""
		if ev.Kind != KindDM {
			conv = ev.Room
		}
		rk := conv + "\x00" + id
		if ev.Ctr <= v.replay[rk] {
			return Result{Status: Failed, Reason: ReasonReplayed, Key: key}
		}
		v.replay[rk] = ev.Ctr
	} else {
		if ev.Ctr <= v.highest[id] {
			return Result{Status: Failed, Reason: ReasonReplayed, Key: key}
		}
		if v.cfg.StaleAfter > 0 {
			now := v.cfg.Now().UnixMilli()
			if now > 0 && int64(ev.Cts) < now-v.cfg.StaleAfter.Milliseconds() {
				return Result{Status: Failed, Reason: ReasonStale, Key: key}
			}
		}
	}
	if ev.Ctr > v.highest[id] {
		v.highest[id] = ev.Ctr
	}
	return res
}

// trustLocked decides whether key may sign for who, pinning it if the
// policy allows. ok is false when the message fails; r is then the result.
func (v *Verifier) trustLocked(known *KnownUsers, who string, self bool, key ed25519.PublicKey) (r Result, ok bool) {
	if self && v.cfg.SelfKey != nil {
		if subtle.ConstantTimeCompare(key, v.cfg.SelfKey) != 1 {
			return Result{Status: Failed, Reason: ReasonKeyChanged, Key: key,
				Err: fmt.Errorf("msgsig: a message from you is signed by %s, not by your key %s", Fingerprint(key), Fingerprint(v.cfg.SelfKey))}, false
		}
		return Result{}, true
	}
	pin, line := known.Check(who, key)
	switch pin {
	case PinMatch:
		return Result{}, true
	case PinRevoked:
		return Result{Status: Failed, Reason: ReasonKeyRevoked, Key: key,
			Err: &KeyRevokedError{Who: who, File: known.File, Line: line.Line, Fingerprint: Fingerprint(key)}}, false
	case PinChanged:
		return Result{Status: Failed, Reason: ReasonKeyChanged, Key: key,
			Err: &KeyChangedError{Who: who, File: known.File, Line: line.Line, Want: Fingerprint(line.Key), Got: Fingerprint(key)}}, false
	}
	switch v.cfg.Policy {
	case PolicyStrict:
		return Result{Status: Failed, Reason: ReasonKeyUnknown, Key: key,
			Err: fmt.Errorf("msgsig: %s is not in %s (key %s) and user key checking is strict", who, known.File, Fingerprint(key))}, false
	case PolicyAsk:
		if v.declined[who+"\x00"+string(key)] {
			return Result{Status: Failed, Reason: ReasonKeyRejected, Key: key}, false
		}
		yes, err := v.cfg.Ask(who, Fingerprint(key))
		if errors.Is(err, ErrAskLater) {
			return Result{Status: Failed, Reason: ReasonKeyPending, Key: key}, false
		}
		if err != nil || !yes {
			v.declined[who+"\x00"+string(key)] = true
			return Result{Status: Failed, Reason: ReasonKeyRejected, Key: key, Err: err}, false
		}
	}
	added, err := AddKnownUser(v.cfg.KnownUsers, who, key)
	var changed *KeyChangedError
	var revoked *KeyRevokedError
	switch {
	case errors.As(err, &changed):
		// Another process pinned another key meanwhile.
		return Result{Status: Failed, Reason: ReasonKeyChanged, Key: key, Err: err}, false
	case errors.As(err, &revoked):
		return Result{Status: Failed, Reason: ReasonKeyRevoked, Key: key, Err: err}, false
	}
	// A file that cannot be written does not make the signature worse:
	// the message verified, and the client reports the error.
	return Result{Pinned: added, Err: err}, true
}

// knownUsers returns the known_users file, read again only when it changed.
func (v *Verifier) knownUsers() (*KnownUsers, error) {
	var st fileStamp
	if fi, err := os.Stat(v.cfg.KnownUsers); err == nil {
		st = fileStamp{ok: true, size: fi.Size(), modTime: fi.ModTime()}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("msgsig: known_users: %w", err)
	}
	if v.known != nil && st == v.knownStamp {
		return v.known, nil
	}
	k, err := LoadKnownUsers(v.cfg.KnownUsers)
	if err != nil {
		return nil, err
	}
	v.known, v.knownStamp = k, st
	return k, nil
}

// The counters file keeps, per server, the highest counter accepted from
// each user's key, one line each:
//
//	user@host:port BASE64KEY COUNTER
//
// with the raw key in standard base64. It lets the replay rule outlive the
// process: a message replayed after a restart still fails.

func (v *Verifier) loadCounters() error {
	f, err := os.Open(v.cfg.Counters)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("msgsig: counters: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	suffix := "@" + v.cfg.HostPort
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 3 {
			return fmt.Errorf("msgsig: counters %s:%d: want 3 fields", v.cfg.Counters, line)
		}
		user, ok := strings.CutSuffix(fields[0], suffix)
		if !ok || !validUser(user) {
			continue // another server's, or not ours to read
		}
		key, err := DecodeKey(fields[1])
		ctr, cerr := strconv.ParseUint(fields[2], 10, 64)
		if err != nil || cerr != nil {
			return fmt.Errorf("msgsig: counters %s:%d: bad key or counter", v.cfg.Counters, line)
		}
		v.highest[user+"\x00"+string(key)] = ctr
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("msgsig: counters: %w", err)
	}
	return nil
}

// SaveCounters writes the highest counters seen to the counters file,
// keeping other servers' lines; call it at the end of a session and now
// and then during one. The file is replaced atomically with mode 0600.
func (v *Verifier) SaveCounters() error {
	if v.cfg.Counters == "" {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	suffix := "@" + v.cfg.HostPort
	var lines []string
	if data, err := os.ReadFile(v.cfg.Counters); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			f := strings.Fields(l)
			if len(f) == 3 && !strings.HasSuffix(f[0], suffix) {
				lines = append(lines, strings.Join(f, " "))
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("msgsig: counters: %w", err)
	}
	for id, ctr := range v.highest {
		user, key, _ := strings.Cut(id, "\x00")
		lines = append(lines, fmt.Sprintf("%s %s %d", UserAt(user, v.cfg.HostPort), EncodeKey(ed25519.PublicKey(key)), ctr))
	}
	sort.Strings(lines)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	if err := os.MkdirAll(dirOf(v.cfg.Counters), 0o700); err != nil {
		return fmt.Errorf("msgsig: counters: %w", err)
	}
	if err := atomicfile.Replace(v.cfg.Counters, []byte(b.String())); err != nil {
		return fmt.Errorf("msgsig: counters: %w", err)
	}
	return nil
}
