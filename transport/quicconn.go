package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// quicConn is a net.Conn over the one stream of a QUIC connection: bytes and
// deadlines come from the stream, addresses from the connection. Its close
// behaviour is documented on QUIC.
type quicConn struct {
	qc           *quic.Conn
	st           *quic.Stream
	release      func() // lets go of the UDP endpoint; called once
	closeTimeout time.Duration

	// Semaphores instead of mutexes so that a call waiting its turn can give
	// up when the conn closes.
	readSem  chan struct{}
	writeSem chan struct{}
	closing  chan struct{} // closed when Close or Abort starts

	peerEnded atomic.Bool // the peer's FIN (or reset) reached us

	mu             sync.Mutex // orders deadline changes against Close
	closed         bool
	finSent        bool
	peerEndedFirst bool // the peer's FIN had arrived when ours went out
}

var (
	_ net.Conn      = (*quicConn)(nil)
	_ ChannelBinder = (*quicConn)(nil)
	_ Aborter       = (*quicConn)(nil)
	_ CloseWriter   = (*quicConn)(nil)
)

func newQUICConn(qc *quic.Conn, st *quic.Stream, release func(), closeTimeout time.Duration) *quicConn {
	c := &quicConn{
		qc:           qc,
		st:           st,
		release:      sync.OnceFunc(release),
		closeTimeout: closeTimeout,
		readSem:      make(chan struct{}, 1),
		writeSem:     make(chan struct{}, 1),
		closing:      make(chan struct{}),
	}
	// Runs at once if the FIN is already in, else on quic-go's event loop.
	st.SetReceiveFinalSizeCallback(func(int64) { c.peerEnded.Store(true) })
	return c
}

func (c *quicConn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

func (c *quicConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "quic", Source: c.qc.LocalAddr(), Addr: c.qc.RemoteAddr(), Err: err}
}

// mapErr translates quic-go errors into the package contract. quic-go's
// connection errors all match net.ErrClosed, whoever closed; only our own
// closing state tells a local close from a remote or failed one.
func (c *quicConn) mapErr(op string, err error) error {
	switch {
	case err == nil, err == io.EOF:
		return err
	case c.isClosing():
		return c.opError(op, net.ErrClosed)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return c.opError(op, err)
	case errors.Is(err, quic.ErrStreamClosed):
		// Write after our own CloseWrite.
		return c.opError(op, net.ErrClosed)
	}
	return c.opError(op, aborted(err))
}

func (c *quicConn) Read(p []byte) (int, error) {
	select {
	case c.readSem <- struct{}{}:
	case <-c.closing:
		return 0, c.opError("read", net.ErrClosed)
	}
	defer func() { <-c.readSem }()
	if c.isClosing() {
		return 0, c.opError("read", net.ErrClosed)
	}
	n, err := c.st.Read(p)
	return n, c.mapErr("read", err)
}

func (c *quicConn) Write(p []byte) (int, error) {
	select {
	case c.writeSem <- struct{}{}:
	case <-c.closing:
		return 0, c.opError("write", net.ErrClosed)
	}
	defer func() { <-c.writeSem }()
	if c.isClosing() {
		return 0, c.opError("write", net.ErrClosed)
	}
	n, err := c.st.Write(p)
	return n, c.mapErr("write", err)
}

// sendFIN ends our sending half once and notes who finished first.
// c.mu must be held.
func (c *quicConn) sendFIN() {
	if c.finSent {
		return
	}
	c.finSent = true
	c.peerEndedFirst = c.peerEnded.Load()
	// Close only fails on a stream already reset, which has nothing to end.
	_ = c.st.Close()
}

func (c *quicConn) CloseWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("close write", net.ErrClosed)
	}
	c.sendFIN()
	return nil
}

// aLongTimeAgo is a deadline that has always passed, used to wake blocked calls.
var aLongTimeAgo = time.Unix(1, 0)

func (c *quicConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.opError("close", net.ErrClosed)
	}
	c.closed = true
	close(c.closing)
	// Wake Read and Write calls in progress. They report net.ErrClosed, and
	// the deadline stays because SetDeadline is refused from now on. Data
	// from Writes that returned is queued already and still goes out.
	c.st.SetWriteDeadline(aLongTimeAgo)
	c.st.SetReadDeadline(aLongTimeAgo)
	c.sendFIN()
	peerFirst := c.peerEndedFirst
	c.mu.Unlock()

	c.linger(peerFirst)
	c.qc.CloseWithError(quicNoError, "")
	c.release()
	return nil
}

// linger waits, at most closeTimeout, until closing the connection cannot
// discard data the peer still wants to read.
func (c *quicConn) linger(peerFirst bool) {
	timer := time.NewTimer(c.closeTimeout)
	defer timer.Stop()
	if peerFirst {
		// The peer ended first, so it is reading towards our FIN and will
		// close the connection when it gets there.
		select {
		case <-c.qc.Context().Done():
		case <-timer.C:
		}
		return
	}
	// We ended first: the peer may still be reading. Once its FIN arrives it
	// has finished with the stream, so read (and drop) up to that FIN.
	select {
	case c.readSem <- struct{}{}: // Reads in progress were woken above
	case <-timer.C:
		return
	}
	defer func() { <-c.readSem }()
	c.st.SetReadDeadline(time.Now().Add(c.closeTimeout))
	buf := make([]byte, 4096)
	for {
		if _, err := c.st.Read(buf); err != nil {
			return
		}
	}
}

func (c *quicConn) Abort() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.opError("abort", net.ErrClosed)
	}
	c.closed = true
	close(c.closing)
	c.mu.Unlock()
	// CloseWithError wakes every blocked stream call and sends
	// CONNECTION_CLOSE with securechat_error (PROTOCOL.md §3).
	c.qc.CloseWithError(quicProtoFail, "")
	c.release()
	return nil
}

// ChannelBinding returns the TLS exporter value of PROTOCOL.md §3. An empty
// context and a nil one are the same in TLS 1.3 (RFC 8446 §7.5 hashes it).
func (c *quicConn) ChannelBinding() ([]byte, error) {
	cs := c.qc.ConnectionState().TLS
	cb, err := cs.ExportKeyingMaterial(exporterLabel, nil, channelBindingLen)
	if err != nil {
		return nil, fmt.Errorf("transport: quic channel binding: %w", err)
	}
	return cb, nil
}

func (c *quicConn) LocalAddr() net.Addr  { return c.qc.LocalAddr() }
func (c *quicConn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

func (c *quicConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("set deadline", net.ErrClosed)
	}
	return c.st.SetDeadline(t)
}

func (c *quicConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("set read deadline", net.ErrClosed)
	}
	return c.st.SetReadDeadline(t)
}

func (c *quicConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("set write deadline", net.ErrClosed)
	}
	return c.st.SetWriteDeadline(t)
}
