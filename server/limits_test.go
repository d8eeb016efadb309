package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"securechat/transport"
)

func TestStartupGateRandomEarlyDrop(t *testing.T) {
	g := &StartupGate{Start: 2, Rate: 50, Full: 4}
	roll := 0
	g.roll = func() int { return roll }
	src := netip.MustParseAddr("192.0.2.1")
	var releases []func()
	for i := 0; i < 2; i++ {
		r, _, ok := g.Admit(src)
		if !ok {
			t.Fatalf("connection %d below Start refused", i)
		}
		releases = append(releases, r)
	}
	// At total=2 the drop probability is 50%: a roll of 49 is refused, 50 admitted.
	roll = 49
	if _, _, ok := g.Admit(src); ok {
		t.Fatal("roll 49 admitted at 50% drop")
	}
	roll = 50
	r, _, ok := g.Admit(src)
	if !ok {
		t.Fatal("roll 50 refused at 50% drop")
	}
	releases = append(releases, r)
	// total=3: probability 75%.
	roll = 74
	if _, _, ok := g.Admit(src); ok {
		t.Fatal("roll 74 admitted at 75% drop")
	}
	roll = 99
	r, _, ok = g.Admit(src)
	if !ok {
		t.Fatal("roll 99 refused at 75% drop")
	}
	releases = append(releases, r)
	// total=4 = Full: always refused.
	if _, _, ok := g.Admit(src); ok {
		t.Fatal("admitted at Full")
	}
	for _, r := range releases {
		r()
		r() // release is idempotent
	}
	if n := g.Unauthenticated(); n != 0 {
		t.Fatalf("Unauthenticated = %d after releases, want 0", n)
	}
}

