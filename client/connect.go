package client

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"securechat/chat"
	"securechat/client/tui"
	"securechat/handshake"
	"securechat/msgsig"
	"securechat/transport"
)

// scriptReconnects is how many times script mode reconnects after losing
// an established connection before it gives up with exit code 5.
const scriptReconnects = 5

// dialTimeout bounds the transport setup of one connection attempt and,
// separately, the wait for the welcome after login. The handshake itself is
// not under it: the user may be reading a fingerprint or typing a
// password, and the handshake's own step deadlines and the server's login
// grace time bound the network waits.
const dialTimeout = 30 * time.Second

// Config is everything a connection attempt needs.
type Config struct {
	// Addr is the server as the user named it: the first address of
	// Addrs when there are several. Users' keys in known_users are
	// pinned under it, so that a failover keeps them.
	Addr string
	// Addrs, when set, lists every address of the server, Addr first, to
	// fail over between (see failover.go).
	Addrs     []string
	Transport transport.Transport
	User      string
	Groups    []handshake.Group
	HostKey   func(ed25519.PublicKey) error
	Password  func(attempt int) ([]byte, error) // nil: keys only
	Keys      []crypto.Signer                   // tried before the password
	Rooms     []string
	Reconnect bool
	// ClientName names this client in the hello (PROTOCOL.md §13.3), as
	// "securechat VERSION".
	ClientName string

	// HostKeyVerified records a new host key; the handshake calls it only
	// once the server has proved it holds the key.
	HostKeyVerified func(ed25519.PublicKey) error
	// HostKeysAnnounced handles a host key announcement, the first APP
	// record of a session (PROTOCOL.md §7.5).
	HostKeysAnnounced func(*handshake.Session, []byte)
	// TrustFor, when set, gives the host key checks for each address
	// (KnownHostsGroupTrust), in place of the three fields above.
	TrustFor func(addr string) *HostKeyTrust

	// KnownUsers is the known_users file that pins other users' signing
	// keys (PROTOCOL.md §13.16.6), Counters the file that keeps their
	// highest counters across runs; with KnownUsers empty incoming
	// signatures are not checked. UserKeyPolicy says what to do with a
	// key known_users does not pin yet.
	KnownUsers    string
	Counters      string
	UserKeyPolicy msgsig.Policy

	// Test hooks: a fixed delay before each reconnect attempt, and a
	// channel each attempt waits on before it dials; the idle time after
	// which the link pings the server (0: idlePing).
	testOnlyRedialDelay time.Duration
	testOnlyRedialHold  chan struct{}
	testOnlyIdlePing    time.Duration
}

// idlePing is how long a link may send nothing before it pings the
// server. The ping is what makes a QUIC server that restarted answer with
// a stateless reset, so the client reconnects within this time rather
// than after the 30 s idle timeout: QUIC's own keep-alive packets are too
// small to be answered with a reset (one must be shorter than the packet
// it answers), and every securechat record is long enough.
const idlePing = 15 * time.Second

// serverSilence is how many idle-ping intervals without a single record
// from the server end the link (45 s with idlePing).
const serverSilence = 3

// PasswordSource returns how the password is obtained: a file, the
// environment, or (interactive only) a prompt on the terminal. The password
// is read once and kept for reconnects; it never comes from a flag value.
func PasswordSource(ctx context.Context, file string, interactive bool) (func(int) ([]byte, error), error) {
	var fixed []byte
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("password file: %w", err)
		}
		b = trimOneNewline(b)
		if len(b) == 0 {
			return nil, fmt.Errorf("password file %s is empty", file)
		}
		fixed = b
	case os.Getenv("SECURECHAT_PASSWORD") != "":
		fixed = []byte(os.Getenv("SECURECHAT_PASSWORD"))
	case !interactive:
		return nil, fail(nil, errors.New("no password: standard input is not a terminal"),
			"use --password-file FILE or set SECURECHAT_PASSWORD")
	}
	if fixed != nil {
		return func(attempt int) ([]byte, error) {
			if attempt > 1 {
				// Retrying the same stored password cannot help and would
				// only burn attempts.
				return nil, handshake.ErrAuthFailed
			}
			return append([]byte(nil), fixed...), nil
		}, nil
	}
	var mu sync.Mutex
	var good []byte
	return func(attempt int) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if good != nil && attempt == 1 {
			return append([]byte(nil), good...), nil
		}
		prompt := "Password: "
		if attempt > 1 {
			// As ssh says it: without it a refused password looks like
			// a prompt that did not take the Enter.
			prompt = "Permission denied, please try again.\r\n" + prompt
		}
		p, err := ReadPassword(ctx, prompt)
		if err != nil {
			return nil, err
		}
		good = append(good[:0], p...)
		return p, nil
	}, nil
}

// trimOneNewline removes exactly one trailing "\n" or "\r\n", as a file
// written by echo or an editor ends.
func trimOneNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// AskOnTTY returns the question about an unknown host key, asked on the
// terminal in OpenSSH's words. A yes records nothing yet: see
// HostKeyChecks. When ctx ends (Ctrl-C, which the process catches) the
// question ends at once with ErrInterrupted, without waiting for Enter.
func AskOnTTY(ctx context.Context) func(hostport, fingerprint string) (bool, error) {
	return func(hostport, fingerprint string) (bool, error) {
		tty, err := os.OpenFile(ttyPath, os.O_RDWR, 0)
		if err != nil {
			return false, fmt.Errorf("cannot ask about the host key: no terminal (%v)", err)
		}
		type answer struct {
			ok  bool
			err error
		}
		done := make(chan answer, 1)
		go func() {
			// The goroutine owns tty, as in ReadPassword: it may outlive
			// the call when ctx ends first.
			ok, err := AskHostKey(tty, tty, hostport, "", fingerprint)
			tty.Close()
			done <- answer{ok, err}
		}()
		select {
		case a := <-done:
			return a.ok, a.err
		case <-ctx.Done():
			return false, interrupted()
		}
	}
}

