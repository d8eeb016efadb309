package handshake

import (
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"securechat/cipher"
)

func TestWrongPasswordThreeTimes(t *testing.T) {
	v := newVerifier()
	ccfg, asked := clientConfig("alice", "a", "b", "c", "d")
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, serverConfig(v))
	if !errors.Is(c.err, ErrAuthFailed) {
		t.Errorf("client error %v, want ErrAuthFailed", c.err)
	}
	if !errors.Is(s.err, ErrAuthFailed) {
		t.Errorf("server error %v, want ErrAuthFailed", s.err)
	}
	if *asked != 3 || v.callCount() != 3 {
		t.Errorf("password asked %d times, verified %d times; want 3 and 3", *asked, v.callCount())
	}
}

func TestSecondPasswordWorks(t *testing.T) {
	v := newVerifier()
	ccfg, asked := clientConfig("bob", "nope", "hunter2")
	cc, sc := tcpPipe(t)
	c, s := handshakePair(t, cc, sc, ccfg, serverConfig(v))
	if c.err != nil || s.err != nil {
		t.Fatalf("client: %v, server: %v", c.err, s.err)
	}
	if *asked != 2 || s.s.User != "bob" {
		t.Errorf("asked %d times, user %q", *asked, s.s.User)
	}
}

type seenRecord struct {
	typ     cipher.RecordType
	payload string
	err     error
}

// authTranscript logs in with a raw client using each (user, password) in
// turn and returns every record the server sent after its FINISHED, until
// the session ends.
func authTranscript(t *testing.T, creds [][2]string) []seenRecord {
	t.Helper()
	v := newVerifier()
	cc, sc := tcpPipe(t)
	srv := make(chan error, 1)
	go func() {
		_, err := Server(t.Context(), sc, serverConfig(v))
		srv <- err
	}()
	r := rawLogin(t, cc, GroupX25519)
	var seen []seenRecord
	for _, cr := range creds {
		auth, err := marshalAuth(cr[0], []byte(cr[1]))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.conn.WriteRecord(cipher.TypeAuth, auth); err != nil {
			t.Fatal(err)
		}
		typ, p, err := r.conn.ReadRecord()
		seen = append(seen, seenRecord{typ, string(p), err})
	}
	// After the last failure the server must send CLOSE.
	typ, p, err := r.conn.ReadRecord()
	seen = append(seen, seenRecord{typ, string(p), err})
	if err := <-srv; !errors.Is(err, ErrAuthFailed) {
		t.Errorf("server: %v, want ErrAuthFailed", err)
	}
	if v.callCount() == 0 && creds[0][0] != "" {
		t.Error("verifier never called")
	}
	return seen
}

func TestAuthFailureIndistinguishable(t *testing.T) {
	unknown := authTranscript(t, [][2]string{{"mallory", "x"}, {"mallory", "y"}, {"eve", "z"}})
	wrong := authTranscript(t, [][2]string{{"alice", "x"}, {"alice", "y"}, {"bob", "z"}})
	mixed := authTranscript(t, [][2]string{{"alice", "x"}, {"nobody", "y"}, {"bad name!", "z"}})
	want := []seenRecord{
		{cipher.TypeAuthResult, "\x01", nil},
		{cipher.TypeAuthResult, "\x01", nil},
		{cipher.TypeAuthResult, "\x01", nil},
		{cipher.TypeClose, "", io.EOF},
	}
	for name, got := range map[string][]seenRecord{"unknown user": unknown, "wrong password": wrong, "mixed": mixed} {
		if len(got) != len(want) {
			t.Fatalf("%s: %d records, want %d", name, len(got), len(want))
		}
		for i := range want {
			if got[i].typ != want[i].typ || got[i].payload != want[i].payload || !errors.Is(got[i].err, want[i].err) && got[i].err != want[i].err {
				t.Errorf("%s: record %d = %v %q %v, want %v %q %v", name, i,
					got[i].typ, got[i].payload, got[i].err, want[i].typ, want[i].payload, want[i].err)
			}
		}
	}
}

