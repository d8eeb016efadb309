package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"securechat/chat"
	"securechat/cipher"
	"securechat/credstore"
	"securechat/handshake"
	"securechat/transport"
)

// testParams keeps Argon2 cheap in tests; creds carry their own parameters.
var testParams = credstore.Params{Memory: 64, Time: 1, Threads: 1}

type testServer struct {
	t       *testing.T
	tr      transport.Transport
	addr    string
	hostPub ed25519.PublicKey
	hub     *chat.Hub
	srv     *Server
	done    chan error
}

type serverOpts struct {
	gate      *StartupGate
	penalties *PenaltyBox
	flood     float64
	// wrap, if set, wraps the credstore verifier (to slow it down or
	// watch what it is asked).
	wrap   func(handshake.Verifier) handshake.Verifier
	logger *slog.Logger
	hooks  Hooks
	record *cipher.Options
}

// startServer runs a real server on loopback over tr with accounts
// alice, bob and carol (password "password-NAME"), carol an admin.
func startServer(t *testing.T, tr transport.Transport, o serverOpts) *testServer {
	t.Helper()
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds.txt")
	err := credstore.Edit(creds, func(f *credstore.File) error {
		for _, u := range []string{"alice", "bob", "carol"} {
			role := credstore.RoleUser
			if u == "carol" {
				role = credstore.RoleAdmin
			}
			a, err := credstore.NewAccount(u, role, []byte("password-"+u), testParams)
			if err != nil {
				return err
			}
			if err := f.Add(a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	store, err := credstore.Load(creds, &credstore.Options{Params: testParams})
	if err != nil {
		t.Fatal(err)
	}
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	flood := o.flood
	if flood == 0 {
		flood = -1
	}
	// No cap on sessions per account: tests open hundreds for three accounts.
	hub := chat.NewHub(&chat.Config{FloodRate: flood, MaxSessionsPerUser: -1})
	if o.gate == nil {
		o.gate = &StartupGate{}
	}
	if o.penalties == nil {
		o.penalties = &PenaltyBox{}
	}
	var verifier handshake.Verifier = store
	if o.wrap != nil {
		verifier = o.wrap(store)
	}
	srv := New(Config{
		Transport: tr.Name(),
		HostKey:   hostKey,
		// ffdhe3072 is off by default; these tests cover every group.
		Groups:   []handshake.Group{handshake.GroupMLKEM768X25519, handshake.GroupX25519, handshake.GroupFFDHE3072},
		Verifier: verifier,
		IsAdmin: func(u string) bool {
			r, ok := store.Role(u)
			return ok && r == credstore.RoleAdmin
		},
		Hub:       hub,
		Gate:      o.gate,
		Penalties: o.penalties,
		Logger:    o.logger,
		Hooks:     o.hooks,
		Record:    o.record,
	})
	ln, err := tr.Listen(context.Background(), "127.0.0.1:0", &transport.Options{Admit: srv.AdmitQUIC, Precheck: srv.PrecheckQUIC})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, tr: tr, addr: ln.Addr().String(), hostPub: hostKey.Public().(ed25519.PublicKey),
		hub: hub, srv: srv, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-ts.done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ts
}

func (ts *testServer) dial(user, password string, groups ...handshake.Group) (*handshake.Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ts.tr.Dial(ctx, ts.addr, nil)
	if err != nil {
		return nil, err
	}
	return handshake.Client(ctx, c, &handshake.ClientConfig{
		Groups:          groups,
		Transport:       ts.tr.Name(),
		HostKeyCallback: handshake.FixedHostKey(ts.hostPub),
		User:            user,
		Password:        func(int) ([]byte, error) { return []byte(password), nil },
		MaxAuthTries:    1,
	})
}

// chatClient is a minimal chat-layer client over a session.
type chatClient struct {
	t      testing.TB
	sess   *handshake.Session
	events chan *chat.Event
	errc   chan error
}

func newChatClient(t testing.TB, sess *handshake.Session) *chatClient {
	c := &chatClient{t: t, sess: sess, events: make(chan *chat.Event, 4096), errc: make(chan error, 1)}
	go func() {
		for {
			p, err := sess.ReadMessage()
			if err != nil {
				c.errc <- err
				close(c.events)
				return
			}
			ev, err := chat.DecodeEvent(p)
			if err != nil {
				c.errc <- err
				close(c.events)
				return
			}
			if ev.Type == chat.TypePing {
				c.send(&chat.Request{Type: chat.TypePong, ID: ev.ID})
				continue
			}
			c.events <- ev
		}
	}()
	c.send(&chat.Request{Type: chat.TypeHello, V: chat.Version, ID: "hello"})
	c.waitFor(func(e *chat.Event) bool { return e.Type == chat.TypeWelcome })
	return c
}

func (c *chatClient) send(r *chat.Request) {
	p, err := chat.EncodeRequest(r)
	if err != nil {
		c.t.Error(err)
		return
	}
	if err := c.sess.WriteMessage(p); err != nil {
		c.t.Errorf("write: %v", err)
	}
}

// waitFor returns the first event matching ok, failing after 10 s.
func (c *chatClient) waitFor(ok func(*chat.Event) bool) *chat.Event {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, open := <-c.events:
			if !open {
				c.t.Fatalf("connection ended while waiting: %v", <-c.errc)
			}
			if ok(ev) {
				return ev
			}
		case <-timeout:
			c.t.Fatal("timed out waiting for an event")
		}
	}
}

var transports = []transport.Transport{transport.TCP, transport.QUIC}

func TestSessionEveryGroupEveryTransport(t *testing.T) {
	for _, tr := range transports {
		ts := startServer(t, tr, serverOpts{})
		for _, g := range []handshake.Group{handshake.GroupMLKEM768X25519, handshake.GroupX25519, handshake.GroupFFDHE3072} {
			t.Run(tr.Name()+"/"+g.String(), func(t *testing.T) {
				a, err := ts.dial("alice", "password-alice", g)
				if err != nil {
					t.Fatal(err)
				}
				if a.Group != g {
					t.Fatalf("negotiated %v, want %v", a.Group, g)
				}
				b, err := ts.dial("bob", "password-bob", g)
				if err != nil {
					t.Fatal(err)
				}
				ca, cb := newChatClient(t, a), newChatClient(t, b)
				text := "hello over " + tr.Name() + " with " + g.String()
				ca.send(&chat.Request{Type: chat.TypeMsg, ID: "m1", Room: "#general", Text: text})
				got := cb.waitFor(func(e *chat.Event) bool { return e.Type == chat.TypeMsg && e.Text == text })
				if got.From != "alice" || got.Room != "#general" || got.MID == 0 {
					t.Fatalf("bob got %+v", got)
				}
				ack := ca.waitFor(func(e *chat.Event) bool { return e.ID == "m1" })
				if ack.Type != chat.TypeAck || ack.MID != got.MID {
					t.Fatalf("alice got %+v for her message, want an ack with mid %d", ack, got.MID)
				}
				a.Close()
				b.Close()
			})
		}
	}
}

func TestWrongPasswordAndUnknownUserRefused(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.Name(), func(t *testing.T) {
			ts := startServer(t, tr, serverOpts{})
			for _, c := range []struct{ user, pw string }{{"alice", "wrong"}, {"mallory", "password-alice"}} {
				_, err := ts.dial(c.user, c.pw)
				if !errors.Is(err, handshake.ErrAuthFailed) {
					t.Errorf("%s/%s: err = %v, want ErrAuthFailed", c.user, c.pw, err)
				}
			}
		})
	}
}