// interrupted is the error of a prompt ended by Ctrl-C.
func interrupted() error { return fail(ErrInterrupted, errors.New("interrupted"), "") }

// HostKeyChecks returns the host key check for the server at addr (by
// known_hosts, policy, pinned fingerprint and ask) and the step that
// records a newly accepted key. The handshake runs the second only after
// the server's signature and FINISHED verified (PROTOCOL.md §7.3), and it
// prints OpenSSH's "Permanently added" note on notes only once the key is
// really written.
func HostKeyChecks(file, addr string, policy handshake.HostKeyPolicy, pinned string,
	ask func(hostport, fingerprint string) (bool, error), notes io.Writer) (check, record func(ed25519.PublicKey) error, err error) {
	t, err := KnownHostsTrust(file, addr, policy, pinned, ask, notes)
	if err != nil {
		return nil, nil, err
	}
	return t.Check, t.Record, nil
}

// HostKeyTrust is what HostKeyChecks returns, and RecordNext: the step that
// records a next host key which the server announced in a session and
// proved for it (PROTOCOL.md §7.5). It never asks, whatever the policy:
// the server was authenticated by a key the user already trusts. It is
// silent when it records; a refused announcement gets a warning on notes
// and the session goes on.
type HostKeyTrust struct {
	Check, Record func(ed25519.PublicKey) error
	RecordNext    func(*handshake.Session, []byte)
}

func KnownHostsTrust(file, addr string, policy handshake.HostKeyPolicy, pinned string,
	ask func(hostport, fingerprint string) (bool, error), notes io.Writer) (*HostKeyTrust, error) {
	k, err := handshake.NewKnownHostsChecker(file, addr, policy, pinned, ask)
	if err != nil {
		return nil, err
	}
	recordNext := func(sess *handshake.Session, payload []byte) {
		next, err := handshake.VerifyHostKeyAnnouncement(payload, sess.HostKey, sess.SessionID)
		if err == nil {
			_, err = k.RecordNext(sess.HostKey, next)
		}
		if err != nil {
			fmt.Fprintf(notes, "securechat: warning: not recording the next host key that %s announced: %s\n",
				displayHost(addr), strings.TrimPrefix(err.Error(), "handshake: "))
		}
	}
	record := func(key ed25519.PublicKey) error {
		added, err := k.Record(key)
		var changed *handshake.HostKeyChangedError
		var revoked *handshake.HostKeyRevokedError
		switch {
		case errors.As(err, &changed), errors.As(err, &revoked):
			return err
		case err != nil:
			return fail(nil, fmt.Errorf("cannot record the host key of %s: %w", addr, err), "")
		case added:
			fmt.Fprint(notes, HostKeyAddedMessage(addr))
		}
		return nil
	}
	return &HostKeyTrust{Check: k.Check, Record: record, RecordNext: recordNext}, nil
}

// Link is one established connection.
type Link struct {
	addr    string // the address it is connected to
	index   int    // addr's place in Config.addrs()
	sess    *handshake.Session
	welcome *chat.Event
	events  chan *chat.Event // closed when the connection ends
	err     error            // why it ended; read after events is closed
	ended   chan struct{}    // closed with events

	lastSend atomic.Int64 // when the last request went out, Unix ns
	lastRecv atomic.Int64 // when the last record came in, Unix ns
	// silent is why pingWhenIdle gave the server up, read by readLoop
	// when the abort it caused ends the read.
	silent atomic.Pointer[error]

	hostKeysAnnounced func(*handshake.Session, []byte) // nil: ignore announcements

	// signer signs every message this session sends; nil after a password
	// login, or when the server names another key in welcome.key.
	signer *msgsig.Sender
}

// signingKey is the session's signing key (PROTOCOL.md §13.16.1): the key
// the user logged in with, provided the server says so in welcome.key.
func (l *Link) signingKey() ed25519.PublicKey {
	if l.sess.UserSigner == nil || l.welcome == nil || l.welcome.Key != msgsig.EncodeKey(l.sess.UserKey) {
		return nil
	}
	return l.sess.UserKey
}

// signRequest returns req as it goes on the wire: a msg request of a
// session with a signing key is sanitised as the server would sanitise
// it (the signature covers the relayed text) and signed. req itself is
// left alone, so a line resent after a reconnect is signed afresh with a
// new counter.
func signRequest(s *msgsig.Sender, from string, req *chat.Request) (*chat.Request, error) {
	if s == nil || req.Type != chat.TypeMsg {
		return req, nil
	}
	signed := *req
	signed.Text = chat.SanitizeText(req.Text)
	kind, target := req.Kind, req.Room
	switch {
	case req.To != "":
		kind, target = msgsig.KindDM, req.To
	case kind == "":
		kind = msgsig.KindMsg
	}
	sg, err := s.Sign(kind, target, from, signed.Text)
	if err != nil {
		return nil, fmt.Errorf("cannot sign the message: %w", err)
	}
	signed.Sig, signed.Ctr, signed.Cts = sg.Sig, sg.Ctr, sg.Cts
	return &signed, nil
}

// HostKey is the host key the server proved it holds.
func (l *Link) HostKey() ed25519.PublicKey { return l.sess.HostKey }

