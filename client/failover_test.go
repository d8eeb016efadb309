package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"securechat/chat"
	"securechat/handshake"
)

func TestParseAddrs(t *testing.T) {
	good := []struct {
		in   string
		want []string
	}{
		{"a:7777", []string{"a:7777"}},
		{"a:7777,b:7777", []string{"a:7777", "b:7777"}},
		{" a:1 , [::1]:2 ,127.0.0.1:3", []string{"a:1", "[::1]:2", "127.0.0.1:3"}},
	}
	for _, tt := range good {
		got, err := ParseAddrs(tt.in)
		if err != nil || strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("ParseAddrs(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "a", "a:1,", ",a:1", "a:1,,b:2", "::1:7777", "a:1,a:1", ":7777", "a:",
		strings.Repeat("a:1,", maxAddrs) + "b:1"} {
		if got, err := ParseAddrs(in); err == nil {
			t.Errorf("ParseAddrs(%q) = %q, want an error", in, got)
		}
	}
}

// newHostKey returns a fresh Ed25519 host key.
func newHostKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// chatUntilGone logs in and acknowledges every request until the client
// goes; msgs, if set, gets the text of each message.
func chatUntilGone(msgs chan<- string) func(c *fakeConn) {
	return func(c *fakeConn) {
		if !c.login(nil) {
			return
		}
		c.send(&chat.Event{Type: chat.TypeRoom, Room: "#general", Members: []string{"alice"}})
		for req := c.next(); req != nil; req = c.next() {
			if req.Type == chat.TypeMsg && msgs != nil {
				msgs <- req.Text
			}
			c.send(&chat.Event{Type: chat.TypeAck, ID: req.ID})
		}
	}
}

// nodesConfig is a client configuration for the nodes at addrs, which
// all must present key.
func nodesConfig(t *testing.T, key ed25519.PublicKey, addrs ...string) *Config {
	cfg := (&fakeChatServer{addr: addrs[0], key: key}).config(t)
	cfg.Addrs = addrs
	cfg.testOnlyRedialDelay = 10 * time.Millisecond
	return cfg
}

// TestDialFailsOver: an address that cannot be reached is skipped for the
// next one, and the link says where it went.
func TestDialFailsOver(t *testing.T) {
	b := startFakeNode(t, newHostKey(t), anyPassword{}, chatUntilGone(nil))
	cfg := nodesConfig(t, b.key, deadAddr(t), b.addr)
	var notes []string
	l, err := dialAny(context.Background(), cfg, inOrder(len(cfg.addrs())), func(addr string, err error, next string) {
		notes = append(notes, addr+" -> "+next)
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer l.Close()
	if l.Addr() != b.addr {
		t.Errorf("connected to %s, want %s", l.Addr(), b.addr)
	}
	if len(notes) != 1 || !strings.HasSuffix(notes[0], " -> "+b.addr) {
		t.Errorf("failover notes %q, want one naming %s as the next", notes, b.addr)
	}
}

// TestDialAllAddressesFail: when none answers, the error names each and
// is a lost connection (exit 5, retried by the reconnect loop).
func TestDialAllAddressesFail(t *testing.T) {
	a, b := deadAddr(t), deadAddr(t)
	cfg := nodesConfig(t, newHostKey(t).Public().(ed25519.PublicKey), a, b)
	_, err := Dial(context.Background(), cfg)
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("error %v, want a lost connection", err)
	}
	for _, addr := range []string{a, b} {
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("error %q does not name %s", err, addr)
		}
	}
}

type refuseAll struct{}

func (refuseAll) Verify(context.Context, string, []byte) error { return handshake.ErrAuthFailed }

// TestFailoverNotOnRefusal: a refused login and a server that cannot be
// authenticated end the dial at the first address; the next node would
// refuse the same way (adding to the login penalties), or is not to be
// trusted either.
func TestFailoverNotOnRefusal(t *testing.T) {
	priv := newHostKey(t)
	t.Run("auth", func(t *testing.T) {
		a := startFakeNode(t, priv, refuseAll{}, chatUntilGone(nil))
		b := startFakeNode(t, priv, anyPassword{}, chatUntilGone(nil))
		_, err := Dial(context.Background(), nodesConfig(t, a.key, a.addr, b.addr))
		if !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("error %v, want authentication failed", err)
		}
		if n := b.conns.Load(); n != 0 {
			t.Errorf("the second address got %d connections after a refused login, want none", n)
		}
	})
	t.Run("host key", func(t *testing.T) {
		a := startFakeNode(t, newHostKey(t), anyPassword{}, chatUntilGone(nil))
		b := startFakeNode(t, priv, anyPassword{}, chatUntilGone(nil))
		_, err := Dial(context.Background(), nodesConfig(t, b.key, a.addr, b.addr))
		if !errors.Is(err, ErrServerNotAuthenticated) {
			t.Fatalf("error %v, want server not authenticated", err)
		}
		if n := b.conns.Load(); n != 0 {
			t.Errorf("the second address got %d connections after a host key mismatch, want none", n)
		}
	})
}

