package handshake

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"unicode/utf8"

	"securechat/cipher"
)

// Client runs the client side of the handshake and login on c (PROTOCOL.md
// §4-§10) and returns the established session. On failure it closes c. If
// the server sends ABORT the error is an *AbortError; if the server refuses
// every password it wraps ErrAuthFailed; if the server could not be
// authenticated it is a *ServerAuthError (matching ErrServerNotAuthenticated)
// whose cause is, for a refused host key, the HostKeyCallback's error.
func Client(ctx context.Context, c net.Conn, cfg *ClientConfig) (*Session, error) {
	hs, err := newClientHandshake(c, cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	defer hs.erase()
	if err := run(ctx, c, hs.handshake, hs.fail); err != nil {
		return nil, err
	}
	sess := &Session{
		Conn:       hs.conn,
		User:       cfg.User,
		Group:      hs.sh.group,
		HostKey:    ed25519.PublicKey(hs.sh.hostKey),
		SessionID:  hs.keys.sessionID,
		UserSigner: hs.loginKey,
	}
	if hs.loginKey != nil {
		sess.UserKey = hs.loginKey.Public().(ed25519.PublicKey)
	}
	return sess, nil
}

type clientHandshake struct {
	c        net.Conn
	cfg      *ClientConfig
	dl       deadlines
	maxTries int

	prefix  []byte // transcript prefix with the channel binding
	shares  []clientKeyShare
	ch      *clientHello
	chFrame []byte
	sh      *serverHello
	shFrame []byte
	share   clientKeyShare // the one the server chose
	th      [32]byte
	keys    *sessionKeys
	conn    *cipher.Conn
	closed  bool // conn was ended with CLOSE rather than failed
	// loginKey is the key whose AUTH the server accepted; nil after a
	// password login.
	loginKey crypto.Signer
}

func newClientHandshake(c net.Conn, cfg *ClientConfig) (*clientHandshake, error) {
	if cfg == nil {
		return nil, errors.New("handshake: nil ClientConfig")
	}
	if cfg.HostKeyCallback == nil {
		return nil, errors.New("handshake: ClientConfig.HostKeyCallback is required")
	}
	if cfg.Password == nil && len(cfg.Keys) == 0 {
		return nil, errors.New("handshake: ClientConfig.Password or Keys is required")
	}
	if !validUsername(cfg.User) {
		return nil, fmt.Errorf("handshake: invalid user name %q (1 to 32 of a-z 0-9 _ . -)", cfg.User)
	}
	if cfg.Transport == "" || len(cfg.Transport) > 255 {
		return nil, fmt.Errorf("handshake: invalid transport name %q", cfg.Transport)
	}
	if err := checkGroups(cfg.Groups); err != nil {
		return nil, err
	}
	if r := cfg.ReusedKeyShares; r != nil && len(cfg.Groups) != 0 && !slices.Equal(cfg.Groups, r.groups) {
		return nil, fmt.Errorf("handshake: ClientConfig.Groups %v differ from the reused key shares' %v", cfg.Groups, r.groups)
	}
	return &clientHandshake{
		c:        c,
		cfg:      cfg,
		dl:       deadlines{c: c, step: orDefault(cfg.StepTimeout, DefaultStepTimeout)},
		maxTries: orDefault(cfg.MaxAuthTries, DefaultMaxAuthTries),
	}, nil
}

// handshake is the client state machine of PROTOCOL.md §10.3, one step per
// message. Nothing secret is sent before verifyServerFinished succeeds.
func (hs *clientHandshake) handshake() error { return runSteps(hs.steps()) }

func (hs *clientHandshake) steps() []func() error {
	return []func() error{
		hs.sendClientHello,
		hs.readServerHello,
		hs.checkServerHello,
		// The signature first: the user is asked only about a key that
		// signed this very handshake, never about a key sent with garbage.
		hs.verifySignature,
		hs.verifyHostKey,
		hs.establishKeys,
		hs.readServerFinished,
		hs.hostKeyVerified,
		hs.sendClientFinished,
		hs.login,
	}
}

func (hs *clientHandshake) sendClientHello() error {
	cb, err := channelBinding(hs.c)
	if err != nil {
		return err
	}
	if hs.prefix, err = transcriptPrefixBytes(cb); err != nil {
		return err
	}
	groups := hs.cfg.Groups
	reused := hs.cfg.ReusedKeyShares
	switch {
	case reused != nil:
		groups = reused.groups
	case len(groups) == 0:
		groups = defaultClientGroups
	}
	rnd := hs.cfg.hooks.random()
	ch := &clientHello{
		versions:  []uint16{versionV1},
		transport: hs.cfg.Transport,
		groups:    groups,
		sigAlgs:   []uint16{sigAlgEd25519},
	}
	if _, err := io.ReadFull(rnd, ch.random[:]); err != nil {
		return fmt.Errorf("handshake: reading randomness: %w", err)
	}
	// There is no retry message in this protocol, so every offered group
	// carries a share.
	for i, g := range groups {
		var s clientKeyShare
		if reused != nil {
			s = reused.shares[i]
		} else if s, err = newClientKeyShare(g, rnd); err != nil {
			return err
		}
		hs.shares = append(hs.shares, s)
		ch.keyShares = append(ch.keyShares, keyShare{group: g, data: s.public()})
	}
	frame, err := ch.marshal()
	if err != nil {
		return err
	}
	hs.ch, hs.chFrame = ch, frame
	if err := hs.dl.arm(); err != nil {
		return err
	}
	if _, err := hs.c.Write(frame); err != nil {
		return fmt.Errorf("handshake: sending CLIENT_HELLO: %w", err)
	}
	return nil
}

func (hs *clientHandshake) readServerHello() error {
	if err := hs.dl.arm(); err != nil {
		return err
	}
	typ, frame, err := readFrame(hs.c, frameServerHello, frameAbort)
	if err != nil {
		return err
	}
	if typ == frameAbort {
		code, err := parseAbort(frame)
		if err != nil {
			return err
		}
		return &AbortError{Code: code}
	}
	sh, err := parseServerHello(frame)
	if err != nil {
		// A whole SERVER_HELLO arrived and it is not one (PROTOCOL.md §7.4).
		return notAuthenticated(err)
	}
	hs.sh, hs.shFrame = sh, frame
	return nil
}

// checkServerHello enforces that the server chose only what was offered
// (PROTOCOL.md §5.2) and that the share has its group's exact length. A
// server that did otherwise is not authenticated (§7.4).
func (hs *clientHandshake) checkServerHello() error {
	return notAuthenticated(hs.checkServerChoices())
}

func (hs *clientHandshake) checkServerChoices() error {
	sh := hs.sh
	if sh.version != versionV1 {
		return fmt.Errorf("handshake: server chose version 0x%04x, which was not offered", sh.version)
	}
	if sh.sigAlg != sigAlgEd25519 {
		return fmt.Errorf("handshake: server chose signature algorithm 0x%04x, which was not offered", sh.sigAlg)
	}
	if len(sh.extensions) != 0 {
		return errors.New("handshake: server sent extensions, which version 1 does not have")
	}
	for _, s := range hs.shares {
		if s.group() == sh.group {
			hs.share = s
		}
	}
	if hs.share == nil {
		return fmt.Errorf("handshake: server chose group %v, which was not offered", sh.group)
	}
	if len(sh.keyShare) != sh.group.serverShareLen() {
		return errBadShare
	}
	return nil
}

// verifyHostKey asks HostKeyCallback whether the key is trusted. The key is
// not recorded here: the server has proved nothing yet (see hostKeyVerified).
func (hs *clientHandshake) verifyHostKey() error {
	return notAuthenticated(hs.cfg.HostKeyCallback(ed25519.PublicKey(hs.sh.hostKey)))
}

func (hs *clientHandshake) verifySignature() error {
	return notAuthenticated(verifyServerHello(hs.sh.hostKey, hs.prefix, hs.chFrame, hs.shFrame, hs.sh.signature))
}

// establishKeys validates the server's share, runs the key schedule and
// installs the record layer. Every ephemeral is dropped here.
func (hs *clientHandshake) establishKeys() error {
	ss, err := hs.share.finish(hs.sh.keyShare)
	hs.eraseShares()
	if err != nil {
		// The share is the server's; a MITM's low-order point ends here.
		return notAuthenticated(err)
	}
	hs.th = transcriptHash(hs.prefix, hs.chFrame, hs.shFrame)
	hs.keys = deriveKeys(ss, hs.th)
	clear(ss)
	hs.conn = cipher.New(hs.c, hs.keys.c2s, hs.keys.s2c, hs.cfg.Record)
	clear(hs.keys.c2s)
	clear(hs.keys.s2c)
	return nil
}

// readServerFinished reads and checks the server's FINISHED. Anything but a
// valid one in the first record (a record that does not open, another
// type, CLOSE, a wrong MAC) means the server is not authenticated. The
// transport failing before a whole record arrived is only a lost
// connection: an attacker can always cause that, and so can the network.
func (hs *clientHandshake) readServerFinished() error {
	if err := hs.dl.arm(); err != nil {
		return err
	}
	typ, payload, err := hs.conn.ReadRecord()
	switch {
	case errors.Is(err, cipher.ErrBadRecord):
		// A CLOSE in place of FINISHED lands here too: the record layer
		// refuses a CLOSE as the first record of a direction (§10.3).
		return notAuthenticated(fmt.Errorf("handshake: waiting for %v: %w", cipher.TypeFinished, err))
	case err != nil:
		return fmt.Errorf("handshake: waiting for %v: %w", cipher.TypeFinished, err)
	case typ != cipher.TypeFinished:
		hs.conn.Abort()
		return notAuthenticated(fmt.Errorf("handshake: got %v record while waiting for %v", typ, cipher.TypeFinished))
	}
	want := finishedMAC(hs.keys.finS, hs.th)
	if !hmac.Equal(payload, want) {
		return notAuthenticated(errors.New("handshake: server FINISHED does not verify"))
	}
	return nil
}

// hostKeyVerified tells HostKeyVerified that the server proved its key: it
// signed this transcript and derived the same keys. Only now may a new key
// be recorded (PROTOCOL.md §7.3).
func (hs *clientHandshake) hostKeyVerified() error {
	if hs.cfg.HostKeyVerified == nil {
		return nil
	}
	return hs.cfg.HostKeyVerified(ed25519.PublicKey(hs.sh.hostKey))
}

func (hs *clientHandshake) sendClientFinished() error {
	payload := finishedMAC(hs.keys.finC, hs.th)
	hs.cfg.hooks.mutateFinished(payload)
	if err := hs.dl.arm(); err != nil {
		return err
	}
	if err := hs.conn.WriteRecord(cipher.TypeFinished, payload); err != nil {
		return fmt.Errorf("handshake: sending FINISHED: %w", err)
	}
	clear(hs.keys.finC)
	clear(hs.keys.finS)
	return nil
}

// login sends AUTH until the server accepts or the attempts run out
// (PROTOCOL.md §10.2). It runs only after the server is authenticated.
func (hs *clientHandshake) login() error {
	keys := hs.cfg.Keys
	passwordAttempts := 0
	var keyErr error // why the last key could not sign
	for attempt := 1; ; attempt++ {
		var payload []byte
		var err error
		var signer crypto.Signer // the key of this attempt, if any
		// While there is a password, keys leave it the last attempt: a
		// client with many keys must not lock itself out, as ssh clients
		// with full agents do.
		for payload == nil && len(keys) > 0 && (hs.cfg.Password == nil || attempt < hs.maxTries) {
			// A key that cannot sign (an agent that refuses, say) is
			// skipped without using an attempt.
			payload, keyErr = marshalKeyAuth(hs.th, hs.cfg.User, keys[0])
			if payload != nil {
				signer = keys[0]
			}
			keys = keys[1:]
		}
		switch {
		case payload != nil:
		case hs.cfg.Password != nil:
			passwordAttempts++
			var pw []byte
			pw, err = hs.cfg.Password(passwordAttempts)
			if err != nil {
				err = fmt.Errorf("handshake: reading password: %w", err)
			} else {
				payload, err = marshalAuth(hs.cfg.User, pw)
				clear(pw)
			}
		case keyErr != nil && attempt == 1:
			// No key could sign and there is no password: a login
			// failure (exit code 3 for connect), not a network one.
			err = fmt.Errorf("%w: %w", ErrAuthFailed, keyErr)
		default:
			err = fmt.Errorf("%w: the server accepted no key and there is no password", ErrAuthFailed)
		}
		if err != nil {
			// Not a protocol failure: end the session properly.
			hs.conn.Close()
			hs.closed = true
			return err
		}
		if err := hs.dl.arm(); err != nil {
			return err
		}
		err = hs.conn.WriteRecord(cipher.TypeAuth, payload)
		clear(payload)
		if err != nil {
			return fmt.Errorf("handshake: sending AUTH: %w", err)
		}
		if err := hs.dl.arm(); err != nil {
			return err
		}
		result, err := readRecordOfType(hs.conn, cipher.TypeAuthResult)
		if errors.Is(err, io.EOF) {
			// The record layer has answered the server's CLOSE.
			hs.closed = true
			if attempt > 1 {
				// The server gave up on us after an earlier failure.
				return fmt.Errorf("%w: the server closed the session after %d attempts", ErrAuthFailed, attempt-1)
			}
		}
		if err != nil {
			return err
		}
		if len(result) != 1 || result[0] > authFailure {
			hs.conn.Abort()
			return errors.New("handshake: malformed AUTH_RESULT")
		}
		if result[0] == authSuccess {
			hs.conn.SetEstablished()
			hs.loginKey = signer
			return nil
		}
		if attempt >= hs.maxTries {
			// The server may be closing too; Close sends CLOSE and waits
			// (boundedly) for the server's.
			hs.conn.Close()
			hs.closed = true
			return fmt.Errorf("%w after %d attempts", ErrAuthFailed, attempt)
		}
	}
}

func (hs *clientHandshake) fail(error) {
	switch {
	case hs.closed:
		hs.c.Close()
	case hs.conn != nil:
		hs.conn.Abort()
	default:
		abortTransport(hs.c)
	}
}

func (hs *clientHandshake) eraseShares() {
	for _, s := range hs.shares {
		s.erase()
	}
}

func (hs *clientHandshake) erase() {
	hs.eraseShares()
	if hs.keys != nil {
		hs.keys.erase()
	}
}

// marshalAuth encodes method | username opaque8 | password opaque16,
// refusing a password the server could never accept.
func marshalAuth(user string, pw []byte) ([]byte, error) {
	if len(pw) < 1 || len(pw) > maxPasswordLen {
		return nil, fmt.Errorf("handshake: password must be 1 to %d bytes", maxPasswordLen)
	}
	if !utf8.Valid(pw) {
		return nil, errors.New("handshake: password is not valid UTF-8")
	}
	b := make([]byte, 0, 4+len(user)+len(pw))
	b = append(b, authMethodPassword, byte(len(user)))
	b = append(b, user...)
	b = append(b, byte(len(pw)>>8), byte(len(pw)))
	return append(b, pw...), nil
}

// readRecordOfType reads the next record and fails the connection unless it
// has the type the state machine expects (PROTOCOL.md §10.3).
func readRecordOfType(c *cipher.Conn, want cipher.RecordType) ([]byte, error) {
	typ, payload, err := c.ReadRecord()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("handshake: peer closed the session while waiting for %v: %w", want, err)
		}
		return nil, fmt.Errorf("handshake: waiting for %v: %w", want, err)
	}
	if typ != want {
		c.Abort()
		return nil, fmt.Errorf("handshake: got %v record while waiting for %v", typ, want)
	}
	return payload, nil
}
