// Package server is the bridge between a listening transport, the secure
// channel and the chat hub: it accepts connections, applies the pre-login
// limits, runs the handshake and login, and hands each logged-in session to
// the hub.
//
// The one rule: nothing unauthenticated gets more than its share. Every
// connection is admitted through a StartupGate (OpenSSH MaxStartups) and a
// PenaltyBox (OpenSSH PerSourcePenalties) before any cryptography runs, and
// the handshake's grace time bounds how long it may stay unauthenticated.
package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"securechat/chat"
	"securechat/cipher"
	"securechat/handshake"
)

// Config configures a Server. Transport, HostKey, Verifier and Hub are
// required.
type Config struct {
	Transport string // "tcp" or "quic": the name the handshake checks
	HostKey   ed25519.PrivateKey
	Groups    []handshake.Group // allowed; empty = the handshake's default (no ffdhe3072)
	Verifier  handshake.Verifier
	// IsAdmin reports whether a user may moderate, for Identity.Admin at
	// login. Nil: nobody. A role can change while a session runs, so give
	// the hub the same function (chat.Config.IsAdmin): it asks at every
	// admin command.
	IsAdmin func(user string) bool
	Hub     *chat.Hub

	Gate      *StartupGate // nil: DefaultStartupGate
	Penalties *PenaltyBox  // nil: DefaultPenaltyBox
	// Checks schedules password checks. Nil: a CheckQueue with Gate's
	// exempt list that lets one check per source wait if Gate caps sources
	// (PerSource > 0), and any number otherwise. New makes it rank
	// sources by Penalties, so a CheckQueue serves one Server only.
	Checks *CheckQueue

	// PublicKeyOnly refuses password logins (serve --auth publickey): a
	// password AUTH gets the ordinary failure byte, without hashing or a
	// place in Checks, and counts as a failed login.
	PublicKeyOnly bool

	MaxAuthTries   int
	StepTimeout    time.Duration
	LoginGraceTime time.Duration
	Record         *cipher.Options

	// WriteTimeout bounds one write of queued chat events to a client; a
	// client that accepts nothing for this long is dropped. 0 means 30 s.
	WriteTimeout time.Duration

	// NextHostKey, if set, is announced to every client after login with
	// proofs by both keys (host key rotation, PROTOCOL.md §7.5).
	NextHostKey ed25519.PrivateKey

	// Hooks report logins, refusals, penalties, handshakes and rekeys as
	// they happen, for metrics. The zero value reports nothing.
	Hooks Hooks

	Logger *slog.Logger
}