// TestScriptFailsOverToNextNode: when the node of the session goes away
// the script client reconnects to the other address first (not the one it
// lost, which still accepts here) and its next line is delivered there.
func TestScriptFailsOverToNextNode(t *testing.T) {
	priv := newHostKey(t)
	atA, atB := make(chan string, 16), make(chan string, 16)
	dropA := make(chan struct{})
	a := startFakeNode(t, priv, anyPassword{}, func(c *fakeConn) {
		if !c.login(nil) {
			return
		}
		c.send(&chat.Event{Type: chat.TypeRoom, Room: "#general", Members: []string{"alice"}})
		req := c.next()
		if req == nil {
			return
		}
		atA <- req.Text
		c.send(&chat.Event{Type: chat.TypeAck, ID: req.ID})
		<-dropA
		c.sess.Abort()
	})
	b := startFakeNode(t, priv, anyPassword{}, chatUntilGone(atB))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in, stdin := io.Pipe()
	defer stdin.Close()
	var out, errOut bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- RunScript(ctx, nodesConfig(t, priv.Public().(ed25519.PublicKey), a.addr, b.addr), in, &out, &errOut, false)
	}()

	io.WriteString(stdin, "first\n")
	expect(t, atA, "first")
	close(dropA)
	io.WriteString(stdin, "second\n")
	expect(t, atB, "second")
	stdin.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("script client: %v\n%s", err, errOut.String())
		}
	case <-time.After(fakeServerWait):
		t.Fatal("the script client did not end")
	}
	if n := a.conns.Load(); n != 1 {
		t.Errorf("the lost node got %d connections, want 1: the next address comes first", n)
	}
}

func expect(t *testing.T, c <-chan string, want string) {
	t.Helper()
	select {
	case got := <-c:
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	case <-time.After(fakeServerWait):
		t.Fatalf("%q never arrived", want)
	}
}

// groupTrust runs the host key check and record of a group of addresses
// for one server presenting key at addr, as the handshake would.
func groupTrust(t *testing.T, file string, addrs []string, policy handshake.HostKeyPolicy, pinned, addr string, key ed25519.PublicKey) (notes string, err error) {
	t.Helper()
	var buf bytes.Buffer
	trustFor, err := KnownHostsGroupTrust(file, addrs, policy, pinned, nil, &buf)
	if err != nil {
		t.Fatal(err)
	}
	tr := trustFor(addr)
	if err = tr.Check(key); err == nil {
		err = tr.Record(key)
	}
	return buf.String(), err
}