// Close ends the session cleanly.
func (l *Link) Close() error { return l.sess.Close() }

func (l *Link) send(r *chat.Request) error {
	if l.welcome != nil {
		var err error
		if r, err = signRequest(l.signer, l.welcome.User, r); err != nil {
			return err
		}
	}
	p, err := chat.EncodeRequest(r)
	if err != nil {
		return err
	}
	l.lastSend.Store(time.Now().UnixNano())
	return l.sess.WriteMessage(p)
}

// pingWhenIdle sends a ping whenever the link has sent nothing for idle,
// until the connection ends. The server's pong is dropped by readLoop.
// A server from which nothing at all has come for serverSilence idle
// times, pings unanswered, is given up as OpenSSH's ServerAliveCountMax
// gives it up: over TCP a server whose machine vanished would otherwise
// be noticed only when TCP's own timers give up, minutes later.
func (l *Link) pingWhenIdle(idle time.Duration) {
	t := time.NewTicker(idle / 3)
	defer t.Stop()
	for n := 1; ; {
		select {
		case <-l.ended:
			return
		case now := <-t.C:
			if silence := now.Sub(time.Unix(0, l.lastRecv.Load())); silence >= serverSilence*idle {
				err := fmt.Errorf("the server has not answered for %v", silence.Round(time.Second))
				l.silent.Store(&err)
				l.sess.Abort()
				return
			}
			if now.Sub(time.Unix(0, l.lastSend.Load())) < idle {
				continue
			}
			if l.send(&chat.Request{Type: chat.TypePing, ID: "k" + strconv.Itoa(n)}) != nil {
				return
			}
			n++
		}
	}
}

// Dial connects, runs the handshake and login, says hello and waits for
// the welcome. With several addresses it tries them in order until one
// works (dialAny). Errors are returned with their exit codes attached.
func Dial(ctx context.Context, cfg *Config) (*Link, error) {
	return dialAny(ctx, cfg, inOrder(len(cfg.addrs())), nil)
}

// Addr is the address the link is connected to.
func (l *Link) Addr() string { return l.addr }

// dialAddr is Dial at one address.
func dialAddr(ctx context.Context, cfg *Config, addr string) (*Link, error) {
	trust := cfg.trustFor(addr)
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	conn, err := cfg.Transport.Dial(dctx, addr, nil)
	cancel()
	if err != nil {
		return nil, fail(ErrConnectionLost, fmt.Errorf("cannot connect to %s: %w", addr, err), dialHint(cfg.Transport.Name(), err))
	}
	sess, err := handshake.Client(ctx, conn, &handshake.ClientConfig{
		Groups:          cfg.Groups,
		Transport:       cfg.Transport.Name(),
		HostKeyCallback: trust.Check,
		HostKeyVerified: trust.Record,
		User:            cfg.User,
		Keys:            cfg.Keys,
		Password:        cfg.Password,
	})
	if err != nil {
		if ctx.Err() != nil {
			// Ctrl-C (or SIGTERM) during the handshake, most likely at
			// one of its prompts: the user asked to stop.
			return nil, interrupted()
		}
		return nil, classifyHandshakeError(cfg, addr, err)
	}
	l := &Link{addr: addr, sess: sess, events: make(chan *chat.Event, 256), ended: make(chan struct{}),
		hostKeysAnnounced: trust.RecordNext}
	l.lastRecv.Store(time.Now().UnixNano())
	if err := l.send(&chat.Request{Type: chat.TypeHello, ID: "hello", V: chat.Version,
		Client: cfg.ClientName, Rooms: cfg.Rooms}); err != nil {
		sess.Abort()
		return nil, fail(ErrConnectionLost, fmt.Errorf("connection lost: %w", err), "")
	}
	go l.readLoop()
	welcomeTimeout := time.NewTimer(dialTimeout)
	defer welcomeTimeout.Stop()
	for {
		select {
		case ev, ok := <-l.events:
			if !ok {
				return nil, fail(ErrConnectionLost, fmt.Errorf("connection lost during login: %w", l.err), "")
			}
			switch {
			case ev.Type == chat.TypeWelcome:
				l.welcome = ev
				if k := l.signingKey(); k != nil {
					l.signer = &msgsig.Sender{Signer: l.sess.UserSigner}
				}
				idle := idlePing
				if cfg.testOnlyIdlePing > 0 {
					idle = cfg.testOnlyIdlePing
				}
				go l.pingWhenIdle(idle)
				return l, nil
			case ev.Type == chat.TypeError && (ev.Code == chat.CodeBanned || ev.Code == chat.CodeVersion || ev.Code == chat.CodeBadName):
				sess.Close()
				return nil, fail(ErrAuthFailed, fmt.Errorf("the server refused the session: %s", ev.Text), "")
			case ev.Type == chat.TypeError && ev.Code == chat.CodeSessionLimit:
				// Another session of the account may end soon: a reconnect
				// may try again, as after a lost connection.
				sess.Close()
				return nil, fail(ErrConnectionLost, fmt.Errorf("the server refused the session: %s", chat.SanitizeText(ev.Text)), "")
			}
		case <-welcomeTimeout.C:
			sess.Abort()
			return nil, fail(ErrConnectionLost, errors.New("no welcome from the server in time"), "")
		case <-ctx.Done():
			sess.Abort()
			return nil, fail(ErrConnectionLost, ctx.Err(), "")
		}
	}
}

