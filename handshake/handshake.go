package handshake

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"securechat/cipher"
)

// Defaults of PROTOCOL.md §14.
const (
	DefaultMaxAuthTries   = 3
	DefaultStepTimeout    = 10 * time.Second
	DefaultLoginGraceTime = 30 * time.Second
)

// AUTH and AUTH_RESULT (PROTOCOL.md §10.2).
const (
	authMethodPassword = 0x01
	authSuccess        = 0x00
	authFailure        = 0x01
	maxUsernameLen     = 32
	maxPasswordLen     = 1024
)

// ErrAuthFailed reports a login that did not succeed. Client returns it
// (wrapped) when the server refused every attempt; Server returns it when the
// client used up its attempts; a Verifier wraps it for an unknown user or a
// wrong password.
var ErrAuthFailed = errors.New("handshake: authentication failed")

// ErrServerNotAuthenticated matches (with errors.Is) every error of Client
// that means the server did not prove who it is (PROTOCOL.md §7.4): a host
// key that is refused, a SERVER_HELLO that chose what was not offered or
// carries an invalid share, a signature that does not verify, or a first
// record that is not a valid FINISHED. Such a failure is what an active
// attacker causes, not a network fault: a client reports it as such and
// does not reconnect by itself.
var ErrServerNotAuthenticated = errors.New("handshake: the server could not be authenticated")

// ServerAuthError is the error Client returns when the server could not be
// authenticated. It matches ErrServerNotAuthenticated, and Err, the cause
// (such as a *HostKeyChangedError), is reachable with errors.Is and
// errors.As.
type ServerAuthError struct {
	Err error
}

func (e *ServerAuthError) Error() string {
	return ErrServerNotAuthenticated.Error() + ": " + strings.TrimPrefix(e.Err.Error(), "handshake: ")
}

func (e *ServerAuthError) Unwrap() []error { return []error{ErrServerNotAuthenticated, e.Err} }

// notAuthenticated wraps a failure of server authentication; nil stays nil.
func notAuthenticated(err error) error {
	if err == nil {
		return nil
	}
	return &ServerAuthError{Err: err}
}

// AbortError is a cleartext ABORT received from the server (PROTOCOL.md §4).
// The client does not retry with another offer.
type AbortError struct {
	Code uint8
}

func (e *AbortError) Error() string {
	var what string
	switch e.Code {
	case AbortUnsupportedVersion:
		what = "no protocol version in common"
	case AbortNoCommonAlgorithm:
		what = "no key exchange group or signature algorithm in common"
	case AbortHandshakeFailure:
		what = "handshake failure"
	default:
		what = "unknown reason"
	}
	return fmt.Sprintf("handshake: server aborted: %s (code 0x%02x)", what, e.Code)
}

// Verifier checks passwords for the server.
type Verifier interface {
	// Verify returns nil if password is right for user. For an unknown user or
	// a wrong password it returns an error wrapping ErrAuthFailed; other
	// errors are internal failures. Either way the client sees the same
	// AUTH_RESULT failure byte. Verify must not keep password: the server
	// clears it after the call.
	Verify(ctx context.Context, user string, password []byte) error
}

// RejectRecorder is an optional interface of a Verifier. The server calls
// AuthRejected for an AUTH it refuses without calling Verify (a method
// other than password, a malformed user name or password), so that such an
// attempt can count as a failed login. reason never holds the name or the
// password.
type RejectRecorder interface {
	AuthRejected(reason string)
}

// ServerConfig configures Server. It is not modified and may be shared.
type ServerConfig struct {
	HostKey        ed25519.PrivateKey
	Groups         []Group // allowed groups; empty = mlkem768x25519, x25519 (ffdhe3072 only if listed)
	Verifier       Verifier
	Transport      string        // "tcp" or "quic"; must match CLIENT_HELLO
	MaxAuthTries   int           // 0 = 3
	StepTimeout    time.Duration // per read or write, 0 = 10 s
	LoginGraceTime time.Duration // accept to AUTH_RESULT success, 0 = 30 s
	Record         *cipher.Options
	// Negotiated, if set, is called with the key exchange group as soon as
	// it is chosen, so that a handshake which fails later can still be
	// told apart by group (metrics). It must be quick.
	Negotiated func(Group)

	hooks *testHooks
}