// Server serves one listener. Create it with New.
type Server struct {
	cfg Config
	log *slog.Logger
	// refusals logs refused connections at a bounded rate.
	refusals *refusalLog
	// keys holds the host keys in use; SetHostKeys swaps them for new
	// connections.
	keys atomic.Pointer[hostKeys]

	// sessions counts the logged-in sessions being served, for metrics.
	sessions atomic.Int64

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{} // not yet handed to the hub
	shutting  bool
	wg        sync.WaitGroup
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.Gate == nil {
		cfg.Gate = DefaultStartupGate()
	}
	if cfg.Penalties == nil {
		cfg.Penalties = DefaultPenaltyBox()
	}
	if cfg.Checks == nil {
		cfg.Checks = &CheckQueue{Exempt: cfg.Gate.Exempt, PerSource: min(cfg.Gate.PerSource, 1)}
	}
	cfg.Checks.score = cfg.Penalties.rank
	cfg.Checks.record = cfg.Penalties.hasRecord
	cfg.Gate.score = cfg.Penalties.score
	if cfg.LoginGraceTime <= 0 {
		cfg.LoginGraceTime = handshake.DefaultLoginGraceTime
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if rekey := cfg.Hooks.Rekey; rekey != nil {
		// A copy, so that the caller's Options are not changed; chained,
		// so that their own OnRekey still runs.
		var rec cipher.Options
		if cfg.Record != nil {
			rec = *cfg.Record
		}
		if own := rec.OnRekey; own != nil {
			rec.OnRekey = func(sent bool) { own(sent); rekey(sent) }
		} else {
			rec.OnRekey = rekey
		}
		cfg.Record = &rec
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:       cfg,
		log:       log,
		refusals:  newRefusalLog(log, time.Second),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
	}
	s.keys.Store(&hostKeys{current: cfg.HostKey, next: cfg.NextHostKey})
	return s
}

// Sessions reports how many logged-in sessions the server is serving now.
func (s *Server) Sessions() int { return int(s.sessions.Load()) }

// penalize charges src the penalty for ev and reports it to Hooks.Penalty.
func (s *Server) penalize(src netip.Addr, ev PenaltyEvent) {
	s.cfg.Hooks.penalize(s.cfg.Penalties, src, ev)
}

// hostKeys is the current host key and, during a rotation, the next one.
type hostKeys struct {
	current, next ed25519.PrivateKey
}

// SetHostKeys replaces the host keys for connections accepted from now on
// (after a SIGHUP, say); sessions already running keep theirs. next may be
// nil: no rotation under way.
func (s *Server) SetHostKeys(current, next ed25519.PrivateKey) {
	s.keys.Store(&hostKeys{current: current, next: next})
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("server: closed")

// Serve accepts connections on ln until ln fails or Shutdown is called. It
// closes ln before returning. Each connection runs in its own goroutine.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.shutting {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var tempDelay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			shutting := s.shutting
			s.mu.Unlock()
			if shutting || errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			// Running out of file descriptors must not end the server:
			// back off and try again, as net/http does.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", tempDelay)
				time.Sleep(tempDelay)
				continue
			}
			return fmt.Errorf("server: accept: %w", err)
		}
		tempDelay = 0
		// Admission runs here, on the accept loop: a connection the limits
		// refuse is ended before the next accept, without a goroutine, a
		// logger or a place among the tracked connections. A storm's
		// refusals then take at most this one goroutine's share of the
		// CPU, queued with the sessions' goroutines rather than each
		// starting one of its own ahead of them.
		src := sourceAddr(c)
		st, refused, ok := s.admit(src, c)
		if !ok {
			abort(c)
			refused()
			continue
		}
		if !s.track(c) {
			st.release()
			c.Close()
			return ErrServerClosed
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(ctx, c, src, st)
		}()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// sourceAddr extracts the peer's IP for the limits; an address it cannot
// parse maps to the zero Addr, which shares one bucket.
func sourceAddr(c net.Conn) netip.Addr { return addrOf(c.RemoteAddr()) }

