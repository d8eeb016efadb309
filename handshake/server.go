package handshake

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"

	"securechat/cipher"
)

// Server runs the server side of the handshake and login on c (PROTOCOL.md
// §4-§10) and returns the established session. The whole exchange must end
// within LoginGraceTime and each read or write within StepTimeout. On
// failure it closes c; after the last allowed AUTH failure the error wraps
// ErrAuthFailed.
func Server(ctx context.Context, c net.Conn, cfg *ServerConfig) (*Session, error) {
	hs, err := newServerHandshake(ctx, c, cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	defer hs.erase()
	if err := run(ctx, c, hs.handshake, hs.fail); err != nil {
		return nil, err
	}
	return &Session{
		Conn:      hs.conn,
		User:      hs.user,
		Group:     hs.group,
		HostKey:   hs.cfg.HostKey.Public().(ed25519.PublicKey),
		SessionID: hs.keys.sessionID,
		UserKey:   hs.userKey,
	}, nil
}

type serverHandshake struct {
	ctx      context.Context
	c        net.Conn
	cfg      *ServerConfig
	dl       deadlines
	groups   []Group
	maxTries int

	prefix      []byte
	chFrame     []byte
	ch          *clientHello
	group       Group
	clientShare []byte
	shFrame     []byte
	th          [32]byte
	keys        *sessionKeys
	conn        *cipher.Conn
	closed      bool // conn was ended with CLOSE rather than failed
	user        string
	userKey     ed25519.PublicKey // the key the user logged in with; nil for a password
	// lastKeyErr is why the last key login was refused, for the error
	// returned when the attempts run out (the client never sees it).
	lastKeyErr error
}

func newServerHandshake(ctx context.Context, c net.Conn, cfg *ServerConfig) (*serverHandshake, error) {
	if cfg == nil {
		return nil, errors.New("handshake: nil ServerConfig")
	}
	if len(cfg.HostKey) != ed25519.PrivateKeySize {
		return nil, errors.New("handshake: ServerConfig.HostKey is not an Ed25519 private key")
	}
	if cfg.Verifier == nil {
		return nil, errors.New("handshake: ServerConfig.Verifier is required")
	}
	if cfg.Transport == "" {
		return nil, errors.New("handshake: ServerConfig.Transport is required")
	}
	if err := checkGroups(cfg.Groups); err != nil {
		return nil, err
	}
	groups := cfg.Groups
	if len(groups) == 0 {
		groups = defaultServerGroups
	}
	return &serverHandshake{
		ctx: ctx,
		c:   c,
		cfg: cfg,
		dl: deadlines{
			c:       c,
			step:    orDefault(cfg.StepTimeout, DefaultStepTimeout),
			overall: time.Now().Add(orDefault(cfg.LoginGraceTime, DefaultLoginGraceTime)),
		},
		groups:   groups,
		maxTries: orDefault(cfg.MaxAuthTries, DefaultMaxAuthTries),
	}, nil
}

// handshake is the server state machine of PROTOCOL.md §10.3.
func (hs *serverHandshake) handshake() error { return runSteps(hs.steps()) }

func (hs *serverHandshake) steps() []func() error {
	return []func() error{
		hs.readClientHello,
		hs.negotiate,
		hs.sendServerHello,
		hs.sendServerFinished,
		hs.readClientFinished,
		hs.authenticate,
	}
}

// negotiationError is a CLIENT_HELLO the server answers with ABORT.
type negotiationError struct {
	code uint8
	err  error
}

func (e *negotiationError) Error() string { return e.err.Error() }
func (e *negotiationError) Unwrap() error { return e.err }

func refuse(code uint8, format string, args ...any) error {
	return &negotiationError{code: code, err: fmt.Errorf("handshake: "+format, args...)}
}

// sendAbort tells the client, in the one cleartext message the protocol
// has for it, why negotiation failed (PROTOCOL.md §4). Best effort: the
// connection is closed right after.
func (hs *serverHandshake) sendAbort(code uint8) {
	if hs.dl.arm() == nil {
		hs.c.Write(marshalAbort(code))
	}
}

func (hs *serverHandshake) readClientHello() error {
	cb, err := channelBinding(hs.c)
	if err != nil {
		return err
	}
	if hs.prefix, err = transcriptPrefixBytes(cb); err != nil {
		return err
	}
	if err := hs.dl.arm(); err != nil {
		return err
	}
	typ, frame, err := readFrame(hs.c, frameClientHello)
	if errors.Is(err, errFrameTooLarge) && typ == frameClientHello {
		return &negotiationError{code: AbortHandshakeFailure, err: err}
	}
	if err != nil {
		// Not a securechat client, or a frame it has no business sending:
		// close without a word.
		return err
	}
	ch, err := parseClientHello(frame)
	if err != nil {
		return &negotiationError{code: AbortHandshakeFailure, err: err}
	}
	hs.ch, hs.chFrame = ch, frame
	return nil
}

// negotiate applies the rules of PROTOCOL.md §5.1 in order and picks the
// group. Unknown versions, groups and signature algorithms are ignored.
func (hs *serverHandshake) negotiate() error {
	ch := hs.ch
	hasV1 := false
	for _, v := range ch.versions {
		hasV1 = hasV1 || v == versionV1
	}
	if !hasV1 {
		return refuse(AbortUnsupportedVersion, "client offers no supported protocol version")
	}
	if ch.transport != hs.cfg.Transport {
		return refuse(AbortHandshakeFailure, "client says transport %q on a %s connection", ch.transport, hs.cfg.Transport)
	}
	for i, g := range ch.groups {
		for _, h := range ch.groups[:i] {
			if g == h {
				return refuse(AbortHandshakeFailure, "group 0x%04x offered twice", uint16(g))
			}
		}
	}
	for i, ks := range ch.keyShares {
		for _, other := range ch.keyShares[:i] {
			if ks.group == other.group {
				return refuse(AbortHandshakeFailure, "two key shares for group 0x%04x", uint16(ks.group))
			}
		}
		listed := false
		for _, g := range ch.groups {
			listed = listed || g == ks.group
		}
		if !listed {
			return refuse(AbortHandshakeFailure, "key share for unoffered group 0x%04x", uint16(ks.group))
		}
	}
	if len(ch.extensions) != 0 {
		return refuse(AbortHandshakeFailure, "client sent extensions, which version 1 does not have")
	}
	hasEd25519 := false
	for _, a := range ch.sigAlgs {
		hasEd25519 = hasEd25519 || a == sigAlgEd25519
	}
	if !hasEd25519 {
		return refuse(AbortNoCommonAlgorithm, "client does not accept Ed25519 signatures")
	}
	for _, g := range ch.groups {
		if !hs.allows(g) {
			continue
		}
		for _, ks := range ch.keyShares {
			if ks.group == g {
				hs.group, hs.clientShare = g, ks.data
				if hs.cfg.Negotiated != nil {
					hs.cfg.Negotiated(g)
				}
				return nil
			}
		}
	}
	return refuse(AbortNoCommonAlgorithm, "no common key exchange group with a key share")
}

func (hs *serverHandshake) allows(g Group) bool {
	for _, a := range hs.groups {
		if a == g {
			return true
		}
	}
	return false
}

// sendServerHello answers the key share, signs the transcript, sends
// SERVER_HELLO and installs the record layer.
func (hs *serverHandshake) sendServerHello() error {
	rnd := hs.cfg.hooks.random()
	share, ss, err := serverKeyExchangeWith(hs.group, hs.clientShare, rnd, hs.cfg.hooks.encapsulator())
	if err != nil {
		return &negotiationError{code: AbortHandshakeFailure, err: err}
	}
	defer clear(ss)
	sh := &serverHello{
		version:  versionV1,
		group:    hs.group,
		keyShare: share,
		sigAlg:   sigAlgEd25519,
		hostKey:  hs.cfg.HostKey.Public().(ed25519.PublicKey),
	}
	if _, err := io.ReadFull(rnd, sh.random[:]); err != nil {
		return fmt.Errorf("handshake: reading randomness: %w", err)
	}
	frame, err := sh.marshal()
	if err != nil {
		return err
	}
	sig := signServerHello(hs.cfg.HostKey, hs.prefix, hs.chFrame, frame)
	copy(frame[len(frame)-signatureLen:], sig)
	hs.shFrame = frame

	hs.th = transcriptHash(hs.prefix, hs.chFrame, hs.shFrame)
	hs.keys = deriveKeys(ss, hs.th)
	if err := hs.dl.arm(); err != nil {
		return err
	}
	if _, err := hs.c.Write(frame); err != nil {
		return fmt.Errorf("handshake: sending SERVER_HELLO: %w", err)
	}
	hs.conn = cipher.New(hs.c, hs.keys.s2c, hs.keys.c2s, hs.cfg.Record)
	clear(hs.keys.c2s)
	clear(hs.keys.s2c)
	return nil
}

func (hs *serverHandshake) sendServerFinished() error {
	payload := finishedMAC(hs.keys.finS, hs.th)
	hs.cfg.hooks.mutateFinished(payload)
	if err := hs.dl.arm(); err != nil {
		return err
	}
	if err := hs.conn.WriteRecord(cipher.TypeFinished, payload); err != nil {
		return fmt.Errorf("handshake: sending FINISHED: %w", err)
	}
	return nil
}

func (hs *serverHandshake) readClientFinished() error {
	if err := hs.dl.armForPerson(); err != nil {
		return err
	}
	payload, err := readRecordOfType(hs.conn, cipher.TypeFinished)
	if err != nil {
		return err
	}
	want := finishedMAC(hs.keys.finC, hs.th)
	clear(hs.keys.finC)
	clear(hs.keys.finS)
	if !hmac.Equal(payload, want) {
		return errors.New("handshake: client FINISHED does not verify")
	}
	return nil
}

// authenticate handles AUTH records (PROTOCOL.md §10.2). Every refusal,
// whatever its cause, is the same single byte 0x01.
func (hs *serverHandshake) authenticate() error {
	for failures := 0; ; {
		if err := hs.dl.armForPerson(); err != nil {
			return err
		}
		payload, err := readRecordOfType(hs.conn, cipher.TypeAuth)
		if err != nil {
			return err
		}
		method, user, data, err := parseAuth(payload)
		if err != nil {
			hs.conn.Abort()
			return err
		}
		var key ed25519.PublicKey
		var ok bool
		switch {
		case method == authMethodPublicKey:
			var ka *keyAuth
			if ka, err = parseKeyAuth(data); err != nil {
				hs.conn.Abort()
				return err
			}
			if !validUsername(user) {
				hs.rejected("malformed user name")
				break
			}
			key, err = hs.verifyKeyAuth(user, ka)
			ok = err == nil
			hs.lastKeyErr = err
		case method != authMethodPassword:
			hs.rejected("unknown AUTH method")
		case !validUsername(user):
			hs.rejected("malformed user name")
		case !validPassword(data):
			hs.rejected("malformed password")
		default:
			ok = hs.cfg.Verifier.Verify(hs.ctx, user, data) == nil
		}
		clear(data)
		clear(payload)
		result := []byte{authFailure}
		if ok {
			result[0] = authSuccess
		}
		if err := hs.dl.arm(); err != nil {
			return err
		}
		if err := hs.conn.WriteRecord(cipher.TypeAuthResult, result); err != nil {
			return fmt.Errorf("handshake: sending AUTH_RESULT: %w", err)
		}
		if ok {
			hs.user, hs.userKey = user, key
			hs.conn.SetEstablished()
			return nil
		}
		failures++
		if failures >= hs.maxTries {
			if hs.dl.arm() == nil {
				hs.conn.Close()
				hs.closed = true
			}
			if hs.lastKeyErr != nil {
				return fmt.Errorf("%w: %d failed attempts (last key login: %v)", ErrAuthFailed, failures, hs.lastKeyErr)
			}
			return fmt.Errorf("%w: %d failed attempts", ErrAuthFailed, failures)
		}
	}
}

func (hs *serverHandshake) rejected(reason string) {
	if r, ok := hs.cfg.Verifier.(RejectRecorder); ok {
		r.AuthRejected(reason)
	}
}

func validPassword(pw []byte) bool {
	return len(pw) >= 1 && len(pw) <= maxPasswordLen && utf8.Valid(pw)
}

// parseAuth splits an AUTH payload into method, user name and the method's
// data (the password for method 0x01). A payload whose lengths do not add
// up is malformed (fatal); a well-formed one with a bad method, name or
// password is an ordinary failure.
func parseAuth(payload []byte) (method uint8, user string, data []byte, err error) {
	s := cryptobyte.String(payload)
	var u, p cryptobyte.String
	if !s.ReadUint8(&method) || !s.ReadUint8LengthPrefixed(&u) ||
		!s.ReadUint16LengthPrefixed(&p) || !s.Empty() {
		return 0, "", nil, errors.New("handshake: malformed AUTH")
	}
	return method, string(u), []byte(p), nil
}

func (hs *serverHandshake) fail(err error) {
	var ne *negotiationError
	switch {
	case hs.conn == nil && errors.As(err, &ne):
		// A plain close, so that the ABORT frame is delivered.
		hs.sendAbort(ne.code)
		hs.c.Close()
	case hs.closed:
		hs.c.Close()
	case hs.conn == nil:
		abortTransport(hs.c)
	default:
		hs.conn.Abort()
	}
}

func (hs *serverHandshake) erase() {
	if hs.keys != nil {
		hs.keys.erase()
	}
}