func TestStartupGatePerSource(t *testing.T) {
	exempt, err := ParsePrefixList([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	g := &StartupGate{PerSource: 2, Exempt: exempt}
	a := netip.MustParseAddr("198.51.100.7")
	r1, _, ok1 := g.Admit(a)
	_, _, ok2 := g.Admit(a)
	if !ok1 || !ok2 {
		t.Fatal("first two from one source refused")
	}
	if _, _, ok := g.Admit(a); ok {
		t.Fatal("third concurrent from one source admitted")
	}
	if _, _, ok := g.Admit(netip.MustParseAddr("198.51.100.8")); !ok {
		t.Fatal("other source refused")
	}
	r1()
	if _, _, ok := g.Admit(a); !ok {
		t.Fatal("source still refused after a release")
	}
	for i := 0; i < 10; i++ {
		if _, _, ok := g.Admit(netip.MustParseAddr("127.0.0.1")); !ok {
			t.Fatalf("exempt source refused at %d", i)
		}
	}
}

func TestPenaltyBox(t *testing.T) {
	now := time.Unix(1000, 0)
	b := DefaultPenaltyBox()
	b.now = func() time.Time { return now }
	src := netip.MustParseAddr("203.0.113.9")
	for i := 0; i < 2; i++ {
		b.Record(src, PenaltyAuthFail)
		if _, _, blocked := b.Blocked(src); blocked {
			t.Fatalf("blocked after %d auth failures (10 s < min 15 s)", i+1)
		}
	}
	b.Record(src, PenaltyAuthFail)
	left, _, blocked := b.Blocked(src)
	if !blocked || left != 15*time.Second {
		t.Fatalf("after 3 failures: blocked=%v left=%v, want true 15s", blocked, left)
	}
	// The same /32 only; a neighbour is not punished.
	if _, _, blocked := b.Blocked(netip.MustParseAddr("203.0.113.10")); blocked {
		t.Fatal("neighbour address blocked")
	}
	now = now.Add(14 * time.Second)
	if left, _, blocked := b.Blocked(src); !blocked || left != time.Second {
		t.Fatalf("after 14 s: blocked=%v left=%v, want true 1s (refused until drained)", blocked, left)
	}
	now = now.Add(time.Second)
	if _, _, blocked := b.Blocked(src); blocked {
		t.Fatal("still blocked once the penalty drained")
	}
	// A fresh start: one failure does not block again.
	b.Record(src, PenaltyAuthFail)
	if _, _, blocked := b.Blocked(src); blocked {
		t.Fatal("blocked after one failure following a drained penalty")
	}
	// The cap holds.
	now = now.Add(time.Hour)
	for i := 0; i < 1000; i++ {
		b.Record(src, PenaltyGraceExceeded)
	}
	if left, _, _ := b.Blocked(src); left != 10*time.Minute {
		t.Fatalf("penalty %v exceeds max 10m", left)
	}
	// IPv6 sources are tracked per /64.
	v6a := netip.MustParseAddr("2001:db8::1")
	v6b := netip.MustParseAddr("2001:db8::ffff")
	for i := 0; i < 3; i++ {
		b.Record(v6a, PenaltyAuthFail)
	}
	if _, _, blocked := b.Blocked(v6b); !blocked {
		t.Fatal("same /64 not blocked")
	}
}

func TestPenaltyBoxExemptAndBounded(t *testing.T) {
	exempt, err := ParsePrefixList([]string{"::1", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	b := DefaultPenaltyBox()
	b.Exempt = exempt
	b.MaxSources = 2
	for i := 0; i < 10; i++ {
		b.Record(netip.MustParseAddr("127.0.0.1"), PenaltyGraceExceeded)
	}
	if _, _, blocked := b.Blocked(netip.MustParseAddr("::ffff:127.0.0.1")); blocked {
		t.Fatal("exempt source blocked")
	}
	for _, s := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		for i := 0; i < 2; i++ {
			b.Record(netip.MustParseAddr(s), PenaltyGraceExceeded)
		}
	}
	if _, _, blocked := b.Blocked(netip.MustParseAddr("192.0.2.1")); !blocked {
		t.Fatal("tracked source not blocked")
	}
	if _, _, blocked := b.Blocked(netip.MustParseAddr("192.0.2.3")); blocked {
		t.Fatal("source beyond MaxSources was tracked")
	}
}

func TestParsePrefixListError(t *testing.T) {
	if _, err := ParsePrefixList([]string{"localhost"}); err == nil {
		t.Fatal("hostname accepted as prefix")
	}
}

// TestStartupGateExemptBypassesGlobalCap: a full gate refuses everyone
// but exempt sources, which are not counted against it either.
func TestStartupGateExemptBypassesGlobalCap(t *testing.T) {
	exempt, err := ParsePrefixList([]string{"127.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	g := &StartupGate{Start: 2, Rate: 100, Full: 2, Exempt: exempt}
	for i := range 2 {
		if _, _, ok := g.Admit(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})); !ok {
			t.Fatalf("connection %d below Start refused", i)
		}
	}
	if _, why, ok := g.Admit(netip.MustParseAddr("192.0.2.99")); ok || why != refusedStartups {
		t.Fatalf("full gate: ok=%v why=%q, want a max-startups refusal", ok, why)
	}
	for i := range 10 {
		release, _, ok := g.Admit(netip.MustParseAddr("127.0.0.2"))
		if !ok {
			t.Fatalf("exempt connection %d refused by the global cap", i)
		}
		defer release()
	}
	if n := g.Unauthenticated(); n != 2 {
		t.Errorf("Unauthenticated = %d with exempt connections open, want 2", n)
	}
}

// TestStartupGatePerSourceIPv6Block: the per-source cap counts a /64, as
// the penalty box does, not each address in it.
func TestStartupGatePerSourceIPv6Block(t *testing.T) {
	g := &StartupGate{PerSource: 2}
	for _, a := range []string{"2001:db8::1", "2001:db8::2"} {
		if _, _, ok := g.Admit(netip.MustParseAddr(a)); !ok {
			t.Fatalf("%s refused", a)
		}
	}
	if _, why, ok := g.Admit(netip.MustParseAddr("2001:db8::ffff:3")); ok || why != refusedPerSource {
		t.Fatalf("third address of one /64: ok=%v why=%q, want a per-source refusal", ok, why)
	}
	if _, _, ok := g.Admit(netip.MustParseAddr("2001:db8:0:1::1")); !ok {
		t.Fatal("neighbouring /64 refused")
	}
	if _, _, ok := g.Admit(netip.MustParseAddr("::ffff:192.0.2.1")); !ok {
		t.Fatal("IPv4-mapped source refused")
	}
}

// TestPenaltyBoxCountsChecksInFlight: checks waiting or running count
// AuthFail each towards Min, so a source is refused at accept while its
// guesses are still queued; a check asking whether it may still run does
// not count itself.
func TestPenaltyBoxCountsChecksInFlight(t *testing.T) {
	now := time.Unix(1000, 0)
	b := DefaultPenaltyBox()
	b.now = func() time.Time { return now }
	src := netip.MustParseAddr("198.51.100.1")
	end1 := b.beginCheck(src)
	end2 := b.beginCheck(netip.MustParseAddr("198.51.100.1"))
	if _, _, blocked := b.Blocked(src); blocked {
		t.Fatal("blocked with two checks in flight (10 s < min 15 s)")
	}
	end3 := b.beginCheck(src)
	if _, why, blocked := b.Blocked(src); !blocked || why != refusedPending {
		t.Fatalf("three checks in flight: blocked=%v why=%q, want refused for checks in flight", blocked, why)
	}
	if _, _, blocked := b.blocked(src, 1); blocked {
		t.Fatal("a check counted itself")
	}
	if _, _, blocked := b.Blocked(netip.MustParseAddr("198.51.100.2")); blocked {
		t.Fatal("neighbour blocked by another source's checks")
	}
	end3()
	end3() // idempotent
	if _, _, blocked := b.Blocked(src); blocked {
		t.Fatal("still blocked after a check ended")
	}
	// A recorded failure and two checks in flight reach Min together.
	b.Record(src, PenaltyAuthFail)
	if _, _, blocked := b.Blocked(src); !blocked {
		t.Fatal("5 s penalty + two checks in flight not blocked")
	}
	end1()
	end2()
	if _, _, blocked := b.Blocked(src); blocked {
		t.Fatal("5 s penalty alone blocked")
	}
	// Exempt sources never count.
	exempt, _ := ParsePrefixList([]string{"127.0.0.0/8"})
	b.Exempt = exempt
	for range 5 {
		b.beginCheck(netip.MustParseAddr("127.0.0.1"))
	}
	if _, _, blocked := b.Blocked(netip.MustParseAddr("127.0.0.1")); blocked {
		t.Fatal("exempt source blocked by checks in flight")
	}
	// A box with no durations (penalties off) never blocks.
	off := &PenaltyBox{}
	for range 5 {
		off.beginCheck(src)
	}
	if _, _, blocked := off.Blocked(src); blocked {
		t.Fatal("penalties off, yet blocked")
	}
}

// TestStartupGateRefusesScoredSourcesUnderPressure: from Start on, a source
// with a penalty or a check in flight is refused, so the places left go to
// sources with a clean record; below Start it is admitted as before.
func TestStartupGateRefusesScoredSourcesUnderPressure(t *testing.T) {
	now := time.Unix(1000, 0)
	pen := DefaultPenaltyBox()
	pen.now = func() time.Time { return now }
	g := &StartupGate{Start: 2, Rate: 0, Full: 10, PerSource: 4, score: pen.score}
	g.roll = func() int { return 99 }
	failed := netip.MustParseAddr("192.0.2.1")
	checking := netip.MustParseAddr("192.0.2.2")
	pen.Record(failed, PenaltyAuthFail) // 5 s: far from Min, not blocked
	defer pen.beginCheck(checking)()
	if _, _, blocked := pen.Blocked(failed); blocked {
		t.Fatal("one failure blocked the source")
	}
	if _, _, ok := g.Admit(failed); !ok {
		t.Fatal("a source with a small penalty refused below Start")
	}
	if _, _, ok := g.Admit(netip.MustParseAddr("192.0.2.3")); !ok {
		t.Fatal("a clean source refused below Start")
	}
	for _, src := range []netip.Addr{failed, checking} {
		if _, why, ok := g.Admit(src); ok || why != refusedPressure {
			t.Errorf("%v at Start: admitted=%v why=%q, want refused under pressure", src, ok, why)
		}
	}
	if _, _, ok := g.Admit(netip.MustParseAddr("192.0.2.4")); !ok {
		t.Error("a clean source refused at Start with the ramp admitting")
	}
	now = now.Add(pen.AuthFail)
	if _, _, ok := g.Admit(failed); !ok {
		t.Error("a source whose penalty drained refused at Start with the ramp admitting")
	}
}

// TestStartupGateEvictsForCleanerSource: when the ramp would drop a
// connection, it takes the place of the oldest connection still in its key
// exchange of a source worse off (a higher score, or the same score and
// at least two places more), never of one whose password is being checked
// nor of one admitted as not evictable.
func TestStartupGateEvictsForCleanerSource(t *testing.T) {
	now := time.Unix(1000, 0)
	pen := DefaultPenaltyBox()
	pen.now = func() time.Time { return now }
	g := &StartupGate{Start: 4, Full: 4, PerSource: 4, score: pen.score}
	evicted := map[string]bool{}
	admit := func(src, name string) (*startup, bool) {
		st, _, ok := g.admit(netip.MustParseAddr(src), func() { evicted[name] = true })
		return st, ok
	}
	// A flood source fills the gate (Start at Full: no ramp, a hard cap).
	var flood []*startup
	for i := range 4 {
		st, ok := admit("198.51.100.1", fmt.Sprint("flood", i))
		if !ok {
			t.Fatalf("flood connection %d refused below Full", i)
		}
		flood = append(flood, st)
	}
	flood[0].beginCheck() // the oldest is being checked: not evictable
	a, ok := admit("192.0.2.1", "a")
	if !ok {
		t.Fatal("a clean source refused, though a source with 4 places is in its key exchange")
	}
	if !evicted["flood1"] || len(evicted) != 1 {
		t.Fatalf("evicted %v, want flood1 (the oldest not being checked) only", evicted)
	}
	if n := g.Unauthenticated(); n != 4 {
		t.Fatalf("Unauthenticated = %d after an eviction, want 4", n)
	}
	flood[1].release() // the evicted connection ends: its place is not freed twice
	if n := g.Unauthenticated(); n != 4 {
		t.Fatalf("Unauthenticated = %d after the evicted connection ended, want 4", n)
	}
	if flood[1].beginCheck() {
		t.Error("an evicted connection may still have its password checked")
	}
	if _, ok := admit("192.0.2.2", "b"); !ok || !evicted["flood2"] {
		t.Fatalf("second clean source: admitted=%v evicted=%v, want flood2 evicted", ok, evicted)
	}
	if _, ok := admit("192.0.2.3", "x"); !ok || !evicted["flood3"] {
		t.Fatalf("third clean source: admitted=%v evicted=%v, want flood3 evicted", ok, evicted)
	}
	// Now everybody holds one place (flood's being checked) and nobody has
	// a score, so a newcomer is refused.
	if _, why, ok := g.admit(netip.MustParseAddr("192.0.2.7"), nil); ok || why != refusedStartups {
		t.Fatalf("fourth clean source: admitted=%v why=%q, want refused (max-startups)", ok, why)
	}
	// A source with a penalty loses its place to a clean one even with a
	// single place, but one admitted as not evictable keeps it.
	pen.Record(netip.MustParseAddr("192.0.2.1"), PenaltyAuthFail)
	a.release()
	if _, _, ok := g.Admit(netip.MustParseAddr("192.0.2.1")); !ok {
		t.Fatal("not evictable connection refused with a free place")
	}
	if _, ok := admit("192.0.2.4", "c"); ok {
		t.Fatal("evicted a connection admitted as not evictable, or one being checked")
	}
	if _, ok := admit("192.0.2.5", "d"); ok || evicted["b"] {
		t.Fatalf("evicted b (same score, one place) for d: %v", evicted)
	}
	pen.Record(netip.MustParseAddr("192.0.2.2"), PenaltyAuthFail)
	if _, ok := admit("192.0.2.6", "e"); !ok || !evicted["b"] {
		t.Fatalf("clean source: admitted=%v evicted=%v, want b (penalised) evicted", ok, evicted)
	}
}

// recordingHandler keeps the records logged through it, after waiting for
// gate to open (if set): a log whose reader has fallen behind.
type recordingHandler struct {
	gate chan struct{}
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	if h.gate != nil {
		<-h.gate
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

// TestRefusalLogBounded: a storm of refusals makes at most two lines per
// reason and interval, which still count every refusal.
func TestRefusalLogBounded(t *testing.T) {
	h := &recordingHandler{}
	log := slog.New(h)
	r := newRefusalLog(log, time.Hour)
	refused := func(log *slog.Logger, reason string) {
		if r.note(reason) {
			log.Info("connection refused", "reason", reason)
		}
	}
	for i := range 1000 {
		refused(log.With("src", fmt.Sprint(i)), refusedPenalty)
		if i%2 == 0 {
			refused(log, refusedStartups)
		}
	}
	r.flush()
	refused(log, refusedPenalty) // a new interval: logged at once
	counts := map[string]int64{}
	for _, rec := range h.recs {
		var reason string
		n := int64(1)
		rec.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "reason":
				reason = a.Value.String()
			case "count":
				n = a.Value.Int64()
			}
			return true
		})
		counts[reason] += n
	}
	if len(h.recs) != 5 {
		t.Errorf("%d log lines for 1501 refusals of two reasons in two intervals, want 5", len(h.recs))
	}
	if counts[refusedPenalty] != 1001 || counts[refusedStartups] != 500 {
		t.Errorf("lines count %v, want 1001 and 500", counts)
	}
}

// TestRefusedWithoutWaitingForTheLog: a refused connection is ended before
// its refusal is logged, so a log that has fallen behind (a full pipe)
// does not keep refused connections open.
func TestRefusedWithoutWaitingForTheLog(t *testing.T) {
	h := &recordingHandler{gate: make(chan struct{})}
	defer close(h.gate)
	pen := DefaultPenaltyBox()
	src := netip.MustParseAddr("127.0.3.1")
	pen.Record(src, PenaltyGraceExceeded)
	pen.Record(src, PenaltyGraceExceeded)
	ts := startServer(t, transport.TCP, serverOpts{penalties: pen, logger: slog.New(h)})
	for i := range 20 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		c, err := d.Dial("tcp", ts.addr)
		if errors.Is(err, syscall.ECONNRESET) {
			continue // refused before the dial returned
		}
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("refused connection %d still open after 5 s, while the log is blocked", i)
		}
		if err == nil {
			t.Fatalf("refused connection %d got data", i)
		}
	}
}

