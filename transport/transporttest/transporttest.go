// Package transporttest checks that a transport.Transport keeps the contract
// documented in package transport. Every transport runs the same suite, over
// loopback sockets:
//
//	for _, name := range transport.Names() {
//		tr, _ := transport.Lookup(name)
//		t.Run(name, func(t *testing.T) { transporttest.TestTransport(t, tr, nil) })
//	}
//
// The net.Conn part is golang.org/x/net/nettest.TestConn, run with the dialed
// conn first and again with the accepted conn first; the rest covers what a
// secure channel needs on top: listener close, large and many transfers,
// graceful close against abort, and the optional conn upgrades.
package transporttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"securechat/transport"
)

// setupTimeout bounds listening and dialing in the suite; loopback needs far less.
const setupTimeout = 10 * time.Second

// TestTransport runs the conformance suite against tr. opts is passed to every
// Listen and Dial and may be nil.
func TestTransport(t *testing.T, tr transport.Transport, opts *transport.Options) {
	s := &suite{tr: tr, opts: opts}
	t.Run("NetConn/DialerFirst", func(t *testing.T) { nettest.TestConn(t, s.makePipe(t, false)) })
	t.Run("NetConn/AccepterFirst", func(t *testing.T) { nettest.TestConn(t, s.makePipe(t, true)) })
	t.Run("DualStack", s.testDualStack)
	t.Run("ListenerCloseUnblocksAccept", s.testListenerCloseUnblocksAccept)
	t.Run("ListenerCloseKeepsConns", s.testListenerCloseKeepsConns)
	t.Run("Addrs", s.testAddrs)
	t.Run("Deadline", s.testDeadline)
	t.Run("LocalClose", s.testLocalClose)
	t.Run("CloseUnblocksWrite", s.testCloseUnblocksWrite)
	t.Run("GracefulClose", s.testGracefulClose)
	t.Run("HalfClose", s.testHalfClose)
	t.Run("CloseExchange", s.testCloseExchange)
	t.Run("Abort", s.testAbort)
	t.Run("LargeTransfer", s.testLargeTransfer)
	t.Run("ManyConns", s.testManyConns)
}

type suite struct {
	tr   transport.Transport
	opts *transport.Options
}

// listen listens on an IPv4 loopback port and closes the listener at cleanup.
func (s *suite) listen(t testing.TB) net.Listener {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	ln, err := s.tr.Listen(ctx, "127.0.0.1:0", s.opts)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// connect dials ln and returns both ends. The dialer sends one byte that the
// accepting side consumes, because a QUIC listener returns a conn only once
// the client has written (the securechat client always speaks first).
func (s *suite) connect(ln net.Listener) (dialed, accepted net.Conn, err error) {
	type result struct {
		c   net.Conn
		err error
	}
	acc := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			var b [1]byte
			c.SetReadDeadline(time.Now().Add(setupTimeout))
			if _, err = io.ReadFull(c, b[:]); err == nil && b[0] != 'H' {
				err = fmt.Errorf("first byte %q, want 'H'", b[0])
			}
			c.SetReadDeadline(time.Time{})
			if err != nil {
				c.Close()
			}
		}
		acc <- result{c, err}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	dialed, err = s.tr.Dial(ctx, ln.Addr().String(), s.opts)
	if err == nil {
		_, err = dialed.Write([]byte{'H'})
	}
	if err != nil {
		ln.Close() // unblocks the Accept above
		<-acc
		if dialed != nil {
			dialed.Close()
		}
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	r := <-acc
	if r.err != nil {
		dialed.Close()
		return nil, nil, fmt.Errorf("accept: %w", r.err)
	}
	return dialed, r.c, nil
}

// pair returns a connected pair, closed at cleanup.
func (s *suite) pair(t testing.TB) (dialed, accepted net.Conn) {
	t.Helper()
	ln := s.listen(t)
	dialed, accepted, err := s.connect(ln)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBoth(dialed, accepted) })
	return dialed, accepted
}

// closeBoth closes two conns at once: a graceful close may wait for the
// peer's own close.
func closeBoth(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { a.Close() })
	wg.Go(func() { b.Close() })
	wg.Wait()
}

func (s *suite) makePipe(t *testing.T, accepterFirst bool) nettest.MakePipe {
	return func() (c1, c2 net.Conn, stop func(), err error) {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		ln, err := s.tr.Listen(ctx, "127.0.0.1:0", s.opts)
		if err != nil {
			return nil, nil, nil, err
		}
		dialed, accepted, err := s.connect(ln)
		if err != nil {
			ln.Close()
			return nil, nil, nil, err
		}
		stop = func() {
			closeBoth(dialed, accepted)
			ln.Close()
		}
		if accepterFirst {
			return accepted, dialed, stop, nil
		}
		return dialed, accepted, stop, nil
	}
}