// TestBulkTransfer moves 100 MiB through the full secure channel (handshake,
// record layer, transport) and checks it end to end.
func TestBulkTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB transfer skipped in -short mode")
	}
	const size = 100 << 20
	for _, tr := range transports {
		t.Run(tr.Name(), func(t *testing.T) {
			ln, err := tr.Listen(context.Background(), "127.0.0.1:0", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			_, hostKey, _ := ed25519.GenerateKey(rand.Reader)
			type result struct {
				sum [32]byte
				n   int64
				err error
			}
			res := make(chan result, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					res <- result{err: err}
					return
				}
				sess, err := handshake.Server(context.Background(), c, &handshake.ServerConfig{
					HostKey: hostKey, Transport: tr.Name(), Verifier: acceptAll{},
				})
				if err != nil {
					res <- result{err: err}
					return
				}
				h := sha256.New()
				n, err := io.Copy(h, sess)
				var r result
				copy(r.sum[:], h.Sum(nil))
				r.n, r.err = n, err
				sess.Close()
				res <- r
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := tr.Dial(ctx, ln.Addr().String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			sess, err := handshake.Client(ctx, c, &handshake.ClientConfig{
				Transport: tr.Name(), HostKeyCallback: handshake.FixedHostKey(hostKey.Public().(ed25519.PublicKey)),
				User: "alice", Password: func(int) ([]byte, error) { return []byte("pw"), nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			src := io.TeeReader(io.LimitReader(rand.Reader, size), h)
			if _, err := io.CopyBuffer(sess, src, make([]byte, 64<<10)); err != nil {
				t.Fatal(err)
			}
			if err := sess.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			r := <-res
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.n != size || !bytes.Equal(r.sum[:], h.Sum(nil)) {
				t.Fatalf("received %d bytes with a different hash, want %d", r.n, size)
			}
		})
	}
}

type acceptAll struct{}

func (acceptAll) Verify(context.Context, string, []byte) error { return nil }

// TestConcurrentSessions runs 200 logged-in sessions at once on one
// listener and checks a room message reaches every one of them.
func TestConcurrentSessions(t *testing.T) {
	const n = 200
	for _, tr := range transports {
		t.Run(tr.Name(), func(t *testing.T) {
			ts := startServer(t, tr, serverOpts{})
			clients := make([]*chatClient, n)
			var wg sync.WaitGroup
			errs := make(chan error, n)
			sem := make(chan struct{}, 16)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sem <- struct{}{}
					defer func() { <-sem }()
					user := []string{"alice", "bob", "carol"}[i%3]
					sess, err := ts.dial(user, "password-"+user, handshake.GroupX25519)
					if err != nil {
						errs <- fmt.Errorf("session %d: %w", i, err)
						return
					}
					clients[i] = newChatClient(t, sess)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if got := ts.hub.Stats().Sessions; got != n {
				t.Fatalf("hub has %d sessions, want %d", got, n)
			}
			clients[0].send(&chat.Request{Type: chat.TypeMsg, Room: "#general", Text: "to all 200"})
			for i, c := range clients {
				ev := c.waitFor(func(e *chat.Event) bool { return e.Type == chat.TypeMsg && e.Text == "to all 200" })
				if ev.From != "alice" {
					t.Fatalf("client %d: from %q", i, ev.From)
				}
			}
			for _, c := range clients {
				c.sess.Close()
			}
		})
	}
}

// TestAbruptPeerKill checks that a client vanishing without CLOSE is seen
// by the server as a truncated session, not a clean logout, and that the
// server keeps serving others.
func TestAbruptPeerKill(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.Name(), func(t *testing.T) {
			ts := startServer(t, tr, serverOpts{})
			a, err := ts.dial("alice", "password-alice")
			if err != nil {
				t.Fatal(err)
			}
			b, err := ts.dial("bob", "password-bob")
			if err != nil {
				t.Fatal(err)
			}
			ca, cb := newChatClient(t, a), newChatClient(t, b)
			cb.waitFor(func(e *chat.Event) bool { return e.Type == chat.TypeMsg && e.Kind == chat.KindJoin && e.From == "bob" })
			// Kill alice's transport under the record layer: no CLOSE is sent.
			a.Abort()
			ev := cb.waitFor(func(e *chat.Event) bool { return e.Type == chat.TypeMsg && e.Kind == chat.KindQuit })
			if ev.From != "alice" {
				t.Fatalf("quit notice for %q, want alice", ev.From)
			}
			_ = ca
			// The server's read error for alice is a truncation; the server
			// still serves bob.
			cb.send(&chat.Request{Type: chat.TypeMsg, ID: "after", Room: "#general", Text: "still here"})
			cb.waitFor(func(e *chat.Event) bool { return e.ID == "after" && e.Type == chat.TypeAck })
			b.Close()
		})
	}
}

// dialFrom logs in over TCP from the loopback address local with the
// given passwords, one per attempt.
func (ts *testServer) dialFrom(local, user string, passwords ...string) (*handshake.Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.DialContext(ctx, "tcp", ts.addr)
	if err != nil {
		return nil, err
	}
	return handshake.Client(ctx, c, &handshake.ClientConfig{
		Groups:          []handshake.Group{handshake.GroupX25519},
		Transport:       "tcp",
		HostKeyCallback: handshake.FixedHostKey(ts.hostPub),
		User:            user,
		Password:        func(n int) ([]byte, error) { return []byte(passwords[n-1]), nil },
		MaxAuthTries:    len(passwords),
	})
}

// verifierFunc adapts a function to handshake.Verifier.
type verifierFunc func(ctx context.Context, user string, password []byte) error

func (f verifierFunc) Verify(ctx context.Context, user string, password []byte) error {
	return f(ctx, user, password)
}

// TestVerifyBoundedByLoginGraceTime: a password check, and its wait for the
// hashing queue, may not outlive the connection's login grace time.
func TestVerifyBoundedByLoginGraceTime(t *testing.T) {
	var mu sync.Mutex
	var deadline time.Time
	var hasDeadline bool
	ts := startServer(t, transport.TCP, serverOpts{wrap: func(next handshake.Verifier) handshake.Verifier {
		return verifierFunc(func(ctx context.Context, user string, pw []byte) error {
			mu.Lock()
			deadline, hasDeadline = ctx.Deadline()
			mu.Unlock()
			return next.Verify(ctx, user, pw)
		})
	}})
	sess, err := ts.dial("alice", "password-alice")
	if err != nil {
		t.Fatal(err)
	}
	sess.Close()
	mu.Lock()
	defer mu.Unlock()
	if !hasDeadline {
		t.Fatal("the password check's context has no deadline")
	}
	if latest := time.Now().Add(handshake.DefaultLoginGraceTime); deadline.After(latest) {
		t.Errorf("check deadline %v is after the login grace time's end %v", deadline, latest)
	}
}

// TestMalformedNameIsAuthFailure: an AUTH the handshake refuses unchecked
// (a name the protocol does not allow, say) is a failed login for the
// penalty box, not a connection that never tried (noauth).
func TestMalformedNameIsAuthFailure(t *testing.T) {
	now := time.Unix(1000, 0)
	pen := DefaultPenaltyBox()
	pen.now = func() time.Time { return now }
	src := netip.MustParseAddr("192.0.2.1")
	var v handshake.Verifier = &loginVerifier{penalties: pen, src: src, log: slog.New(slog.DiscardHandler)}
	r, ok := v.(handshake.RejectRecorder)
	if !ok {
		t.Fatal("the server's verifier does not hear of rejected AUTHs")
	}
	for range 3 {
		r.AuthRejected("malformed user name")
	}
	pen.mu.Lock()
	left := pen.until[sourceBlock(src)].until.Sub(now)
	pen.mu.Unlock()
	if left != pen.AuthFail {
		t.Errorf("penalty after a connection's malformed names: %v, want AuthFail (%v) once", left, pen.AuthFail)
	}
}

// TestLoginStorm runs a password storm from 30 loopback sources (4
// connections each, 3 wrong passwords per connection) against a real
// server whose checks cost 100 ms each, as a default Argon2id hash does,
// while 30 more sources keep 4 connections each open without a word, as
// storm connections waiting for the server's CPU do: together they fill
// the pre-login gate. Two logged-in sessions keep chatting. Once the gate
// is full, a login from a fresh source and one from an exempt source must
// each succeed at the first attempt while the storm goes on.
func TestLoginStorm(t *testing.T) {
	const (
		sources   = 30
		perSource = 4
		checkCost = 100 * time.Millisecond
	)
	exempt, _ := ParsePrefixList([]string{"127.0.0.2"})
	// serve's default caps without the random early drop (start = full),
	// so that the gate is full when the logins below begin, whatever the
	// dice.
	gate := DefaultStartupGate()
	gate.Start = gate.Full
	gate.Exempt = exempt
	pen := DefaultPenaltyBox()
	pen.Exempt = exempt
	ts := startServer(t, transport.TCP, serverOpts{gate: gate, penalties: pen,
		wrap: func(next handshake.Verifier) handshake.Verifier {
			// A pool of one slot per core, as credstore's, where sleeping
			// stands in for the hash without taking the CPU of a shared
			// test machine.
			pool := make(chan struct{}, runtime.GOMAXPROCS(0))
			return verifierFunc(func(ctx context.Context, user string, pw []byte) error {
				select {
				case pool <- struct{}{}:
				case <-ctx.Done():
					return ctx.Err()
				}
				time.Sleep(checkCost)
				<-pool
				return next.Verify(ctx, user, pw)
			})
		}})

	a, err := ts.dial("alice", "password-alice")
	if err != nil {
		t.Fatal(err)
	}
	ca := newChatClient(t, a)
	b, err := ts.dial("bob", "password-bob")
	if err != nil {
		t.Fatal(err)
	}
	cb := newChatClient(t, b)

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapAlloc

	stop := make(chan struct{})
	chatDone := make(chan int)
	go func() {
		sent := 0
		for {
			select {
			case <-stop:
				chatDone <- sent
				return
			default:
			}
			id := fmt.Sprintf("s%d", sent)
			ca.send(&chat.Request{Type: chat.TypeMsg, ID: id, Room: "#general", Text: id})
			cb.waitFor(func(e *chat.Event) bool { return e.Type == chat.TypeMsg && e.Text == id })
			// Reading alice's ack too keeps her event buffer from filling.
			ca.waitFor(func(e *chat.Event) bool { return e.ID == id })
			sent++
		}
	}()

	var refused, authFailed, tries int
	var mu sync.Mutex
	var storm sync.WaitGroup
	squat := func(src string) {
		defer storm.Done()
		buf := make([]byte, 512)
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := d.Dial("tcp", ts.addr)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			// Hold the connection until the server ends it.
			for {
				c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				_, err := c.Read(buf)
				if ne, ok := err.(net.Error); err == nil || ok && ne.Timeout() {
					select {
					case <-stop:
						c.Close()
						return
					default:
						continue
					}
				}
				break
			}
			c.Close()
			time.Sleep(50 * time.Millisecond)
		}
	}
	for s := range sources {
		for range perSource {
			storm.Add(1)
			go squat(fmt.Sprintf("127.0.2.%d", s+1))
		}
	}
	for s := range sources {
		src := fmt.Sprintf("127.0.1.%d", s+1)
		for range perSource {
			storm.Add(1)
			go func() {
				defer storm.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					_, err := ts.dialFrom(src, "alice", "guess-1", "guess-2", "guess-3")
					mu.Lock()
					tries++
					switch {
					case errors.Is(err, handshake.ErrAuthFailed):
						authFailed++
					case err != nil:
						refused++
					default:
						t.Error("a wrong password logged in")
					}
					mu.Unlock()
					if err != nil && !errors.Is(err, handshake.ErrAuthFailed) {
						time.Sleep(100 * time.Millisecond) // refused: bound the dial rate
					}
				}
			}()
		}
	}

	// Let the storm take hold and fill the gate first, then log in from a
	// fresh source and from an exempt one, retrying refused connections
	// for a bounded time as a client with a backoff would.
	time.Sleep(500 * time.Millisecond)
	for filled := time.Now(); gate.Unauthenticated() < gate.Full; {
		if time.Since(filled) > 20*time.Second {
			t.Fatalf("the storm never filled the gate: %d of %d places taken", gate.Unauthenticated(), gate.Full)
		}
		time.Sleep(10 * time.Millisecond)
	}
	login := func(local string) (tookTries int, took time.Duration, err error) {
		start := time.Now()
		for tookTries = 1; ; tookTries++ {
			sess, err := ts.dialFrom(local, "carol", "password-carol")
			if err == nil {
				sess.Close()
				return tookTries, time.Since(start), nil
			}
			if errors.Is(err, handshake.ErrAuthFailed) || time.Since(start) > 10*time.Second {
				return tookTries, time.Since(start), err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	freshTries, freshTook, freshErr := login("127.0.0.50")
	exemptTries, exemptTook, exemptErr := login("127.0.0.2")
	// A storm source is held off by its penalty: refused at accept once
	// it reaches Min, or, while the gate is under pressure, as soon as it
	// has any penalty or a check in flight.
	blocked := 0
	for s := range sources {
		src := netip.AddrFrom4([4]byte{127, 0, 1, byte(s + 1)})
		if _, _, ok := pen.Blocked(src); ok || pen.score(sourceBlock(src)) > 0 {
			blocked++
		}
	}
	close(stop)
	storm.Wait()
	sent := <-chatDone

	// A full gate is no reason to refuse a clean source: it takes the
	// place of a connection from a source that holds more.
	if freshErr != nil || freshTries != 1 {
		t.Errorf("login from a fresh source during the storm: %v after %d tries, want success at the first", freshErr, freshTries)
	}
	if exemptErr != nil || exemptTries != 1 {
		t.Errorf("login from an exempt source during the storm: %v after %d tries, want success at the first", exemptErr, exemptTries)
	}
	// The storm's sources must be stopped by their penalties, not merely
	// crowded out by the global cap.
	if blocked < sources/2 {
		t.Errorf("%d of %d storm sources penalised during the storm, want at least half", blocked, sources)
	}
	if refused == 0 {
		t.Errorf("no storm connection was refused in %d tries", tries)
	}
	if sent == 0 {
		t.Error("no chat message flowed during the storm")
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	const bound = 64 << 20
	if ms.HeapAlloc > heapBefore+bound {
		t.Errorf("heap grew by %d bytes during the storm, bound %d", ms.HeapAlloc-heapBefore, bound)
	}
	t.Logf("storm: %d connections, %d auth failures, %d refused early, %d of %d sources penalised, %d chat round trips meanwhile, heap %d -> %d",
		tries, authFailed, refused, blocked, sources, sent, heapBefore, ms.HeapAlloc)
	t.Logf("fresh source: logged in after %d tries, %v; exempt source: after %d tries, %v",
		freshTries, freshTook.Round(time.Millisecond), exemptTries, exemptTook.Round(time.Millisecond))
	a.Close()
	b.Close()
}
