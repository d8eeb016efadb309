package handshake

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"securechat/cipher"
)

// The tests here run on synctest's fake clock with net.Pipe, so a 10-second
// timeout takes no real time and fires at an exact instant.

func TestServerStepTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc, sc := net.Pipe()
		defer cc.Close()
		scfg := serverConfig(newVerifier())
		start := time.Now()
		_, err := Server(t.Context(), sc, scfg) // the client never speaks
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want a deadline error", err)
		}
		if d := time.Since(start); d != DefaultStepTimeout {
			t.Errorf("gave up after %v, want %v", d, DefaultStepTimeout)
		}
	})
}

func TestClientStepTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc, sc := net.Pipe()
		defer sc.Close()
		go func() { // read the CLIENT_HELLO, then say nothing
			readFrame(sc, frameClientHello)
		}()
		ccfg, asked := clientConfig("alice", "x")
		ccfg.StepTimeout = 3 * time.Second
		start := time.Now()
		_, err := Client(t.Context(), cc, ccfg)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want a deadline error", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("gave up after %v, want 3s", d)
		}
		if *asked != 0 {
			t.Error("password asked")
		}
	})
}

// TestLoginGraceTime: a client that stays just inside the step timeout at
// every step is still cut off by the overall limit.
func TestLoginGraceTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc, sc := net.Pipe()
		defer cc.Close()
		scfg := serverConfig(newVerifier())
		scfg.StepTimeout = 10 * time.Second
		scfg.LoginGraceTime = 15 * time.Second
		srv := make(chan error, 1)
		var gaveUp time.Duration
		start := time.Now()
		go func() {
			_, err := Server(t.Context(), sc, scfg)
			gaveUp = time.Since(start)
			srv <- err
		}()
		time.Sleep(9 * time.Second) // fake time
		ch, shares := newRawHello(t, GroupX25519)
		r := sendRawHello(t, cc, ch, shares)
		if err := r.readServerHello(); err != nil {
			t.Fatal(err)
		}
		if err := r.establish(); err != nil {
			t.Fatal(err)
		}
		if err := r.readServerFinished(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(9 * time.Second) // 18 s in total: past the grace time, within the step time
		err := <-srv
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want a deadline error", err)
		}
		if gaveUp != scfg.LoginGraceTime {
			t.Errorf("server gave up after %v, want %v", gaveUp, scfg.LoginGraceTime)
		}
	})
}

func TestServerContextCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc, sc := net.Pipe()
		defer cc.Close()
		ctx, cancel := context.WithCancel(t.Context())
		srv := make(chan error, 1)
		go func() {
			_, err := Server(ctx, sc, serverConfig(newVerifier()))
			srv <- err
		}()
		time.Sleep(time.Second)
		cancel()
		err := <-srv
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		// The connection was closed, so the peer sees the end.
		if _, err := cc.Write([]byte{1}); err == nil {
			t.Error("connection still open after cancel")
		}
	})
}

func TestClientContextCancelledBefore(t *testing.T) {
	cc, sc := net.Pipe()
	defer sc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ccfg, _ := clientConfig("alice", "x")
	if _, err := Client(ctx, cc, ccfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// TestOversizeFrameHeader: the bound is checked on the header alone; the
// server does not wait for a body that could be 16 MiB.
func TestOversizeFrameHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc, sc := net.Pipe()
		defer cc.Close()
		srv := make(chan error, 1)
		go func() {
			_, err := Server(t.Context(), sc, serverConfig(newVerifier()))
			srv <- err
		}()
		start := time.Now()
		if _, err := cc.Write([]byte{frameClientHello, 0x00, 0x20, 0x01}); err != nil { // 8193
			t.Fatal(err)
		}
		r := &rawClient{c: cc}
		var ae *AbortError
		if err := r.readServerHello(); !errors.As(err, &ae) || ae.Code != AbortHandshakeFailure {
			t.Errorf("got %v, want ABORT 0x03", err)
		}
		if err := <-srv; !errors.Is(err, errFrameTooLarge) {
			t.Errorf("server: %v", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("server waited %v (for a body?)", d)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		cc, sc := net.Pipe()
		defer sc.Close()
		go func() {
			readFrame(sc, frameClientHello)
			sc.Write([]byte{frameServerHello, 0xff, 0xff, 0xff})
		}()
		ccfg, _ := clientConfig("alice", "x")
		start := time.Now()
		if _, err := Client(t.Context(), cc, ccfg); !errors.Is(err, errFrameTooLarge) {
			t.Errorf("client: %v", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("client waited %v (for a body?)", d)
		}
	})
}

// TestWrongFirstFrameType: the server closes without ABORT.
func TestWrongFirstFrameType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc, sc := net.Pipe()
		defer cc.Close()
		srv := make(chan error, 1)
		go func() {
			_, err := Server(t.Context(), sc, serverConfig(newVerifier()))
			srv <- err
		}()
		cc.Write([]byte{frameServerHello, 0, 0, 0})
		var b [1]byte
		if n, err := cc.Read(b[:]); err == nil {
			t.Errorf("server answered %x", b[:n])
		}
		if err := <-srv; err == nil {
			t.Error("server accepted")
		}
	})
}

// TestServerWaitsForPeople: between the server's FINISHED and the client's
// FINISHED and AUTH a person reads a fingerprint and types a password. That
// wait is bounded by the login grace time, not by the network step timeout.
func TestServerWaitsForPeople(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc, sc := net.Pipe()
		defer cc.Close()
		scfg := serverConfig(newVerifier())
		scfg.StepTimeout = 10 * time.Second
		scfg.LoginGraceTime = 60 * time.Second
		srv := make(chan error, 1)
		go func() {
			s, err := Server(t.Context(), sc, scfg)
			if err == nil {
				s.Abort()
			}
			srv <- err
		}()
		ch, shares := newRawHello(t, GroupX25519)
		r := sendRawHello(t, cc, ch, shares)
		if err := r.readServerHello(); err != nil {
			t.Fatal(err)
		}
		if err := r.establish(); err != nil {
			t.Fatal(err)
		}
		if err := r.readServerFinished(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Second) // the user checks the fingerprint
		if err := r.conn.WriteRecord(cipher.TypeFinished, r.clientFinished()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Second) // and types the password
		auth, _ := marshalAuth("alice", []byte("correct horse"))
		if err := r.conn.WriteRecord(cipher.TypeAuth, auth); err != nil {
			t.Fatal(err)
		}
		typ, p, err := r.conn.ReadRecord()
		if err != nil || typ != cipher.TypeAuthResult || len(p) != 1 || p[0] != 0 {
			t.Fatalf("AUTH_RESULT: %v %v %x", typ, err, p)
		}
		if err := <-srv; err != nil {
			t.Fatalf("server gave up on a person who took 50 s of a 60 s grace time: %v", err)
		}
	})
}