// ClientConfig configures Client. It is not modified and may be shared.
type ClientConfig struct {
	Groups    []Group // offered, in order, each with a share; empty = mlkem768x25519, x25519
	Transport string  // "tcp" or "quic"
	// HostKeyCallback decides whether the server's host key is trusted. It
	// is called once the SERVER_HELLO signature verified with that key, but
	// before any key is derived and before the server's FINISHED, so the
	// server has not yet proved that it completed this handshake: the
	// callback must not record the key anywhere (HostKeyVerified does).
	// A non-nil error aborts, wrapped in a *ServerAuthError. It is required
	// (see KnownHostsChecker and FixedHostKey).
	HostKeyCallback func(key ed25519.PublicKey) error
	// HostKeyVerified, if set, is called with the same key once the server
	// has proved it holds it: after the signature and the server's FINISHED
	// verified, before the client's FINISHED and before the password is
	// asked for. This is where a key accepted for the first time is
	// recorded (PROTOCOL.md §7.3). A non-nil error aborts the handshake and
	// comes back as is.
	HostKeyVerified func(key ed25519.PublicKey) error
	User            string
	// Keys are the user's Ed25519 keys for public-key login (PROTOCOL.md
	// §10.2, method 0x02), tried in order before any password; each one the
	// server refuses uses one of the attempts. Each Public() must be an
	// ed25519.PublicKey, and Sign must sign the message itself (opts
	// crypto.Hash(0)), as an ed25519.PrivateKey does; a key held by an
	// ssh-agent can be wrapped to do the same. Keys sign only after the
	// server has proved its host key, over this session's transcript.
	Keys []crypto.Signer
	// Password returns the password for password attempt 1, 2, ... (keys
	// tried first are not counted). It is called only after the server
	// proved its host key and sent a valid FINISHED, and only once the
	// keys are used up. The handshake clears the returned slice after
	// sending it. It may be nil when Keys is not empty.
	Password     func(attempt int) ([]byte, error)
	MaxAuthTries int           // 0 = 3
	StepTimeout  time.Duration // per read or write, 0 = 10 s
	Record       *cipher.Options
	// ReusedKeyShares, if set, are offered in place of fresh shares, and
	// Groups must be empty or list the same groups in the same order. Only
	// a load generator sets it: see [ReusedKeyShares].
	ReusedKeyShares *ReusedKeyShares

	hooks *testHooks
}

// testHooks fix what is otherwise random and let tests misbehave on purpose.
// Production configs leave them nil.
type testHooks struct {
	rand io.Reader // randoms and ephemeral keys; nil = crypto/rand
	// finished, if set, may change our Finished payload before it is sealed.
	finished func(payload []byte)
	// encapsulate, if set, replaces the server's randomized ML-KEM
	// encapsulation (known-answer tests fix its randomness).
	encapsulate encapsulateFunc
}

func (h *testHooks) random() io.Reader {
	if h == nil || h.rand == nil {
		return rand.Reader
	}
	return h.rand
}

func (h *testHooks) encapsulator() encapsulateFunc {
	if h == nil || h.encapsulate == nil {
		return encapsulate768
	}
	return h.encapsulate
}

func (h *testHooks) mutateFinished(p []byte) {
	if h != nil && h.finished != nil {
		h.finished(p)
	}
}

// FixedHostKey returns a HostKeyCallback that accepts only key.
func FixedHostKey(key ed25519.PublicKey) func(ed25519.PublicKey) error {
	want := Fingerprint(key)
	return func(got ed25519.PublicKey) error {
		if fp := Fingerprint(got); fp != want {
			return &PinnedKeyMismatchError{Want: want, Got: fp}
		}
		return nil
	}
}