// testDualStack listens with an empty host and connects over IPv4 and IPv6
// loopback.
func (s *suite) testDualStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	ln, err := s.tr.Listen(ctx, ":0", s.opts)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer ln.Close()
	port := portOf(t, ln.Addr())

	hosts := []string{"127.0.0.1"}
	if probe, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Logf("IPv6 loopback unavailable (%v); checking IPv4 only", err)
	} else {
		probe.Close()
		hosts = append(hosts, "::1")
	}
	for _, host := range hosts {
		dialed, accepted, err := s.connect(addrListener{ln, net.JoinHostPort(host, port)})
		if err != nil {
			t.Fatalf("over %s: %v", host, err)
		}
		roundTrip(t, dialed, accepted, []byte("hello over "+host))
		closeBoth(dialed, accepted)
	}
}

// addrListener makes connect dial a chosen address of a wildcard listener.
type addrListener struct {
	net.Listener
	addr string
}

func (l addrListener) Addr() net.Addr { return dialAddr(l.addr) }

type dialAddr string

func (a dialAddr) Network() string { return "" }
func (a dialAddr) String() string  { return string(a) }

func (s *suite) testListenerCloseUnblocksAccept(t *testing.T) {
	ln := s.listen(t)
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	if err := ln.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept pending at Close returned %v, want net.ErrClosed", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close returned %v, want net.ErrClosed", err)
	}
	if err := ln.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close returned %v, want net.ErrClosed", err)
	}
}

func (s *suite) testListenerCloseKeepsConns(t *testing.T) {
	ln := s.listen(t)
	dialed, accepted, err := s.connect(ln)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBoth(dialed, accepted)
	if err := ln.Close(); err != nil {
		t.Fatalf("listener Close: %v", err)
	}
	roundTrip(t, dialed, accepted, []byte("still here after the listener closed"))
	roundTrip(t, accepted, dialed, []byte("and the other way"))
}

// roundTrip writes msg on from and checks it arrives on to.
func roundTrip(t *testing.T, from, to net.Conn, msg []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := from.Write(msg)
		errc <- err
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(to, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("got %q, want %q", got, msg)
	}
}

func (s *suite) testAddrs(t *testing.T) {
	dialed, accepted := s.pair(t)
	if got, want := dialed.RemoteAddr().String(), accepted.LocalAddr().String(); got != want {
		t.Errorf("dialer's RemoteAddr %s, accepter's LocalAddr %s", got, want)
	}
	// The dialer may sit on a dual-stack wildcard socket, so compare ports
	// only on this side.
	if got, want := portOf(t, accepted.RemoteAddr()), portOf(t, dialed.LocalAddr()); got != want {
		t.Errorf("accepter's RemoteAddr port %s, dialer's LocalAddr port %s", got, want)
	}
}

func portOf(t *testing.T, a net.Addr) string {
	t.Helper()
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatalf("address %v: %v", a, err)
	}
	return port
}

func (s *suite) testDeadline(t *testing.T) {
	dialed, accepted := s.pair(t)
	for _, c := range []net.Conn{dialed, accepted} {
		c.SetReadDeadline(time.Now().Add(-time.Second))
		n, err := c.Read(make([]byte, 16))
		if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read past deadline = %d, %v; want 0, os.ErrDeadlineExceeded", n, err)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("deadline error %v is not a net.Error with Timeout() true", err)
		}
		if errors.Is(err, transport.ErrAborted) || errors.Is(err, net.ErrClosed) {
			t.Errorf("deadline error %v also matches ErrAborted or net.ErrClosed", err)
		}
		c.SetReadDeadline(time.Time{})
	}
	// The conns work again once the deadline is lifted.
	roundTrip(t, dialed, accepted, []byte("after the deadline"))
	roundTrip(t, accepted, dialed, []byte("after the deadline, back"))
}

func (s *suite) testLocalClose(t *testing.T) {
	for _, side := range []string{"dialer", "accepter"} {
		t.Run(side, func(t *testing.T) {
			dialed, accepted := s.pair(t)
			c, peer := dialed, accepted
			if side == "accepter" {
				c, peer = accepted, dialed
			}
			done := make(chan error, 1)
			go func() { // the peer closes too, so a graceful Close is not held up
				_, err := io.Copy(io.Discard, peer)
				peer.Close()
				done <- err
			}()
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := <-done; err != nil {
				t.Errorf("peer saw %v after a graceful Close, want io.EOF", err)
			}
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read after Close: %v, want net.ErrClosed", err)
			}
			if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after Close: %v, want net.ErrClosed", err)
			}
			if err := c.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
				t.Errorf("SetDeadline after Close: %v, want net.ErrClosed", err)
			}
			if err := c.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second Close: %v, want net.ErrClosed", err)
			}
		})
	}
}