// TestRefusedConnectionsCountInRecord: a source refused at accept earns
// no penalty, but its record grows, so that its password checks rank
// behind those of a source that was never refused.
func TestRefusedConnectionsCountInRecord(t *testing.T) {
	now := time.Unix(1000, 0)
	pen := DefaultPenaltyBox()
	pen.now = func() time.Time { return now }
	gate := &StartupGate{Start: 1, Full: 1}
	s := New(Config{Gate: gate, Penalties: pen, Logger: slog.New(slog.DiscardHandler)})
	holder, knocker := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")
	st, _, ok := s.admit(holder, nil)
	if !ok {
		t.Fatal("first connection refused")
	}
	defer st.release()
	for range 3 {
		if _, refused, ok := s.admit(knocker, nil); ok {
			t.Fatal("admitted beyond Full")
		} else {
			refused()
		}
	}
	key := sourceBlock(knocker)
	if _, _, blocked := pen.Blocked(knocker); blocked || pen.score(key) != 0 {
		t.Errorf("refusals at accept penalised the source (score %v)", pen.score(key))
	}
	if r := pen.rank(key); r != 3*pen.NoAuth {
		t.Errorf("rank after 3 refusals at accept = %v, want 3 × NoAuth = %v", r, 3*pen.NoAuth)
	}
	if r := pen.rank(sourceBlock(holder)); r != 0 {
		t.Errorf("rank of a source never refused = %v, want 0", r)
	}
}