func TestAuthUnknownMethodIsOrdinaryFailure(t *testing.T) {
	v := newVerifier()
	cc, sc := tcpPipe(t)
	srv := make(chan error, 1)
	go func() {
		_, err := Server(t.Context(), sc, serverConfig(v))
		srv <- err
	}()
	r := rawLogin(t, cc, GroupX25519)
	auth, _ := marshalAuth("alice", []byte("correct horse"))
	auth[0] = 0x7f // no such method
	if err := r.conn.WriteRecord(cipher.TypeAuth, auth); err != nil {
		t.Fatal(err)
	}
	typ, p, err := r.conn.ReadRecord()
	if err != nil || typ != cipher.TypeAuthResult || string(p) != "\x01" {
		t.Fatalf("got %v %q %v, want AUTH_RESULT failure", typ, p, err)
	}
	if v.callCount() != 0 {
		t.Error("verifier called for an unknown method")
	}
	// The right password still works afterwards.
	auth[0] = authMethodPassword
	if err := r.conn.WriteRecord(cipher.TypeAuth, auth); err != nil {
		t.Fatal(err)
	}
	typ, p, err = r.conn.ReadRecord()
	if err != nil || typ != cipher.TypeAuthResult || string(p) != "\x00" {
		t.Fatalf("got %v %q %v, want AUTH_RESULT success", typ, p, err)
	}
	if err := <-srv; err != nil {
		t.Fatal(err)
	}
}

func TestMalformedAuthIsFatal(t *testing.T) {
	for name, payload := range map[string][]byte{
		"empty":          {},
		"short user":     {1, 5, 'a'},
		"trailing bytes": {1, 1, 'a', 0, 1, 'x', 'y'},
		"short password": {1, 1, 'a', 0, 3, 'x'},
	} {
		t.Run(name, func(t *testing.T) {
			v := newVerifier()
			cc, sc := tcpPipe(t)
			srv := make(chan error, 1)
			go func() {
				_, err := Server(t.Context(), sc, serverConfig(v))
				srv <- err
			}()
			r := rawLogin(t, cc, GroupX25519)
			if err := r.conn.WriteRecord(cipher.TypeAuth, payload); err != nil {
				t.Fatal(err)
			}
			if err := <-srv; err == nil || errors.Is(err, ErrAuthFailed) {
				t.Fatalf("server: %v, want a fatal error", err)
			}
			if _, _, err := r.conn.ReadRecord(); err == nil {
				t.Error("server answered a malformed AUTH")
			}
		})
	}
}

// rejectingVerifier is a testVerifier that also hears of the AUTH
// attempts refused before Verify.
type rejectingVerifier struct {
	*testVerifier
	mu       sync.Mutex
	rejected []string
}

func (v *rejectingVerifier) AuthRejected(reason string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rejected = append(v.rejected, reason)
}

// TestAuthRejectedReported: an AUTH refused without asking the verifier
// (bad method, malformed name or password) is reported to a verifier that
// implements RejectRecorder, so that it can count as a failed login; the
// reason does not carry what the client sent.
func TestAuthRejectedReported(t *testing.T) {
	v := &rejectingVerifier{testVerifier: newVerifier()}
	cc, sc := tcpPipe(t)
	srv := make(chan error, 1)
	go func() {
		_, err := Server(t.Context(), sc, serverConfig(v))
		srv <- err
	}()
	r := rawLogin(t, cc, GroupX25519)
	badMethod, _ := marshalAuth("alice", []byte("correct horse"))
	badMethod[0] = 0x7f
	badName, _ := marshalAuth("Secret Name", []byte("correct horse"))
	badPassword := []byte{authMethodPassword, 5, 'a', 'l', 'i', 'c', 'e', 0, 2, 0xff, 0xfe} // not UTF-8
	for _, auth := range [][]byte{badMethod, badName, badPassword} {
		if err := r.conn.WriteRecord(cipher.TypeAuth, auth); err != nil {
			t.Fatal(err)
		}
		typ, p, err := r.conn.ReadRecord()
		if typ == cipher.TypeAuthResult && string(p) == "\x00" {
			t.Fatal("a malformed AUTH succeeded")
		}
		if err != nil {
			break // the last failure may close the connection
		}
	}
	<-srv
	if v.callCount() != 0 {
		t.Error("verifier asked to check a malformed AUTH")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	want := []string{"unknown AUTH method", "malformed user name", "malformed password"}
	if !slices.Equal(v.rejected, want) {
		t.Errorf("rejections reported: %q, want %q", v.rejected, want)
	}
	for _, reason := range v.rejected {
		if strings.Contains(reason, "Secret") {
			t.Errorf("reason %q carries the name the client sent", reason)
		}
	}
}