func addrOf(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// loginVerifier is the Verifier of one connection. It puts each password
// check through the penalty box and the check queue, records the first
// failure at once, and logs each failure with its reason. The reason stays
// in the server log; the client sees one failure byte whatever it was.
type loginVerifier struct {
	hooks     *Hooks // nil: none
	next      handshake.Verifier
	checks    *CheckQueue
	penalties *PenaltyBox
	log       *slog.Logger
	src       netip.Addr
	deadline  time.Time // the login grace time's end
	startup   *startup  // the connection's place at the gate
	failures  int
	// noPasswords refuses every password (Config.PublicKeyOnly).
	noPasswords bool
}

var errPasswordsOff = fmt.Errorf("%w: password logins are turned off (--auth publickey)", handshake.ErrAuthFailed)

func (v *loginVerifier) Verify(ctx context.Context, user string, password []byte) error {
	ctx, cancel := context.WithDeadline(ctx, v.deadline)
	defer cancel()
	// Not evicted while its check waits or runs; one evicted just now is
	// not checked at all.
	defer v.startup.endCheck()
	if !v.startup.beginCheck() {
		return errors.New("server: password not checked: connection evicted")
	}
	end := v.penalties.beginCheck(v.src)
	defer end()
	var refused bool
	var err error
	if v.noPasswords {
		refused, err = true, errPasswordsOff
	} else {
		refused, err = v.check(ctx, user, password)
	}
	switch {
	case err == nil:
		v.hooks.login(LoginOK)
	case errors.Is(err, handshake.ErrAuthFailed):
		if refused {
			v.hooks.login(LoginRefused)
		} else {
			v.hooks.login(LoginFailed)
		}
		v.failed()
		v.log.Warn("login failed", "user", user, "reason", err.Error())
	default:
		// Not the client's failure (the grace time ran out in the queue,
		// or the server is shutting down): no authfail penalty.
		v.hooks.login(LoginUnchecked)
		v.log.Warn("login not checked", "user", user, "reason", err.Error())
	}
	return err
}

// check runs the password check unless the source is refused: a check is
// refused, without any hashing, when the source would now be refused at
// accept, counting its other checks in flight but not this one. It asks
// before and after waiting for the queue, as other checks of the source
// may have failed meanwhile. refused says the check did not run.
func (v *loginVerifier) check(ctx context.Context, user string, password []byte) (refused bool, err error) {
	if _, why, blocked := v.penalties.blocked(v.src, 1); blocked {
		return true, fmt.Errorf("%w: check refused: %s", handshake.ErrAuthFailed, why)
	}
	release, err := v.checks.Acquire(ctx, v.src)
	if errors.Is(err, ErrSourceBusy) {
		return true, fmt.Errorf("%w: check refused: another check from this source is waiting", handshake.ErrAuthFailed)
	}
	if err != nil {
		return false, err
	}
	defer release()
	if _, why, blocked := v.penalties.blocked(v.src, 1); blocked {
		return true, fmt.Errorf("%w: check refused: %s", handshake.ErrAuthFailed, why)
	}
	return false, v.next.Verify(ctx, user, password)
}

// VerifyPublicKey checks a key login (PROTOCOL.md §10.2) with the
// configured Verifier, when it takes keys. It is called only for a key that
// signed this session. A key check is a lookup, not a hash: it takes no
// place in the check queue, but a source the penalty box would refuse now
// is refused here too, and a refused key counts as a failed login.
func (v *loginVerifier) VerifyPublicKey(ctx context.Context, user string, key ed25519.PublicKey) error {
	err := fmt.Errorf("%w: this server has no authorized keys", handshake.ErrAuthFailed)
	refused := false
	if _, why, blocked := v.penalties.blocked(v.src, 0); blocked {
		refused, err = true, fmt.Errorf("%w: check refused: %s", handshake.ErrAuthFailed, why)
	} else if pkv, ok := v.next.(handshake.PublicKeyVerifier); ok {
		err = pkv.VerifyPublicKey(ctx, user, key)
	}
	switch {
	case err == nil:
		v.hooks.login(LoginOK)
	case errors.Is(err, handshake.ErrAuthFailed):
		if refused {
			v.hooks.login(LoginRefused)
		} else {
			v.hooks.login(LoginFailed)
		}
		v.failed()
		v.log.Warn("login failed", "user", user, "method", "publickey", "reason", err.Error())
	default:
		v.hooks.login(LoginUnchecked)
		v.log.Warn("login not checked", "user", user, "method", "publickey", "reason", err.Error())
	}
	return err
}

// AuthRejected counts an AUTH the handshake refused unchecked (malformed
// name or password, another method) as a failed login.
func (v *loginVerifier) AuthRejected(reason string) {
	v.hooks.login(LoginRejected)
	v.failed()
	v.log.Warn("login failed", "reason", reason)
}

// failed counts a failed login. The connection's first failure earns the
// authfail penalty at once, as OpenSSH charges it once per connection, but
// without waiting for the connection to end: a storm whose connections
// queue for minutes must not stay unpunished meanwhile.
func (v *loginVerifier) failed() {
	if v.failures == 0 {
		v.hooks.penalize(v.penalties, v.src, PenaltyAuthFail)
	}
	v.failures++
}

// admit applies the PenaltyBox and the StartupGate to a new connection from
// src. On success the caller must release the place once; on refusal it
// must call refused, after ending the connection, which logs why. If c is
// not nil, the gate may evict it (see [StartupGate]) to make room for a
// source that is better off.
func (s *Server) admit(src netip.Addr, c net.Conn) (st *startup, refused func(), ok bool) {
	if left, why, blocked := s.cfg.Penalties.Blocked(src); blocked {
		s.refused(why)
		s.cfg.Penalties.Refused(src)
		return nil, func() { s.logRefusal(src, why, "for", left.Round(time.Second)) }, false
	}
	var evict func()
	if c != nil {
		evict = func() {
			abort(c)
			s.refused(evictedStartup)
			s.logRefusal(src, evictedStartup)
		}
	}
	st, why, ok := s.cfg.Gate.admit(src, evict)
	if !ok {
		s.refused(why)
		s.cfg.Penalties.Refused(src)
		n := s.cfg.Gate.Unauthenticated()
		return nil, func() { s.logRefusal(src, why, "unauthenticated", n) }, false
	}
	return st, nil, true
}

// connLog is the server log with a connection's attributes.
func (s *Server) connLog(src netip.Addr) *slog.Logger {
	return s.log.With("src", src.String(), "transport", s.cfg.Transport)
}

// logRefusal logs a refused connection from src through the rate-bounded
// refusal log. A line of its own is written by a goroutine of its own, at
// most one per reason and interval: refusals happen on the accept loop,
// which must not wait for a log that has fallen behind (a full pipe).
func (s *Server) logRefusal(src netip.Addr, why string, args ...any) {
	if s.refusals.note(why) {
		go s.connLog(src).Info("connection refused", append([]any{"reason", why}, args...)...)
	}
}

// refused reports a refusal, logged as why, to Hooks.Refused.
func (s *Server) refused(why string) {
	if h := s.cfg.Hooks.Refused; h != nil {
		if r, ok := refusedReason[why]; ok {
			h(r)
		} else {
			h(why) // a reason added to limits.go without a short name
		}
	}
}

// AdmitQUIC is the Admit hook of transport.Options for a QUIC listener: it
// applies the PenaltyBox and the StartupGate to a QUIC connection as soon as
// its QUIC handshake is done, while the listener still waits for its stream,
// and logs a refusal as for any connection. The connection then holds a
// place at the gate (its source's share included) until the listener hands
// it over or drops it; one dropped for want of a stream counts as a
// connection that never tried to log in (PenaltyNoAuth). Once handed over it
// goes through the same admission in Serve as a TCP connection.
func (s *Server) AdmitQUIC(remote net.Addr) (release func(dropped error), ok bool) {
	src := addrOf(remote)
	st, refused, ok := s.admit(src, nil)
	if !ok {
		refused()
		return nil, false
	}
	return func(dropped error) {
		st.release()
		if dropped != nil {
			s.penalize(src, PenaltyNoAuth)
			s.connLog(src).Info("handshake failed", "err", dropped)
		}
	}, true
}

// handle runs the handshake and then the session of c, a connection from
// src that holds st, its place at the gate.
func (s *Server) handle(ctx context.Context, c net.Conn, src netip.Addr, st *startup) {
	start := time.Now()
	log := s.connLog(src)

	verifier := &loginVerifier{hooks: &s.cfg.Hooks, next: s.cfg.Verifier, checks: s.cfg.Checks, penalties: s.cfg.Penalties,
		log: log, src: src, deadline: start.Add(s.cfg.LoginGraceTime), noPasswords: s.cfg.PublicKeyOnly, startup: st}
	keys := s.keys.Load()
	hcfg := &handshake.ServerConfig{
		HostKey:        keys.current,
		Groups:         s.cfg.Groups,
		Verifier:       verifier,
		Transport:      s.cfg.Transport,
		MaxAuthTries:   s.cfg.MaxAuthTries,
		StepTimeout:    s.cfg.StepTimeout,
		LoginGraceTime: s.cfg.LoginGraceTime,
		Record:         s.cfg.Record,
	}
	var group handshake.Group
	if s.cfg.Hooks.Handshake != nil {
		hcfg.Negotiated = func(g handshake.Group) { group = g }
	}
	sess, err := handshake.Server(ctx, c, hcfg)
	st.release()
	s.untrack(c)
	if h := s.cfg.Hooks.Handshake; h != nil {
		result := handshakeResult(err)
		if err != nil && verifier.failures > 0 {
			// Whether the server ran out of attempts or the client gave
			// up, it ended because the login failed.
			result = HandshakeAuthFailed
		}
		h(group, result, time.Since(start))
	}
	if err != nil {
		// A failed login was recorded when it happened.
		if verifier.failures == 0 {
			ev, why := PenaltyNoAuth, "noauth"
			if errors.Is(err, os.ErrDeadlineExceeded) {
				ev, why = PenaltyGraceExceeded, "grace time exceeded"
			}
			// A client that ends the connection on purpose before login
			// (for example after refusing our host key) is not
			// misbehaving much, but OpenSSH's noauth penalty applies to it
			// as well.
			s.penalize(src, ev)
			log.Info("handshake failed", "err", err, "penalty", why)
			return
		}
		log.Info("handshake failed", "err", err, "auth_failures", verifier.failures, "penalty", "authfail")
		return
	}
	log = log.With("user", sess.User, "session", fmt.Sprintf("%x", sess.SessionID[:6]))
	method := "password"
	if sess.UserKey != nil {
		// As ssh-keygen -l and 'securechat user key list' print it.
		if pk, err := ssh.NewPublicKey(sess.UserKey); err == nil {
			method = "publickey " + ssh.FingerprintSHA256(pk)
		}
	}
	log.Info("login", "group", sess.Group.String(), "method", method, "handshake", time.Since(start).Round(time.Millisecond))

	admin := s.cfg.IsAdmin != nil && s.cfg.IsAdmin(sess.User)
	sc := &sessionConn{sess: sess, writeTimeout: s.cfg.WriteTimeout}
	if keys.next != nil {
		// The first APP record after login (PROTOCOL.md §7.5). A failure
		// here is the connection's, and the hub will meet it too.
		if p, err := handshake.MarshalHostKeyAnnouncement(keys.current, keys.next, sess.SessionID); err != nil {
			log.Error("host key announcement", "err", err)
		} else if err := sc.WriteMessages([][]byte{p}); err != nil {
			log.Debug("host key announcement not sent", "err", err)
		}
	}
	s.sessions.Add(1)
	err = s.cfg.Hub.Serve(ctx, sc, chat.Identity{User: sess.User, Admin: admin, SigningKey: sess.UserKey})
	s.sessions.Add(-1)
	switch {
	case err == nil:
		log.Info("session ended")
	case errors.Is(err, cipher.ErrTruncated), errors.Is(err, io.ErrUnexpectedEOF):
		log.Info("session ended without close (truncated)", "err", err)
	default:
		log.Info("session ended", "err", err)
	}
}

// handshakeResult classifies how a handshake ended, for Hooks.Handshake.
func handshakeResult(err error) string {
	switch {
	case err == nil:
		return HandshakeOK
	case errors.Is(err, handshake.ErrAuthFailed):
		return HandshakeAuthFailed
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return HandshakeTimeout
	}
	return HandshakeError
}

// abort ends a connection we refuse before the handshake, as abruptly as
// the transport allows, so a flood costs us as little as possible.
func abort(c net.Conn) {
	if a, ok := c.(interface{ Abort() error }); ok {
		a.Abort()
		return
	}
	c.Close()
}

// Shutdown stops accepting, asks the hub to end every session with a
// notice and CLOSE records, and waits for all connection goroutines until
// ctx is done. Connections still in their handshake are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutting = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()

	hubErr := s.cfg.Hub.Shutdown(ctx)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return hubErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sessionConn adapts a logged-in secure channel to chat.Conn.
type sessionConn struct {
	sess         *handshake.Session
	writeTimeout time.Duration
	deadline     time.Time // the write deadline in force; the hub's one writer owns it
	closeOnce    sync.Once
}

func (c *sessionConn) ReadMessage() ([]byte, error) { return c.sess.ReadMessage() }

func (c *sessionConn) WriteMessages(msgs [][]byte) error {
	// A reader that stalls for writeTimeout is gone as far as chat is
	// concerned; the deadline also lets Close unblock a stuck write.
	// Moving a deadline updates a timer in the runtime's poller, which
	// showed up at 5-7 % of the server's CPU in fan-out, so it is moved only
	// once less than 9/10 of writeTimeout is left: a stalled reader is
	// dropped after between 0.9 and 1 times writeTimeout.
	now := time.Now()
	if c.deadline.Sub(now) < c.writeTimeout-c.writeTimeout/10 {
		c.deadline = now.Add(c.writeTimeout)
		c.sess.SetWriteDeadline(c.deadline)
	}
	return c.sess.WriteMessages(msgs)
}

func (c *sessionConn) Close() error {
	var err error
	// The record layer bounds its CLOSE with its own deadline, so a peer
	// that stopped reading cannot hold this.
	c.closeOnce.Do(func() { err = c.sess.Close() })
	return err
}