// readLoop decodes events until the connection ends; it answers pings at
// once so that a busy UI never looks dead to the server. Every event is
// cleaned (cleanEvent) before anyone else sees it. A second welcome is a
// protocol violation (PROTOCOL.md §13.3): it ends the connection with a
// *protocolError, which the callers do not retry.
func (l *Link) readLoop() {
	defer close(l.ended)
	defer close(l.events)
	welcomed := false
	for first := true; ; first = false {
		p, err := l.sess.ReadMessage()
		if err != nil {
			l.err = err
			if silent := l.silent.Load(); silent != nil {
				l.err = *silent
			}
			return
		}
		l.lastRecv.Store(time.Now().UnixNano())
		if handshake.IsHostKeyAnnouncement(p) {
			// Only as the session's first APP record (PROTOCOL.md §7.5).
			if first && l.hostKeysAnnounced != nil {
				l.hostKeysAnnounced(l.sess, p)
			}
			continue
		}
		ev, err := chat.DecodeEvent(p)
		if err != nil {
			// A newer server may send what this client cannot parse; it
			// must not end the session.
			continue
		}
		if ev.Type == chat.TypePing {
			l.send(&chat.Request{Type: chat.TypePong, ID: ev.ID})
			continue
		}
		if ev.Type == chat.TypePong {
			continue // the answer to pingWhenIdle
		}
		if ev.Type == chat.TypeWelcome {
			if welcomed {
				l.err = &protocolError{what: "the server sent a second welcome in mid-session"}
				l.sess.Abort()
				return
			}
			welcomed = true
		}
		cleanEvent(ev)
		l.events <- ev
	}
}

// protocolError is a server breaking the chat protocol. The session cannot
// be trusted to mean what it says any more, and a reconnect would meet the
// same server, so it ends the client with exit code 1.
type protocolError struct{ what string }

func (e *protocolError) Error() string { return "protocol error: " + e.what }

// cleanEvent makes ev safe to print and to act on, in place. Text the server
// sends reaches the terminal in many ways (event lines, the prompt, Tab
// completion, error messages on stderr), so it is sanitised here, once,
// as it arrives (PROTOCOL.md §13.10: clients sanitise again what they
// show): texts that may span lines keep LF, all others become one line.
// Names that break the rules of PROTOCOL.md §13.8 are dropped from lists
// and emptied elsewhere, so that no invalid name ever lands in the roster,
// the prompt or a completion.
func cleanEvent(ev *chat.Event) {
	ev.Text = chat.SanitizeMultiline(ev.Text)
	ev.MOTD = chat.SanitizeMultiline(ev.MOTD)
	for _, s := range []*string{&ev.Kind, &ev.Cmd, &ev.Topic, &ev.Code, &ev.TS, &ev.Since} {
		*s = chat.SanitizeText(*s)
	}
	for _, s := range []*string{&ev.User, &ev.From, &ev.To} {
		if !chat.ValidUser(*s) {
			*s = ""
		}
	}
	if !chat.ValidRoom(ev.Room) {
		ev.Room = ""
	}
	ev.Members = slices.DeleteFunc(ev.Members, func(n string) bool { return !chat.ValidUser(n) })
	ev.Joined = slices.DeleteFunc(ev.Joined, func(n string) bool { return !chat.ValidRoom(n) })
	ev.Rooms = slices.DeleteFunc(ev.Rooms, func(r chat.RoomInfo) bool { return !chat.ValidRoom(r.Room) })
	for i := range ev.Rooms {
		ev.Rooms[i].Topic = chat.SanitizeText(ev.Rooms[i].Topic)
	}
}

// classifyHandshakeError is the one place that gives handshake errors their
// kinds. A server that could not be authenticated is ErrServerNotAuthenticated like a
// refused host key: it is what an attack in the middle looks like, and
// fatal keeps the reconnect loops from trying again.
func classifyHandshakeError(cfg *Config, addr string, err error) error {
	var changed *handshake.HostKeyChangedError
	var revoked *handshake.HostKeyRevokedError
	var abort *handshake.AbortError
	var notAuth *handshake.ServerAuthError
	var sibling *siblingKeyError
	var own *Error
	if errors.Is(err, ErrInterrupted) {
		return err
	}
	cause := err
	if errors.As(err, &notAuth) {
		cause = notAuth.Err
	}
	switch {
	case errors.As(err, &revoked):
		return fail(ErrServerNotAuthenticated, errors.New(strings.TrimRight(
			HostKeyRevokedMessage(addr, revoked.Fingerprint, revoked.File, revoked.Line), "\n")), "")
	case errors.As(err, &sibling):
		return fail(ErrServerNotAuthenticated, errors.New(strings.TrimRight(
			HostKeyChangedMessage(addr, sibling.Got, sibling.File, sibling.Line), "\n")),
			fmt.Sprintf("%s, given in the same connect, is known with %s: the addresses of one connect must serve one host key", sibling.sibling, sibling.Want))
	case errors.As(err, &changed):
		return fail(ErrServerNotAuthenticated, errors.New(strings.TrimRight(
			HostKeyChangedMessage(addr, changed.Got, changed.File, changed.Line), "\n")), "")
	case isHostKeyError(err):
		return fail(ErrServerNotAuthenticated, fmt.Errorf("host key verification failed: %w", cause),
			"check the fingerprint with the server's operator, then use --fingerprint SHA256:... or --host-key-check accept-new")
	case notAuth != nil:
		return fail(ErrServerNotAuthenticated, &notAuthenticatedError{addr: addr, err: notAuth},
			"not retrying: someone may be intercepting the connection, or the server is broken; check with its operator")
	case errors.As(err, &own):
		// A callback of ours failed (recording the key, reading the
		// password) and already said how.
		return own
	case errors.Is(err, handshake.ErrAuthFailed):
		return fail(ErrAuthFailed, fmt.Errorf("authentication failed for %s", cfg.User), "")
	case errors.As(err, &abort):
		return fail(nil, fmt.Errorf("the server refused the handshake: %w", err),
			"check --transport and --kex against the server's settings")
	}
	hint := ""
	if errors.Is(err, handshake.ErrUnexpectedFrame) {
		hint = "this does not look like a securechat server; check the address and the port"
	}
	return fail(ErrConnectionLost, fmt.Errorf("handshake with %s failed: %w", addr, err), hint)
}