// fakeConn is one end of a pipe from a chosen address, that records being
// closed.
type fakeConn struct {
	net.Conn
	remote net.Addr
	closed atomic.Bool
}

func newFakeConn(t *testing.T, from netip.Addr) *fakeConn {
	c, peer := net.Pipe()
	t.Cleanup(func() { c.Close(); peer.Close() })
	return &fakeConn{Conn: c, remote: &net.TCPAddr{IP: from.AsSlice(), Port: 40000}}
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { c.closed.Store(true); return c.Conn.Close() }

// scriptedListener hands out conns in order; each Accept after the first
// first calls before with the index of the conn it is about to hand out
// (len(conns) once they are used up, when it reports net.ErrClosed).
type scriptedListener struct {
	conns  []*fakeConn
	before func(next int)
	next   int
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	if l.next > 0 {
		l.before(l.next)
	}
	if l.next == len(l.conns) {
		return nil, net.ErrClosed
	}
	l.next++
	return l.conns[l.next-1], nil
}
func (l *scriptedListener) Close() error   { return nil }
func (l *scriptedListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// TestRefusedBeforeTheNextAccept: a connection the penalty box or the
// startup gate refuses is ended on the accept loop, before Serve accepts
// the next one, rather than by a goroutine of its own, so that a storm's
// refusals take no more than that loop's share of the CPU. The refusals
// are still reported and logged.
func TestRefusedBeforeTheNextAccept(t *testing.T) {
	pen := DefaultPenaltyBox()
	penalised := netip.MustParseAddr("192.0.2.7")
	pen.Record(penalised, PenaltyGraceExceeded)
	pen.Record(penalised, PenaltyGraceExceeded)
	crowd := netip.MustParseAddr("198.51.100.9")
	var mu sync.Mutex
	var reasons []string
	h := &recordingHandler{}
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Penalties: pen, Gate: &StartupGate{Start: 10, Rate: 30, Full: 100, PerSource: 1},
		HostKey: hostKey, Verifier: acceptAll{}, Logger: slog.New(h), Transport: "tcp",
		Hooks: Hooks{Refused: func(r string) { mu.Lock(); reasons = append(reasons, r); mu.Unlock() }}})
	// The penalised source is refused by the penalty box; crowd's second
	// connection by the per-source cap, as its first one, admitted, is
	// still in its handshake.
	ln := &scriptedListener{conns: []*fakeConn{
		newFakeConn(t, penalised), newFakeConn(t, penalised), newFakeConn(t, crowd), newFakeConn(t, crowd)}}
	refused := map[int]bool{0: true, 1: true, 3: true}
	ln.before = func(next int) {
		if prev := next - 1; refused[prev] && !ln.conns[prev].closed.Load() {
			t.Errorf("refused connection %d still open when Serve accepted again", prev)
		}
	}
	if err := s.Serve(t.Context(), ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed", err)
	}
	// The admitted connection waits in its handshake until it is closed.
	ln.conns[2].Close()
	s.wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(reasons) != 3 {
		t.Errorf("%d refusals reported (%v), want 3", len(reasons), reasons)
	}
	// The lines are written off the accept loop: wait for them, up to a
	// bound that only stops a hang.
	lines := func() (n int) {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, r := range h.recs {
			counted := false // the interval's flush line, not a refusal's own
			r.Attrs(func(a slog.Attr) bool {
				counted = counted || a.Key == "count"
				return true
			})
			if r.Message == "connection refused" && !counted {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); lines() < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := lines(); n != 2 {
		t.Errorf("%d refusal lines, want 2 (one per reason in the interval)", n)
	}
}