// TestKnownHostsGroupTrust: a key trusted for one address of a connect is
// trusted (and recorded) for the others; a different key at one of them
// is a changed key under every policy; revocations and pins still apply.
func TestKnownHostsGroupTrust(t *testing.T) {
	k1 := newHostKey(t).Public().(ed25519.PublicKey)
	k2 := newHostKey(t).Public().(ed25519.PublicKey)
	addrs := []string{"a.example:7777", "b.example:7777"}
	setup := func(t *testing.T, lines ...string) string {
		file := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	lines := func(t *testing.T, file string) string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	t.Run("vouched", func(t *testing.T) {
		file := setup(t, handshake.FormatKnownHost("a.example:7777", k1))
		notes, err := groupTrust(t, file, addrs, handshake.PolicyStrict, "", "b.example:7777", k1)
		if err != nil {
			t.Fatalf("the key of a.example under strict: %v", err)
		}
		if !strings.Contains(lines(t, file), handshake.FormatKnownHost("b.example:7777", k1)) {
			t.Errorf("the key was not recorded for b.example:\n%s", lines(t, file))
		}
		if !strings.Contains(notes, "Permanently added 'b.example:7777'") {
			t.Errorf("notes %q, want the Permanently added note", notes)
		}
	})
	t.Run("other key", func(t *testing.T) {
		for _, p := range []handshake.HostKeyPolicy{handshake.PolicyAcceptNew, handshake.PolicyStrict} {
			file := setup(t, handshake.FormatKnownHost("a.example:7777", k1))
			_, err := groupTrust(t, file, addrs, p, "", "b.example:7777", k2)
			var changed *handshake.HostKeyChangedError
			if !errors.As(err, &changed) {
				t.Fatalf("%v: error %v, want a changed host key", p, err)
			}
			if !fatal(classifyHandshakeError(&Config{}, "b.example:7777", err)) {
				t.Errorf("%v: a different key at another address is retried", p)
			}
			if strings.Contains(lines(t, file), "b.example") {
				t.Errorf("%v: b.example was recorded:\n%s", p, lines(t, file))
			}
		}
	})
	t.Run("own line differs", func(t *testing.T) {
		// Another address trusting the key does not override the
		// address's own line: that is a changed key, as ever.
		file := setup(t, handshake.FormatKnownHost("a.example:7777", k1), handshake.FormatKnownHost("a.example:7777", k2),
			handshake.FormatKnownHost("b.example:7777", k1))
		_, err := groupTrust(t, file, addrs, handshake.PolicyAcceptNew, "", "b.example:7777", k2)
		var changed *handshake.HostKeyChangedError
		if !errors.As(err, &changed) || changed.HostPort != "b.example:7777" {
			t.Fatalf("error %v, want b.example's key changed", err)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		file := setup(t, handshake.FormatKnownHost("a.example:7777", k1), "@revoked * "+
			strings.SplitN(handshake.FormatKnownHost("x", k1), " ", 2)[1])
		_, err := groupTrust(t, file, addrs, handshake.PolicyAcceptNew, "", "b.example:7777", k1)
		var revoked *handshake.HostKeyRevokedError
		if !errors.As(err, &revoked) {
			t.Fatalf("error %v, want a revoked key", err)
		}
	})
	t.Run("pin", func(t *testing.T) {
		file := setup(t, handshake.FormatKnownHost("a.example:7777", k1))
		_, err := groupTrust(t, file, addrs, handshake.PolicyAcceptNew, handshake.Fingerprint(k2), "b.example:7777", k1)
		var pinned *handshake.PinnedKeyMismatchError
		if !errors.As(err, &pinned) {
			t.Fatalf("error %v, want a pinned key mismatch", err)
		}
	})
	t.Run("first contact", func(t *testing.T) {
		file := setup(t, "")
		if _, err := groupTrust(t, file, addrs, handshake.PolicyAcceptNew, "", "b.example:7777", k1); err != nil {
			t.Fatalf("accept-new with nothing known: %v", err)
		}
		if _, err := groupTrust(t, file, addrs, handshake.PolicyStrict, "", "a.example:7777", k1); err != nil {
			t.Fatalf("a.example after b.example recorded its key: %v", err)
		}
	})
}

// TestRedialFailoverDelay: with other addresses to try, the first attempt
// after a lost connection does not wait the backoff's second; the next
// attempts do, from the shortest delay on.
func TestRedialFailoverDelay(t *testing.T) {
	for _, tc := range []struct {
		addrs int
		want  []time.Duration
	}{
		{1, []time.Duration{backoffMin, backoffMin}},
		{2, []time.Duration{0, backoffMin}},
	} {
		var addrs []string
		for range tc.addrs {
			addrs = append(addrs, deadAddr(t))
		}
		cfg := nodesConfig(t, newHostKey(t).Public().(ed25519.PublicKey), addrs...)
		cfg.testOnlyRedialDelay = 0
		var got []time.Duration
		r := &redialer{cfg: cfg, limit: 2, bo: reconnectBackoff{rand: func() float64 { return 0 }},
			waiting: func(_ error, d time.Duration, _ int) { got = append(got, d) }}
		_, err := r.redial(context.Background(), errors.New("lost"))
		var gaveUp *gaveUpError
		if !errors.As(err, &gaveUp) {
			t.Fatalf("%d addresses: redial returned %v, want it to give up", tc.addrs, err)
		}
		if len(got) != len(tc.want) || got[0] != tc.want[0] || got[1] != tc.want[1] {
			t.Errorf("%d addresses: delays %v, want %v", tc.addrs, got, tc.want)
		}
	}
}

// TestInteractiveFailsOver: the terminal client, too, reconnects to the
// next address first when its node drops the connection, says where it
// is, and sends what is typed next there.
func TestInteractiveFailsOver(t *testing.T) {
	priv := newHostKey(t)
	node := func() (*fakeChatServer, <-chan *fakeConn) {
		conns := make(chan *fakeConn, 4)
		return startFakeNode(t, priv, anyPassword{}, func(c *fakeConn) {
			if !c.login(nil) {
				return
			}
			c.send(&chat.Event{Type: chat.TypeRoom, Room: "#general", Members: []string{"alice"}})
			done := make(chan struct{})
			c.done = done
			conns <- c
			select {
			case <-done:
			case <-t.Context().Done():
			}
		}), conns
	}
	a, atA := node()
	b, atB := node()
	r := startTermWith(t, a, nil, nodesConfig(t, a.key, a.addr, b.addr))
	c1 := nextConn(t, atA)
	r.waitScreen("connected to " + a.addr)
	c1.sess.Abort()
	close(c1.done)

	c2 := nextConn(t, atB)
	r.waitScreen("reconnected to " + b.addr)
	r.typeKeys("hello b\r")
	if req := nextReq(t, c2); req.Type != chat.TypeMsg || req.Text != "hello b" {
		t.Fatalf("after the failover the client sent %+v, want the line typed", req)
	}
	if n := a.conns.Load(); n != 1 {
		t.Errorf("the node that dropped the connection got %d connections, want 1", n)
	}
	c2.sess.Close()
	close(c2.done)
}

// TestGroupRecordsNextKeyForOthers: the next key one node announces in a
// host key rotation is recorded for every listed address that trusts the
// current key, so that no node shows a changed key once it is promoted;
// an address that trusts nothing yet gets nothing.
func TestGroupRecordsNextKeyForOthers(t *testing.T) {
	cur, next := newHostKey(t), newHostKey(t)
	curPub, nextPub := cur.Public().(ed25519.PublicKey), next.Public().(ed25519.PublicKey)
	file := filepath.Join(t.TempDir(), "known_hosts")
	lines := handshake.FormatKnownHost("a.example:7777", curPub) + "\n" + handshake.FormatKnownHost("b.example:7777", curPub) + "\n"
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs := []string{"a.example:7777", "b.example:7777", "c.example:7777"}
	var notes bytes.Buffer
	trustFor, err := KnownHostsGroupTrust(file, addrs, handshake.PolicyStrict, "", nil, &notes)
	if err != nil {
		t.Fatal(err)
	}
	tr := trustFor("a.example:7777")
	if err := tr.Check(curPub); err != nil {
		t.Fatal(err)
	}
	if err := tr.Record(curPub); err != nil {
		t.Fatal(err)
	}
	sess := &handshake.Session{HostKey: curPub}
	rand.Read(sess.SessionID[:])
	payload, err := handshake.MarshalHostKeyAnnouncement(cur, next, sess.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	tr.RecordNext(sess, payload)
	kh, err := handshake.LoadKnownHosts(file)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"a.example:7777": true, "b.example:7777": true, "c.example:7777": false} {
		if got := listed(kh, addr, nextPub); got != want {
			t.Errorf("next key listed for %s: %v, want %v", addr, got, want)
		}
	}
	if notes.Len() > 0 {
		t.Errorf("notes %q, want none", notes.String())
	}
}

// TestFailoverOrderSpreads: after losing an address, a redial tries the
// others first, starting at the one pick chooses, and the lost one last;
// over the picks every other address comes first once, so the clients of
// a dead node spread over the live ones.
func TestFailoverOrderSpreads(t *testing.T) {
	if got := failoverOrder(1, 0, func(int) int { t.Fatal("pick called with one address"); return 0 }); !slices.Equal(got, []int{0}) {
		t.Errorf("one address: %v, want [0]", got)
	}
	for _, tc := range []struct {
		n, lost int
		want    [][]int // by pick
	}{
		{2, 0, [][]int{{1, 0}}},
		{3, 0, [][]int{{1, 2, 0}, {2, 1, 0}}},
		{4, 2, [][]int{{3, 0, 1, 2}, {0, 1, 3, 2}, {1, 3, 0, 2}}},
	} {
		firsts := map[int]bool{}
		for p, want := range tc.want {
			got := failoverOrder(tc.n, tc.lost, func(k int) int {
				if k != tc.n-1 {
					t.Errorf("pick(%d), want pick(%d): the others", k, tc.n-1)
				}
				return p
			})
			if !slices.Equal(got, want) {
				t.Errorf("n %d, lost %d, pick %d: %v, want %v", tc.n, tc.lost, p, got, want)
			}
			firsts[got[0]] = true
		}
		if len(firsts) != tc.n-1 || firsts[tc.lost] {
			t.Errorf("n %d, lost %d: first addresses %v, want every other one", tc.n, tc.lost, firsts)
		}
	}
}

// TestRedialStartsWherePickSays: a redial dials in failoverOrder with the
// redialer's pick, the lost address last.
func TestRedialStartsWherePickSays(t *testing.T) {
	addrs := []string{deadAddr(t), deadAddr(t), deadAddr(t)}
	cfg := nodesConfig(t, newHostKey(t).Public().(ed25519.PublicKey), addrs...)
	cfg.testOnlyRedialDelay = 0
	var tried []string
	r := &redialer{cfg: cfg, limit: 1, last: 0, pick: func(int) int { return 1 },
		failedOver: func(addr string, _ error, next string) { tried = append(tried, addr+">"+next) }}
	if _, err := r.redial(context.Background(), errors.New("lost")); err == nil {
		t.Fatal("redial to dead addresses succeeded")
	}
	want := []string{addrs[2] + ">" + addrs[1], addrs[1] + ">" + addrs[0]}
	if !slices.Equal(tried, want) {
		t.Errorf("tried %v, want %v (the third address first, the lost one last)", tried, want)
	}
}
