package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"securechat/transport"
)

// syncBuffer is a bytes.Buffer that a logger and a test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// logged waits for a line containing s, which the server writes off the
// refusing goroutine, up to a bound that only stops a hang.
func (b *syncBuffer) logged(s string) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(b.String(), s) {
			return true
		}
	}
	return strings.Contains(b.String(), s)
}

// timedLogin logs user in over ts and returns how long it took.
func timedLogin(t *testing.T, ts *testServer, user string) time.Duration {
	t.Helper()
	start := time.Now()
	sess, err := ts.dial(user, "password-"+user)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("login of %s: %v", user, err)
	}
	sess.Close()
	return took
}

// TestQUICStreamlessStormFromOneSource: one source (127.0.0.2) keeps opening
// QUIC connections that never open their stream, more of them than the
// listener has pending places, while a client from another source
// (127.0.0.1) logs in. The flooding source gets its share of places and no
// more; the rest of its connections are refused at once, most before their
// QUIC handshake, and logged; the other source's logins are never refused.
func TestQUICStreamlessStormFromOneSource(t *testing.T) {
	const workers = 80 // more than the listener's pending places
	logs := &syncBuffer{}
	ts := startServer(t, transport.QUIC, serverOpts{
		gate:      DefaultStartupGate(),
		penalties: DefaultPenaltyBox(),
		logger:    slog.New(slog.NewTextHandler(logs, nil)),
	})
	baseline := timedLogin(t, ts, "bob")

	pc, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	flood := &quic.Transport{Conn: pc}
	defer pc.Close()
	defer flood.Close()
	server, err := net.ResolveUDPAddr("udp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"securechat/1"}}

	stop := make(chan struct{})
	var handshakes, refusals atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				qc, err := flood.Dial(ctx, server, tlsConf, nil)
				cancel()
				var te *quic.TransportError
				if errors.As(err, &te) && te.Remote && te.ErrorCode == quic.ConnectionRefused {
					// Refused before its handshake.
					refusals.Add(1)
				}
				if err == nil {
					handshakes.Add(1)
					// Hold the connection, stream-less, until the server
					// ends it or the test does.
					select {
					case <-qc.Context().Done():
						var ae *quic.ApplicationError
						if errors.As(context.Cause(qc.Context()), &ae) && ae.Remote && ae.ErrorCode == 1 {
							refusals.Add(1)
						}
					case <-stop:
						qc.CloseWithError(0, "")
						return
					}
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	// The storm is on once the server refuses the flood.
	for deadline := time.Now().Add(10 * time.Second); refusals.Load() < workers; {
		if time.Now().After(deadline) {
			t.Fatalf("after %d QUIC handshakes from one source, only %d refused by the server", handshakes.Load(), refusals.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The figure to watch is the slowest of these against the baseline;
	// the test only bounds it (ts.dial gives up after 10 s).
	var slowest time.Duration
	for range 5 {
		slowest = max(slowest, timedLogin(t, ts, "alice"))
	}
	t.Logf("login from 127.0.0.1: %v before the storm, slowest of 5 during it %v (%d handshakes from 127.0.0.2, %d refused by the server so far)",
		baseline, slowest, handshakes.Load(), refusals.Load())

	out := logs.String()
	refusedFlood := regexp.MustCompile(`msg="connection refused" src=127\.0\.0\.2 transport=quic reason="too many unauthenticated connections`)
	if !refusedFlood.MatchString(out) {
		t.Errorf("the server did not log refusing the flooding source:\n%.2000s", out)
	}
	if regexp.MustCompile(`connection refused.* src=127\.0\.0\.1 `).MatchString(out) {
		t.Errorf("the server refused the other source")
	}
}

// TestAdmitQUIC: the hook a QUIC listener calls before a connection's stream
// applies the penalty box and the per-source cap as Serve does for TCP,
// logs each refusal, and counts a connection dropped for want of a stream as
// one that never tried to log in.
func TestAdmitQUIC(t *testing.T) {
	logs := &syncBuffer{}
	pen := &PenaltyBox{NoAuth: 10 * time.Second, Min: 15 * time.Second, Max: time.Minute}
	srv := New(Config{
		Transport: "quic",
		Gate:      &StartupGate{PerSource: 2},
		Penalties: pen,
		Logger:    slog.New(slog.NewTextHandler(logs, nil)),
	})
	flooder := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 4000}
	other := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}

	r1, ok1 := srv.AdmitQUIC(flooder)
	r2, ok2 := srv.AdmitQUIC(flooder)
	if !ok1 || !ok2 {
		t.Fatal("the first connections of a source were refused")
	}
	if _, ok := srv.AdmitQUIC(flooder); ok {
		t.Fatal("a source got more than its share of waiting connections")
	}
	if !logs.logged(`msg="connection refused" src=127.0.0.2 transport=quic reason="too many unauthenticated connections`) {
		t.Errorf("the refusal was not logged:\n%s", logs)
	}
	r3, ok := srv.AdmitQUIC(other)
	if !ok {
		t.Fatal("another source was refused while one held its share")
	}
	r3(nil)

	// Two connections dropped without a stream: 20 s of noauth penalty,
	// past Min, so the source is refused before its next stream.
	r1(errors.New("no stream from client within 2s"))
	r2(errors.New("no stream from client within 2s"))
	if _, ok := srv.AdmitQUIC(flooder); ok {
		t.Fatal("a penalised source was admitted")
	}
	if !logs.logged(`msg="connection refused" src=127.0.0.2 transport=quic reason="source penalised"`) {
		t.Errorf("the penalty refusal was not logged:\n%s", logs)
	}
	if _, _, blocked := pen.Blocked(netip.MustParseAddr("127.0.0.1")); blocked {
		t.Error("the source whose connection was handed over was penalised")
	}
	if n := srv.cfg.Gate.Unauthenticated(); n != 0 {
		t.Errorf("%d admissions still held after every release", n)
	}
}

// TestQUICAbortThenOrderlyClose pins PROTOCOL.md §3's close codes for
// ABORT: the frame is delivered, the server ends its stream with FIN, and,
// when the client does not close first, closes the connection with 0x0
// after its close wait: an orderly end after the in-band reason, as a FIN
// is on TCP. (0x1 is for connections that end without one.)
func TestQUICAbortThenOrderlyClose(t *testing.T) {
	ts := startServer(t, transport.QUIC, serverOpts{})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	defer pc.Close()
	defer tr.Close()
	server, err := net.ResolveUDPAddr("udp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc, err := tr.Dial(ctx, server, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"securechat/1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A CLIENT_HELLO header announcing 8193 bytes: ABORT 0x03 (§4).
	if _, err := st.Write([]byte{0x01, 0x00, 0x20, 0x01}); err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(st)
	if err != nil || !bytes.Equal(got, []byte{0x7f, 0, 0, 1, 0x03}) {
		t.Fatalf("client read %x, then %v; want ABORT 0x03 (7f00000103), then the server's FIN", got, err)
	}
	select {
	case <-qc.Context().Done():
	case <-ctx.Done():
		t.Fatal("the server did not close the connection")
	}
	var ae *quic.ApplicationError
	if cause := context.Cause(qc.Context()); !errors.As(cause, &ae) || !ae.Remote || ae.ErrorCode != 0 || ae.ErrorMessage != "" {
		t.Errorf("after ABORT the connection ended by %v, want the server's close with 0x0 and no reason", cause)
	}
}

// TestPrecheckQUIC: the hook a QUIC listener calls before a connection's
// handshake refuses a penalised source and a source whose admissions and
// connections in handshake reach its share, passes others and exempt
// sources, and logs the refusal.
func TestPrecheckQUIC(t *testing.T) {
	logs := &syncBuffer{}
	exempt, err := ParsePrefixList([]string{"127.0.0.9"})
	if err != nil {
		t.Fatal(err)
	}
	pen := &PenaltyBox{NoAuth: 20 * time.Second, Min: 15 * time.Second, Max: time.Minute}
	srv := New(Config{
		Transport: "quic",
		Gate:      &StartupGate{PerSource: 2, Exempt: exempt},
		Penalties: pen,
		Logger:    slog.New(slog.NewTextHandler(logs, nil)),
	})
	flooder := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 4000}
	other := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}

	if !srv.PrecheckQUIC(flooder, 1) {
		t.Fatal("a source with one connection in handshake and a share of two was refused")
	}
	if srv.PrecheckQUIC(flooder, 2) {
		t.Fatal("a source with its share in handshake was let in")
	}
	if !logs.logged(`msg="connection refused" src=127.0.0.2 transport=quic reason="too many unauthenticated connections from this source"`) {
		t.Errorf("the refusal was not logged:\n%s", logs)
	}
	release, ok := srv.AdmitQUIC(flooder)
	if !ok {
		t.Fatal("AdmitQUIC refused the source's first connection")
	}
	if srv.PrecheckQUIC(flooder, 1) {
		t.Error("a source holding one admission with one more in handshake was let in")
	}
	if !srv.PrecheckQUIC(other, 0) {
		t.Error("another source was refused")
	}
	if !srv.PrecheckQUIC(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 4000}, 10) {
		t.Error("an exempt source was refused")
	}
	release(nil)

	pen.Record(netip.MustParseAddr("127.0.0.2"), PenaltyNoAuth)
	if srv.PrecheckQUIC(flooder, 0) {
		t.Error("a penalised source was let in")
	}
}