// dialHint guesses, from a failed connection attempt, the mistake a user
// is likely to have made: the wrong transport. A QUIC client at a TCP
// server's port hears nothing back and times out; a TCP client at a QUIC
// server's port is refused.
func dialHint(tr string, err error) string {
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	switch {
	case tr == "quic" && timeout:
		return "no QUIC server answered; is the server using --transport tcp?"
	case tr == "tcp" && errors.Is(err, syscall.ECONNREFUSED):
		return "is the server running? a QUIC server needs --transport quic"
	}
	return ""
}

// notAuthenticatedError says which server could not be authenticated and
// why, and keeps handshake.ErrServerNotAuthenticated matchable.
type notAuthenticatedError struct {
	addr string
	err  *handshake.ServerAuthError
}

func (e *notAuthenticatedError) Error() string {
	return fmt.Sprintf("the server at %s could not be authenticated: %s",
		e.addr, strings.TrimPrefix(e.err.Err.Error(), "handshake: "))
}

func (e *notAuthenticatedError) Unwrap() error { return e.err }

func isHostKeyError(err error) bool {
	var unknown *handshake.HostKeyUnknownError
	var pinned *handshake.PinnedKeyMismatchError
	return errors.Is(err, handshake.ErrHostKeyRejected) || errors.As(err, &unknown) || errors.As(err, &pinned)
}

// endedByServer reports whether ev is the server ending this session on
// purpose (a kick or a ban), after which reconnecting would be wrong, and
// the error to exit with.
func endedByServer(ev *chat.Event) (error, bool) {
	if ev.Type != chat.TypeError || ev.ID != "" {
		return nil, false
	}
	// The text becomes an error message on stderr: one sanitised line.
	text := chat.SanitizeText(ev.Text)
	switch ev.Code {
	case chat.CodeKicked:
		return fail(nil, errors.New(text), ""), true
	case chat.CodeBanned:
		return fail(ErrAuthFailed, errors.New(text), ""), true
	}
	return nil, false
}

// fatal reports whether a connect error must not be retried. A server
// that could not be authenticated is never retried, whatever its code.
func fatal(err error) bool {
	if errors.Is(err, handshake.ErrServerNotAuthenticated) {
		return true
	}
	var e *Error
	return errors.As(err, &e) && !errors.Is(err, ErrConnectionLost)
}

// toDisplay turns a chat event into the lines a person sees; ok is false
// for events that show nothing (acks, pongs).
func toDisplay(ev *chat.Event) []tui.Event {
	ts := time.Now()
	if ev.TS != "" {
		if t, err := time.Parse(time.RFC3339Nano, ev.TS); err == nil {
			ts = t
		}
	}
	lines := func(kind, room, text string) []tui.Event {
		var out []tui.Event
		for _, l := range strings.Split(text, "\n") {
			out = append(out, tui.Event{Time: ts, Kind: kind, Room: room, Text: l})
		}
		return out
	}
	switch ev.Type {
	case chat.TypeMsg:
		return []tui.Event{{ID: ev.MID, Time: ts, Kind: msgKind(ev.Kind), Room: ev.Room, From: ev.From,
			To: ev.To, Text: ev.Text, History: ev.History}}
	case chat.TypeReply:
		// A /help reply lists the server's commands; HelpText adds the
		// client's own (/fingerprint).
		return lines("system", "", chat.HelpText(ev))
	case chat.TypeError:
		out := lines("error", "", ev.Text)
		for i := range out {
			out[i].Code = ev.Code
		}
		return out
	case chat.TypeWelcome:
		out := lines("system", "", fmt.Sprintf("logged in as %s", ev.User))
		if strings.TrimSpace(ev.MOTD) != "" {
			out = append(out, lines("system", "", strings.TrimRight(ev.MOTD, "\n"))...)
		}
		return out
	}
	return nil
}

// msgKind is the kind a msg event is shown as: a kind this client does not
// know is shown as a notice (PROTOCOL.md §13.2), so that the kinds printed
// are exactly those of §17.
func msgKind(kind string) string {
	switch kind {
	case chat.KindMsg, chat.KindMe, chat.KindDM, chat.KindNotice, chat.KindTopic,
		chat.KindJoin, chat.KindPart, chat.KindQuit:
		return kind
	}
	return chat.KindNotice
}

// roster tracks rooms and their members for completion and the prompt.
type roster struct {
	self    string
	current string
	members map[string]map[string]bool
	pending map[string]bool // room events with More set
}

func newRoster(self string) *roster {
	return &roster{self: self, members: map[string]map[string]bool{}, pending: map[string]bool{}}
}

// rooms lists the rooms joined, the current one first, so that a
// reconnect comes back to where the user was.
func (r *roster) rooms() []string {
	var out []string
	if _, ok := r.members[r.current]; ok {
		out = append(out, r.current)
	}
	for name := range r.members {
		if name != r.current {
			out = append(out, name)
		}
	}
	return out
}