// testCloseUnblocksWrite closes a conn whose peer does not read, so that its
// Writes soon block on flow control; the writer must get net.ErrClosed.
func (s *suite) testCloseUnblocksWrite(t *testing.T) {
	ln := s.listen(t)
	dialed, accepted, err := s.connect(ln)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	writeErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for i := 0; ; i++ {
			if _, err := dialed.Write(buf); err != nil {
				writeErr <- err
				return
			}
			if i == 0 {
				close(started)
			}
		}
	}()
	<-started
	closed := make(chan error, 1)
	go func() { closed <- dialed.Close() }()
	if err := <-writeErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write blocked during Close returned %v, want net.ErrClosed", err)
	}
	accepted.Close() // lets a graceful Close finish
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
}

// testGracefulClose writes and closes at once; the peer must still get every
// byte and then io.EOF.
func (s *suite) testGracefulClose(t *testing.T) {
	for _, side := range []string{"dialer", "accepter"} {
		t.Run(side+"Writes", func(t *testing.T) {
			dialed, accepted := s.pair(t)
			w, r := dialed, accepted
			if side == "accepter" {
				w, r = accepted, dialed
			}
			want := randomBytes(1, 1<<20)
			errc := make(chan error, 1)
			go func() {
				_, err := w.Write(want)
				if cerr := w.Close(); err == nil {
					err = cerr
				}
				errc <- err
			}()
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("reader: %v after %d bytes, want io.EOF after %d", err, len(got), len(want))
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("reader got %d bytes, want the %d written", len(got), len(want))
			}
			r.Close()
			if err := <-errc; err != nil {
				t.Fatalf("writer: %v", err)
			}
		})
	}
}

// testHalfClose is the shape of the securechat close (PROTOCOL.md §12): one
// side ends its sending half and reads on, the other answers and closes.
func (s *suite) testHalfClose(t *testing.T) {
	dialed, accepted := s.pair(t)
	cw, ok := dialed.(transport.CloseWriter)
	if !ok {
		t.Skipf("%s conns do not implement transport.CloseWriter", s.tr.Name())
	}
	request, reply := []byte("last words"), randomBytes(2, 100<<10)
	errc := make(chan error, 1)
	go func() {
		got, err := io.ReadAll(accepted)
		if err == nil && !bytes.Equal(got, request) {
			err = fmt.Errorf("accepter read %q, want %q", got, request)
		}
		if err == nil {
			_, err = accepted.Write(reply)
		}
		if cerr := accepted.Close(); err == nil {
			err = cerr
		}
		errc <- err
	}()
	if _, err := dialed.Write(request); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if _, err := dialed.Write([]byte("more")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after CloseWrite: %v, want net.ErrClosed", err)
	}
	got, err := io.ReadAll(dialed)
	if err != nil {
		t.Fatalf("reading the reply after CloseWrite: %v", err)
	}
	if !bytes.Equal(got, reply) {
		t.Fatalf("reply: got %d bytes, want the %d written", len(got), len(reply))
	}
	// Close before waiting for the accepter: having answered, it may wait
	// in Close for this side to finish.
	if err := dialed.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// testCloseExchange repeats the securechat close (PROTOCOL.md §12) with each
// side starting it in turn: the starter sends its last bytes and ends its
// half, the other side reads them, answers and closes at once. The starter must
// get the whole answer and then io.EOF, never ErrAborted, every time.
func (s *suite) testCloseExchange(t *testing.T) {
	const rounds = 20
	ln := s.listen(t)
	for i := range rounds {
		dialed, accepted, err := s.connect(ln)
		if err != nil {
			t.Fatal(err)
		}
		starter, answerer := dialed, accepted
		if i%2 == 1 {
			starter, answerer = accepted, dialed
		}
		cw, ok := starter.(transport.CloseWriter)
		if !ok {
			closeBoth(dialed, accepted)
			t.Skipf("%s conns do not implement transport.CloseWriter", s.tr.Name())
		}
		closing, answer := []byte("CLOSE"), randomBytes(uint64(i), 64<<10)
		answered := make(chan error, 1)
		go func() {
			got := make([]byte, len(closing))
			_, err := io.ReadFull(answerer, got)
			if err == nil {
				_, err = answerer.Write(answer)
			}
			if cerr := answerer.Close(); err == nil {
				err = cerr
			}
			answered <- err
		}()
		if _, err := starter.Write(closing); err != nil {
			t.Fatalf("round %d: Write: %v", i, err)
		}
		if err := cw.CloseWrite(); err != nil {
			t.Fatalf("round %d: CloseWrite: %v", i, err)
		}
		got, err := io.ReadAll(starter)
		if err != nil || !bytes.Equal(got, answer) {
			t.Fatalf("round %d: starter read %d of %d answer bytes, then %v; want all, then io.EOF", i, len(got), len(answer), err)
		}
		if err := starter.Close(); err != nil {
			t.Fatalf("round %d: starter Close: %v", i, err)
		}
		if err := <-answered; err != nil {
			t.Fatalf("round %d: answerer: %v", i, err)
		}
	}
}

// testAbort checks that an abort reaches the peer as ErrAborted, never as the
// io.EOF of a graceful end, and wakes a local Read with net.ErrClosed.
func (s *suite) testAbort(t *testing.T) {
	for _, side := range []string{"dialer", "accepter"} {
		t.Run(side+"Aborts", func(t *testing.T) {
			dialed, accepted := s.pair(t)
			c, peer := dialed, accepted
			if side == "accepter" {
				c, peer = accepted, dialed
			}
			ab, ok := c.(transport.Aborter)
			if !ok {
				t.Skipf("%s conns do not implement transport.Aborter", s.tr.Name())
			}
			// The peer has data in flight towards c, so that a TCP close
			// could not be mistaken for an abort either way.
			roundTrip(t, c, peer, []byte("before the abort"))

			localRead := make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, 1))
				localRead <- err
			}()
			peerRead := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, peer)
				peerRead <- err
			}()
			if err := ab.Abort(); err != nil {
				t.Fatalf("Abort: %v", err)
			}
			if err := <-localRead; !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read blocked during Abort returned %v, want net.ErrClosed", err)
			}
			err := <-peerRead // io.Copy turns io.EOF into nil
			if err == nil || !errors.Is(err, transport.ErrAborted) {
				t.Fatalf("peer Read after Abort: %v, want an error matching transport.ErrAborted", err)
			}
			if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("abort error %v also matches net.ErrClosed or os.ErrDeadlineExceeded", err)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("abort error %v reports Timeout", err)
			}
			if err := ab.Abort(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second Abort: %v, want net.ErrClosed", err)
			}
		})
	}
}