// Session is an established, logged-in connection.
type Session struct {
	*cipher.Conn
	User      string
	Group     Group
	HostKey   ed25519.PublicKey
	SessionID [32]byte
	// UserKey is the key the user logged in with (PROTOCOL.md §10.2,
	// method 0x02), on both sides; nil after a password login. It is the
	// session's signing key for chat messages (PROTOCOL.md §13.16.1).
	UserKey ed25519.PublicKey
	// UserSigner is, on the client, the ClientConfig.Keys entry that
	// logged in, so that the client can sign its messages with it; nil on
	// the server and after a password login.
	UserSigner crypto.Signer
}

// channelBinder is implemented by transports that can bind the handshake to
// their own session (PROTOCOL.md §3), such as the QUIC adapter.
type channelBinder interface {
	ChannelBinding() ([]byte, error)
}

func channelBinding(c net.Conn) ([]byte, error) {
	b, ok := c.(channelBinder)
	if !ok {
		return nil, nil
	}
	cb, err := b.ChannelBinding()
	if err != nil {
		return nil, fmt.Errorf("handshake: channel binding: %w", err)
	}
	return cb, nil
}

// deadlines arms the connection's deadline before every read and write of
// the handshake: StepTimeout from now, but never past the overall limit.
type deadlines struct {
	c       net.Conn
	step    time.Duration
	overall time.Time // zero: no overall limit
}

func (d *deadlines) arm() error {
	t := time.Now().Add(d.step)
	if !d.overall.IsZero() && d.overall.Before(t) {
		t = d.overall
	}
	if err := d.c.SetDeadline(t); err != nil {
		return fmt.Errorf("handshake: setting deadline: %w", err)
	}
	return nil
}

// armForPerson sets the deadline for a read that waits on a person rather
// than the network: the client's FINISHED and AUTH come only after its user
// has checked the host key fingerprint and typed a password, which takes
// longer than a network step. Only the overall limit (LoginGraceTime)
// applies then, as with OpenSSH's LoginGraceTime.
func (d *deadlines) armForPerson() error {
	if d.overall.IsZero() {
		return d.arm()
	}
	if err := d.c.SetDeadline(d.overall); err != nil {
		return fmt.Errorf("handshake: setting deadline: %w", err)
	}
	return nil
}

// runSteps runs the steps of a handshake in order and stops at the first
// error.
func runSteps(steps []func() error) error {
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// run executes a handshake with ctx watching it: if ctx ends first, the
// connection is closed, which unblocks any read or write, and ctx's error is
// returned. On failure fail is called with the error to close the
// connection; on success the deadlines are cleared.
func run(ctx context.Context, c net.Conn, steps func() error, fail func(error)) error {
	if err := ctx.Err(); err != nil {
		c.Close()
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err := steps()
	if !stop() {
		// ctx fired: the connection is already closed.
		err = fmt.Errorf("handshake: %w", context.Cause(ctx))
		fail(err)
		return err
	}
	if err != nil {
		fail(err)
		return err
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		err = fmt.Errorf("handshake: clearing deadline: %w", err)
		fail(err)
		return err
	}
	return nil
}

// validUsername reports whether u is 1..32 bytes of [a-z0-9_.-].
func validUsername(u string) bool {
	if len(u) < 1 || len(u) > maxUsernameLen {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// checkGroups rejects unknown and repeated groups in a configuration.
func checkGroups(gs []Group) error {
	if len(gs) > maxListEntries {
		return fmt.Errorf("handshake: %d groups configured (max 16)", len(gs))
	}
	for i, g := range gs {
		if !g.known() {
			return fmt.Errorf("handshake: unsupported group %v", g)
		}
		for _, h := range gs[:i] {
			if g == h {
				return fmt.Errorf("handshake: group %v listed twice", g)
			}
		}
	}
	return nil
}

// abortTransport ends c after a protocol failure. A transport that can
// signal failure (the QUIC adapter closes with its error code, PROTOCOL.md
// §3) does so; others are closed.
func abortTransport(c net.Conn) {
	if a, ok := c.(interface{ Abort() error }); ok {
		a.Abort()
		return
	}
	c.Close()
}
