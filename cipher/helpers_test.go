package cipher

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
)

// Generation-0 traffic secrets used by most tests; the values are arbitrary.
var (
	testC2S = bytes.Repeat([]byte{0xc2}, 32)
	testS2C = bytes.Repeat([]byte{0x5c}, 32)
)

type pairMaker struct {
	name string
	make func(t testing.TB) (a, b net.Conn)
}

var transports = []pairMaker{
	{"pipe", func(t testing.TB) (net.Conn, net.Conn) { return net.Pipe() }},
	{"tcp", tcpConns},
}

// tcpConns returns both ends of a real loopback TCP connection.
func tcpConns(t testing.TB) (net.Conn, net.Conn) {
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
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		a.Close()
		t.Fatal(r.err)
	}
	return a, r.c
}

// newPair layers the record protocol over a and b as client and server.
func newPair(t testing.TB, a, b net.Conn, opts *Options) (client, server *Conn) {
	t.Helper()
	client = New(a, testC2S, testS2C, opts)
	server = New(b, testS2C, testC2S, opts)
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return client, server
}

// establishedPair is newPair with login done on both sides.
func establishedPair(t testing.TB, pm pairMaker, opts *Options) (client, server *Conn) {
	t.Helper()
	a, b := pm.make(t)
	client, server = newPair(t, a, b, opts)
	client.SetEstablished()
	server.SetEstablished()
	return client, server
}

// goErr runs f in a goroutine and returns a channel with its error.
func goErr(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func wait(t testing.TB, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("goroutine did not finish")
	}
}

// countingConn counts the bytes read from the underlying connection.
type countingConn struct {
	net.Conn
	read int
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read += n
	return n, err
}

// readerConn is a net.Conn whose reads come from a fixed byte slice and
// whose writes are collected; it stands in for a peer in single-goroutine
// tests.
type readerConn struct {
	net.Conn // nil: methods not overridden panic, which a test would notice
	r        *bytes.Reader
	written  bytes.Buffer
	writes   int
	closed   bool
	aborted  bool
}

func newReaderConn(b []byte) *readerConn { return &readerConn{r: bytes.NewReader(b)} }

func (c *readerConn) Read(b []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.r.Read(b)
}
func (c *readerConn) Write(b []byte) (int, error)      { c.writes++; return c.written.Write(b) }
func (c *readerConn) Close() error                     { c.closed = true; return nil }
func (c *readerConn) SetDeadline(time.Time) error      { return nil }
func (c *readerConn) SetReadDeadline(time.Time) error  { return nil }
func (c *readerConn) SetWriteDeadline(time.Time) error { return nil }

// abortConn is a readerConn that can be aborted, as the QUIC transport can.
type abortConn struct{ *readerConn }

func (c abortConn) Abort() error { c.aborted = true; c.closed = true; return nil }

func isBad(err error) bool { return errors.Is(err, ErrBadRecord) }