// apply updates the roster from ev and reports whether the current room
// changed.
func (r *roster) apply(ev *chat.Event) bool {
	before := r.current
	// cleanEvent has emptied invalid names; an event without a valid
	// name says nothing about the roster.
	switch ev.Type {
	case chat.TypeRoom:
		if ev.Room == "" {
			break
		}
		if !r.pending[ev.Room] || r.members[ev.Room] == nil {
			r.members[ev.Room] = map[string]bool{}
		}
		for _, m := range ev.Members {
			r.members[ev.Room][m] = true
		}
		r.pending[ev.Room] = ev.More
		if r.current == "" {
			r.current = ev.Room
		}
	case chat.TypeMsg:
		if ev.History || ev.From == "" {
			break
		}
		switch ev.Kind {
		case chat.KindJoin:
			if ev.Room == "" {
				break
			}
			if r.members[ev.Room] == nil {
				r.members[ev.Room] = map[string]bool{}
			}
			r.members[ev.Room][ev.From] = true
			if ev.From == r.self {
				r.current = ev.Room
			}
		case chat.KindPart:
			if ev.Room == "" {
				break
			}
			if ev.From == r.self {
				delete(r.members, ev.Room)
				if r.current == ev.Room {
					r.current = ""
					for name := range r.members {
						r.current = name
						break
					}
				}
			} else if m := r.members[ev.Room]; m != nil {
				delete(m, ev.From)
			}
		case chat.KindQuit:
			for _, m := range r.members {
				delete(m, ev.From)
			}
		}
	}
	return r.current != before
}

func (r *roster) nicks() []string {
	var out []string
	for m := range r.members[r.current] {
		out = append(out, m)
	}
	return out
}

// scriptMsg is one line of input on its way to the server. The line is
// parsed when it is first sent, so that it goes to the room current then.
type scriptMsg struct {
	id  string
	in  inputLine
	req *chat.Request
}

// initialRoom is the room lines go to right after login: the one asked
// for, else the first the welcome lists (#general on a default server).
func initialRoom(cfg *Config, welcome *chat.Event) string {
	if len(cfg.Rooms) > 0 {
		return cfg.Rooms[0]
	}
	// cleanEvent has dropped invalid room names from the list.
	for _, r := range welcome.Rooms {
		if r.Room == "#general" {
			return r.Room
		}
	}
	if len(welcome.Rooms) > 0 {
		return welcome.Rooms[0].Room
	}
	return ""
}

// maxScriptLine is the longest input line script mode keeps. A longer line
// cannot become a request that fits in one record (PROTOCOL.md §13.1), so
// of such a line only the start and the length are kept: memory stays
// bounded and the line is still refused by name rather than dropped.
const maxScriptLine = chat.MaxPayload

// inputLine is one line of script input.
type inputLine struct {
	num  int    // line number, from 1; blank lines count
	text string // the line without its end (LF or CRLF); only its first maxScriptLine bytes when size is larger
	size int    // the line's length in bytes, without its end
}

// cut reports whether the line was longer than maxScriptLine.
func (in inputLine) cut() bool { return in.size > len(in.text) }

