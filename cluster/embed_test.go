package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// testTimeout stops a test that hangs; no test asserts on how fast
// anything is.
const testTimeout = 20 * time.Second

// embedded is one in-process NATS server with JetStream, on a random
// loopback port, its data in a temporary directory.
type embedded struct {
	t    *testing.T
	opts *server.Options
	srv  *server.Server
}

func startEmbedded(t *testing.T, adjust func(*server.Options)) *embedded {
	t.Helper()
	o := &server.Options{
		ServerName: "embedded",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	}
	if adjust != nil {
		adjust(o)
	}
	e := &embedded{t: t, opts: o}
	e.start()
	// A restart reuses the port, so that clients find the server again.
	e.opts.Port = e.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(e.shutdown)
	return e
}

func (e *embedded) start() {
	e.t.Helper()
	if err := e.tryStart(); err != nil {
		e.t.Fatal(err)
	}
}

// tryStart is start for goroutines other than the test's.
func (e *embedded) tryStart() error {
	srv, err := server.NewServer(e.opts)
	if err != nil {
		return fmt.Errorf("NATS server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(testTimeout) {
		srv.Shutdown()
		return errors.New("NATS server did not become ready")
	}
	e.srv = srv
	return nil
}

func (e *embedded) shutdown() {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		e.srv = nil
	}
}

// restart stops the server and starts it again on the same port and data.
func (e *embedded) restart() {
	e.t.Helper()
	e.shutdown()
	e.start()
}

func (e *embedded) url() string { return e.srv.ClientURL() }

// connect opens a Conn named name to e, closed when the test ends.
func (e *embedded) connect(t *testing.T, name string) *Conn {
	t.Helper()
	c, err := Connect(e.url(), &Options{Name: name, Timeout: testTimeout})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, or fails the test at the deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
