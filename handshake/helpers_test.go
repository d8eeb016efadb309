package handshake

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testVerifier knows a fixed set of accounts and counts the calls it gets.
type testVerifier struct {
	mu       sync.Mutex
	accounts map[string]string
	calls    int
}

func (v *testVerifier) Verify(_ context.Context, user string, password []byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls++
	want, ok := v.accounts[user]
	if !ok {
		return fmt.Errorf("unknown user: %w", ErrAuthFailed)
	}
	if want != string(password) {
		return fmt.Errorf("wrong password: %w", ErrAuthFailed)
	}
	return nil
}

func (v *testVerifier) callCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.calls
}

func newVerifier() *testVerifier {
	return &testVerifier{accounts: map[string]string{"alice": "correct horse", "bob": "hunter2"}}
}

// testHostKey returns a host key derived from name, so tests can make
// several distinct but reproducible keys.
func testHostKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("securechat test host key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// tcpPipe returns both ends of a loopback TCP connection. Unlike net.Pipe it
// buffers, so both sides may write at once (as after the last AUTH failure).
func tcpPipe(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		client.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// serverConfig allows every group, ffdhe3072 included, so that the tests
// can exercise each; TestServerDefaultGroups covers the default list.
func serverConfig(v Verifier) *ServerConfig {
	return &ServerConfig{
		HostKey:   testHostKey("server"),
		Groups:    allGroups,
		Verifier:  v,
		Transport: "tcp",
	}
}

// passwords returns a Password callback answering from list, and a counter
// of how often it was called.
func passwords(list ...string) (func(int) ([]byte, error), *int) {
	var mu sync.Mutex
	n := new(int)
	return func(attempt int) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		*n++
		if attempt < 1 || attempt > len(list) {
			return nil, errors.New("no more passwords")
		}
		return []byte(list[attempt-1]), nil
	}, n
}

func clientConfig(user string, pw ...string) (*ClientConfig, *int) {
	f, n := passwords(pw...)
	return &ClientConfig{
		Transport:       "tcp",
		HostKeyCallback: FixedHostKey(testHostKey("server").Public().(ed25519.PublicKey)),
		User:            user,
		Password:        f,
	}, n
}

type result struct {
	s   *Session
	err error
}

// handshakePair runs Client and Server on the two ends at once and waits for
// both. The sessions are closed at cleanup.
func handshakePair(t testing.TB, cc, sc net.Conn, ccfg *ClientConfig, scfg *ServerConfig) (client, server result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := make(chan result, 1)
	go func() {
		s, err := Server(ctx, sc, scfg)
		srv <- result{s, err}
	}()
	s, err := Client(ctx, cc, ccfg)
	client = result{s, err}
	server = <-srv
	t.Cleanup(func() {
		for _, r := range []result{client, server} {
			if r.s != nil {
				r.s.Abort()
			}
		}
	})
	return client, server
}

// findTestVectors walks up from the package directory to a shared/testvectors
// folder next to the repository (../shared/testvectors from the root).
func findTestVectors(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "shared", "testvectors", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skipf("test vectors %s not found: expected ../shared/testvectors next to the repository root", name)
		}
		dir = parent
	}
}