// readInput calls next for every line of r, blank ones included, until the
// input ends, reading fails or next returns false. No line is too long to
// be reported: of a line longer than maxScriptLine only the start is kept
// (see inputLine). A last line without an LF counts. The error is nil at
// the end of input.
func readInput(r io.Reader, next func(inputLine) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for num := 1; ; num++ {
		buf = buf[:0]
		size := 0
		var last2 [2]byte // the line's last two bytes, for its end
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			size += len(chunk)
			if room := maxScriptLine + 2 - len(buf); room > 0 {
				buf = append(buf, chunk[:min(len(chunk), room)]...)
			}
			switch n := len(chunk); {
			case n >= 2:
				last2 = [2]byte{chunk[n-2], chunk[n-1]}
			case n == 1:
				last2 = [2]byte{last2[1], chunk[0]}
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if size == 0 {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if last2[1] == '\n' {
			size--
			if size > 0 && last2[0] == '\r' {
				size--
			}
		}
		if !next(inputLine{num: num, text: string(buf[:min(len(buf), size, maxScriptLine)]), size: size}) {
			return nil
		}
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// textLimit is the longest message text the server takes: welcome.limits.text,
// or the protocol's 4096 bytes when the welcome names none (PROTOCOL.md
// §13.11).
func textLimit(welcome *chat.Event) int {
	if welcome != nil && welcome.Limits != nil && welcome.Limits.Text > 0 {
		return welcome.Limits.Text
	}
	return chat.MaxText
}

// errorText is err's text for people: a chat error without its "chat: "
// prefix.
func errorText(err error) string {
	var ce *chat.Error
	if errors.As(err, &ce) {
		return ce.Text
	}
	return err.Error()
}

// tooLong is the local error for a line refused for its size (PROTOCOL.md
// §17.3); it uses the server's code for the same fault.
func tooLong(format string, args ...any) error {
	return &chat.Error{Code: chat.CodeTooLong, Text: fmt.Sprintf(format, args...)}
}

// checkRequestSize refuses, before sending, a request the server would
// refuse for its size or that cannot be sent at all: a message whose text
// is over limit bytes (the server would answer too_long), or a request
// whose JSON does not fit in one record (sealing it would break the
// connection). Both modes of the client call it, so a long line costs
// only itself.
func checkRequestSize(req *chat.Request, limit int) error {
	if req.Type == chat.TypeMsg && len(req.Text) > limit {
		return tooLong("the message is %d bytes, over the server's limit of %d; not sent", len(req.Text), limit)
	}
	// A message may be signed on its way out (signRequest): measure it
	// with the longest signature fields, so that signing never makes a
	// request too big for its record.
	probe := *req
	if probe.Type == chat.TypeMsg {
		probe.Sig = msgsig.EncodeSig(make([]byte, ed25519.SignatureSize))
		probe.Ctr, probe.Cts = msgsig.MaxCounter, msgsig.MaxCounter
	}
	if _, err := chat.EncodeRequest(&probe); err != nil {
		var ce *chat.Error
		if errors.As(err, &ce) {
			return tooLong("the request does not fit in one record (%s); not sent", ce.Text)
		}
		return err
	}
	return nil
}

// scriptRequest turns one input line into its request for room, or says
// why the line is not sent.
func scriptRequest(in inputLine, room string, limit int) (*chat.Request, error) {
	if in.cut() {
		if text, ok := strings.CutPrefix(in.text, "/"); !ok || strings.HasPrefix(text, "/") {
			n := in.size
			if ok {
				n-- // "//" sends a line starting with one "/"
			}
			return nil, tooLong("the message is %d bytes, over the server's limit of %d; not sent", n, limit)
		}
		return nil, tooLong("the line is %d bytes, more than one request can carry (%d); not sent", in.size, maxScriptLine)
	}
	req, err := chat.ParseLine(in.text, room)
	if err != nil {
		return nil, err
	}
	if err := checkRequestSize(req, limit); err != nil {
		return nil, err
	}
	return req, nil
}

// Bounds on the wait a flood error asks for (retry_ms, PROTOCOL.md
// §13.11). The floor keeps a server that says 0 from being hammered; the
// ceiling keeps an absurd value from hanging the script for good, and
// from overflowing time.Duration (2^63-1 ms would wrap to a wait in the
// past and the line would be resent in a tight loop).
const (
	minFloodWait = 50 * time.Millisecond
	maxFloodWait = 5 * time.Minute
)

// floodWait is how long to wait before resending a line refused with
// error flood and retry_ms.
func floodWait(retryMS int64) time.Duration {
	switch {
	case retryMS <= minFloodWait.Milliseconds():
		return minFloodWait
	case retryMS >= maxFloodWait.Milliseconds():
		return maxFloodWait
	}
	return time.Duration(retryMS) * time.Millisecond
}

// scriptOutcome is how a script run that reached the end of its input
// ends: nil when every line was delivered, else an error with exit code 1
// that counts what was not.
func scriptOutcome(refused, rejected int, readErr error) error {
	var parts []string
	if readErr != nil {
		parts = append(parts, fmt.Sprintf("reading standard input failed: %v", readErr))
	}
	if refused > 0 {
		parts = append(parts, fmt.Sprintf("%d of the input lines were not sent", refused))
	}
	if rejected > 0 {
		parts = append(parts, fmt.Sprintf("%d of the lines sent were rejected by the server", rejected))
	}
	if len(parts) == 0 {
		return nil
	}
	return fail(nil, errors.New(strings.Join(parts, "; ")), "")
}

// RunScript is the script/bot client. Every line of in becomes one request;
// every event becomes one line on out (PROTOCOL.md §17). Messages are sent
// in order; with a server flood limit each waits for its acknowledgement
// (so a rejected one is retried without reordering), otherwise up to
// scriptWindow are in flight. A line that cannot be sent (bad command, too
// long) is refused with an error naming it, and the rest go on. At the end
// of input it waits for every acknowledgement, then sends CLOSE. After a
// lost connection it reconnects and resends what was not acknowledged, so
// delivery is at least once.
func RunScript(ctx context.Context, cfg *Config, in io.Reader, out, errOut io.Writer, asJSON bool) error {
	rd := &redialer{cfg: cfg, limit: scriptReconnects, waiting: func(cause error, d time.Duration, attempt int) {
		fmt.Fprintf(errOut, "securechat: connection lost (%v); reconnecting in %s (attempt %d of %d)\n",
			cause, d.Round(100*time.Millisecond), attempt, scriptReconnects)
	}, failedOver: failoverNote(errOut)}
	// The window stays well below the server's per-session queue: every
	// line in flight brings back an echo and an ack.
	const scriptWindow = 64
	l, err := dialAny(ctx, cfg, inOrder(len(cfg.addrs())), failoverNote(errOut))
	if err != nil {
		return err
	}
	rd.connected(l)
	w := bufio.NewWriter(out)
	sc, err := newSigChecker(cfg, l, nil, func(msg string) {
		w.Flush()
		fmt.Fprintf(errOut, "securechat: %s\n", msg)
	})
	if err != nil {
		l.sess.Close()
		return err
	}
	defer sc.save(errOut)
	sc.welcomed()
	emit := func(d tui.Event) {
		if asJSON {
			b, err := tui.FormatJSON(d)
			if err == nil {
				w.Write(b)
				w.WriteByte('\n')
			}
		} else {
			w.WriteString(tui.FormatPlain(d))
			w.WriteByte('\n')
		}
	}
	// show prints ev; line is the input line it answers, 0 for none.
	show := func(ev *chat.Event, line int) {
		var mark tui.Event
		sc.mark(ev, &mark)
		for _, d := range toDisplay(ev) {
			d.Line = line
			d.Sig, d.SigReason = mark.Sig, mark.SigReason
			emit(d)
		}
	}
	show(l.welcome, 0)
	w.Flush()

	input := make(chan inputLine)
	var readErr error // written before input is closed
	go func() {
		defer close(input)
		readErr = readInput(in, func(line inputLine) bool {
			select {
			case input <- line:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()

	ros := newRoster(cfg.User)
	ros.current = initialRoom(cfg, l.welcome)
	var (
		pending  []scriptMsg // sent or to be sent, in order, not yet answered
		inflight int         // pending[:inflight] have been sent
		nextID   int
		refused  int // lines not sent: refused here
		rejected int // lines sent and refused by the server
		eof      bool
		retryAt  time.Time
		stop     error
	)
	limited := func() bool { return l.welcome.Limits != nil && l.welcome.Limits.Burst > 0 }
	window := func() int {
		if limited() {
			return 1
		}
		return scriptWindow
	}
	// A command changes state (the room) that later lines depend on, so
	// nothing is sent past an unanswered command.
	blocked := func() bool {
		for _, m := range pending[:inflight] {
			if m.req != nil && m.req.Type == chat.TypeCmd {
				return true
			}
		}
		return false
	}
	refuse := func(in inputLine, err error) {
		code := chat.CodeBadRequest
		var ce *chat.Error
		if errors.As(err, &ce) {
			code = ce.Code
		}
		emit(tui.Event{Time: time.Now(), Kind: "error", Line: in.num, Code: code, Text: errorText(err)})
		refused++
	}
	pump := func() error {
		for inflight < len(pending) && inflight < window() && !blocked() && !time.Now().Before(retryAt) {
			m := pending[inflight]
			if m.req == nil {
				req, err := scriptRequest(m.in, ros.current, textLimit(l.welcome))
				if err != nil {
					refuse(m.in, err)
					pending = slices.Delete(pending, inflight, inflight+1)
					continue
				}
				req.ID = m.id
				pending[inflight].req = req
				m.req = req
			}
			if err := l.send(m.req); err != nil {
				return err
			}
			inflight++
		}
		return nil
	}
	answer := func(id string) (scriptMsg, bool) {
		for i, m := range pending[:inflight] {
			if m.id == id {
				pending = slices.Delete(pending, i, i+1)
				inflight--
				return m, true
			}
		}
		return scriptMsg{}, false
	}
	lineOf := func(id string) int {
		for _, m := range pending[:inflight] {
			if m.id == id {
				return m.in.num
			}
		}
		return 0
	}
	var timer *time.Timer
	var timerC <-chan time.Time
	for {
		if eof && len(pending) == 0 {
			w.Flush()
			l.sess.Close()
			return scriptOutcome(refused, rejected, readErr)
		}
		var inputC <-chan inputLine
		if !eof && len(pending) < scriptWindow {
			inputC = input
		}
		w.Flush()
		select {
		case line, ok := <-inputC:
			if !ok {
				eof = true
				continue
			}
			if !line.cut() && strings.TrimSpace(line.text) == "" {
				continue
			}
			nextID++
			pending = append(pending, scriptMsg{id: "s" + strconv.Itoa(nextID), in: line})
			if err := pump(); err != nil {
				l.sess.Abort()
			}
		case ev, ok := <-l.events:
			if !ok {
				w.Flush()
				l.sess.Close()
				if stop != nil {
					return stop
				}
				var pe *protocolError
				if errors.As(l.err, &pe) {
					return fail(nil, pe, "")
				}
				if !cfg.Reconnect {
					return fail(ErrConnectionLost, fmt.Errorf("connection lost: %v (%d lines unacknowledged)", l.err, len(pending)), "")
				}
				cfg.Rooms = ros.rooms()
				nl, err := rd.redial(ctx, l.err)
				var gaveUp *gaveUpError
				switch {
				case errors.As(err, &gaveUp):
					return fail(ErrConnectionLost, fmt.Errorf("connection lost: %v (%d lines unacknowledged)", gaveUp.cause, len(pending)), "")
				case err != nil && ctx.Err() != nil:
					return fail(ErrConnectionLost, errors.New("interrupted while reconnecting"), "")
				case err != nil:
					return err
				}
				l, inflight = nl, 0
				sc.welcomed()
				ros = newRoster(cfg.User)
				ros.current = initialRoom(cfg, l.welcome)
				if err := pump(); err != nil {
					l.sess.Abort()
				}
				continue
			}
			ros.apply(ev)
			if err, ok := endedByServer(ev); ok {
				stop = err
			}
			switch ev.Type {
			case chat.TypeAck:
				if _, ok := answer(ev.ID); ok && rd.tries > 0 {
					// Progress since the last reconnect: the budget of
					// reconnects is for one outage, not for a lifetime.
					rd.progress()
				}
			case chat.TypeError:
				line := 0
				if ev.ID != "" {
					if m, ok := answer(ev.ID); ok {
						if ev.Code == chat.CodeFlood {
							// Put it back at the front and wait as told.
							pending = append([]scriptMsg{m}, pending...)
							retryAt = time.Now().Add(floodWait(ev.RetryMS))
							if timer != nil {
								timer.Stop()
							}
							timer = time.NewTimer(time.Until(retryAt))
							timerC = timer.C
							continue
						}
						rejected++
						line = m.in.num
					}
				}
				show(ev, line)
			case chat.TypeReply:
				show(ev, lineOf(ev.ID))
			default:
				show(ev, 0)
			}
			if err := pump(); err != nil {
				l.sess.Abort()
			}
		case <-timerC:
			timerC = nil
			if err := pump(); err != nil {
				l.sess.Abort()
			}
		case <-ctx.Done():
			w.Flush()
			l.sess.Close()
			return nil
		}
	}
}
