package server

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"securechat/chat"
	"securechat/cipher"
	"securechat/handshake"
	"securechat/transport"
)

// hookLog records what the server's hooks report, as "kind/value" counts.
type hookLog struct {
	mu     sync.Mutex
	counts map[string]int
}

func (l *hookLog) add(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[key]++
}

func (l *hookLog) get(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[key]
}

func (l *hookLog) hooks() Hooks {
	return Hooks{
		Refused: func(r string) { l.add("refused/" + r) },
		Penalty: func(ev PenaltyEvent) { l.add("penalty/" + ev.String()) },
		Login:   func(r string) { l.add("login/" + r) },
		Handshake: func(g handshake.Group, r string, took time.Duration) {
			if took <= 0 {
				l.add("handshake/nonpositive")
			}
			l.add(fmt.Sprintf("handshake/%s/%s", g, r))
		},
		Rekey: func(sent bool) { l.add(fmt.Sprintf("rekey/%v", sent)) },
	}
}

// TestHooks: a login, a wrong password, a refused connection and rekeys
// each way reach the hooks, with labels from the fixed sets only.
func TestHooks(t *testing.T) {
	l := &hookLog{counts: map[string]int{}}
	// One failed login is enough to be refused: the authfail penalty is
	// the minimum.
	pen := &PenaltyBox{AuthFail: time.Minute, Min: time.Minute, Max: time.Hour, MaxSources: 16}
	// The server rekeys before every record after its first byte.
	rec := &cipher.Options{RekeyAfterBytes: 1}
	ts := startServer(t, transport.TCP, serverOpts{hooks: l.hooks(), penalties: pen, record: rec})

	a, err := ts.dial("alice", "password-alice", handshake.GroupX25519)
	if err != nil {
		t.Fatal(err)
	}
	ca := newChatClient(t, a)
	if n := ts.srv.Sessions(); n != 1 {
		t.Errorf("Sessions() = %d with alice logged in, want 1", n)
	}
	if err := a.KeyUpdate(); err != nil {
		t.Fatal(err)
	}
	ca.send(&chat.Request{Type: chat.TypeMsg, ID: "m1", Room: "#general", Text: "hi"})
	ca.waitFor(func(e *chat.Event) bool { return e.ID == "m1" })

	if _, err := ts.dial("bob", "wrong", handshake.GroupMLKEM768X25519); !errors.Is(err, handshake.ErrAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := ts.dial("bob", "password-bob"); err == nil {
		t.Fatal("a penalised source logged in")
	}
	if rec.OnRekey != nil {
		t.Error("the server changed the caller's cipher.Options")
	}

	a.Close()
	// The session's end is counted once the hub has let it go.
	deadline := time.Now().Add(10 * time.Second)
	for ts.srv.Sessions() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := ts.srv.Sessions(); n != 0 {
		t.Errorf("Sessions() = %d after alice left, want 0", n)
	}

	want := map[string]int{
		"login/ok":                             1,
		"login/failed":                         1,
		"handshake/x25519/ok":                  1,
		"handshake/mlkem768x25519/auth_failed": 1,
		"penalty/authfail":                     1,
		"refused/penalty":                      1,
		"rekey/false":                          1,
		"handshake/nonpositive":                0,
	}
	// The server ends a failed connection's handshake after its client has
	// given up: wait for the counts, within a bound, before judging them.
	settled := func() bool {
		for key, n := range want {
			if l.get(key) != n {
				return false
			}
		}
		return true
	}
	for !settled() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for key, n := range want {
		if got := l.get(key); got != n {
			t.Errorf("%s: %d, want %d (all: %v)", key, got, n, l.counts)
		}
	}
	if l.get("rekey/true") < 1 {
		t.Errorf("no rekey sent by the server counted (all: %v)", l.counts)
	}
}

// A failed handshake with nothing chosen yet reports group 0; a timeout
// and other failures are told apart.
func TestHandshakeResult(t *testing.T) {
	for err, want := range map[error]string{
		nil: HandshakeOK,
		fmt.Errorf("x: %w", handshake.ErrAuthFailed): HandshakeAuthFailed,
		fmt.Errorf("x: %w", os.ErrDeadlineExceeded):  HandshakeTimeout,
		errors.New("bad message"):                    HandshakeError,
	} {
		if got := handshakeResult(err); got != want {
			t.Errorf("handshakeResult(%v) = %q, want %q", err, got, want)
		}
	}
}