// testLargeTransfer moves 8 MiB each way at once and compares checksums.
func (s *suite) testLargeTransfer(t *testing.T) {
	const size = 8 << 20
	dialed, accepted := s.pair(t)
	var wg sync.WaitGroup
	send := func(c net.Conn, seed uint64) {
		defer wg.Done()
		src := rand.NewChaCha8([32]byte{byte(seed)})
		if _, err := io.CopyN(c, src, size); err != nil {
			t.Errorf("send: %v", err)
		}
	}
	recv := func(c net.Conn, seed uint64) {
		defer wg.Done()
		want := sha256.New()
		io.CopyN(want, rand.NewChaCha8([32]byte{byte(seed)}), size)
		got := sha256.New()
		if n, err := io.CopyN(got, c, size); err != nil {
			t.Errorf("receive: %v after %d bytes", err, n)
			return
		}
		if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Errorf("received data differs from what was sent (seed %d)", seed)
		}
	}
	wg.Add(4)
	go send(dialed, 1)
	go send(accepted, 2)
	go recv(accepted, 1)
	go recv(dialed, 2)
	wg.Wait()
}

// testManyConns runs 50 echo sessions on one listener at once.
func (s *suite) testManyConns(t *testing.T) {
	const conns = 50
	ln := s.listen(t)

	var servers sync.WaitGroup
	defer servers.Wait()
	servers.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Accept: %v", err)
				}
				return
			}
			servers.Go(func() {
				defer c.Close()
				if _, err := io.Copy(c, c); err != nil {
					t.Errorf("echo: %v", err)
				}
			})
		}
	})
	defer ln.Close()

	// The sessions run at once, but at most dialBurst of them dial at once:
	// a QUIC server (quic-go) refuses handshakes that complete while 32
	// others wait to be accepted, which a 50-connection burst on a loaded
	// machine reaches without anything being wrong with the listener.
	const dialBurst = 16
	dialing := make(chan struct{}, dialBurst)
	var clients sync.WaitGroup
	for i := range conns {
		clients.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
			defer cancel()
			dialing <- struct{}{}
			c, err := s.tr.Dial(ctx, ln.Addr().String(), s.opts)
			<-dialing
			if err != nil {
				t.Errorf("conn %d: Dial: %v", i, err)
				return
			}
			defer c.Close()
			msg := randomBytes(uint64(100+i), 16<<10)
			errc := make(chan error, 1)
			go func() {
				_, err := c.Write(msg)
				errc <- err
			}()
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Errorf("conn %d: read echo: %v", i, err)
				return
			}
			if err := <-errc; err != nil {
				t.Errorf("conn %d: write: %v", i, err)
			}
			if !bytes.Equal(got, msg) {
				t.Errorf("conn %d: echo differs", i)
			}
		})
	}
	clients.Wait()
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}
