package transport

import (
	"context"
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
	isClient     bool
	release      func() // lets go of the UDP endpoint; called once
	closeTimeout time.Duration

	// Semaphores instead of mutexes so that a call waiting its turn can give
	// up when the conn closes.
	readSem  chan struct{}
	writeSem chan struct{}
	closing  chan struct{} // closed when Close or Abort starts

	mu     sync.Mutex // orders deadline changes and the FIN against Close
	closed bool
	// The server sends its FIN only after reading the client's (see QUIC):
	// finWanted records a CloseWrite still waiting for peerFIN.
	finWanted   bool
	peerFIN     bool
	writeClosed atomic.Bool
}

var (
	_ net.Conn      = (*quicConn)(nil)
	_ ChannelBinder = (*quicConn)(nil)
	_ Aborter       = (*quicConn)(nil)
	_ CloseWriter   = (*quicConn)(nil)
)

func newQUICConn(qc *quic.Conn, st *quic.Stream, isClient bool, release func(), closeTimeout time.Duration) *quicConn {
	return &quicConn{
		qc:           qc,
		st:           st,
		isClient:     isClient,
		release:      sync.OnceFunc(release),
		closeTimeout: closeTimeout,
		readSem:      make(chan struct{}, 1),
		writeSem:     make(chan struct{}, 1),
		closing:      make(chan struct{}),
	}
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
	if err == io.EOF {
		c.sawPeerFIN()
	}
	return n, c.mapErr("read", err)
}

// sawPeerFIN notes that the peer's stream is read to its end, and on the
// server sends the FIN a CloseWrite left waiting for that.
func (c *quicConn) sawPeerFIN() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peerFIN = true
	if c.finWanted && !c.closed {
		c.finWanted = false
		_ = c.st.Close()
	}
}

func (c *quicConn) Write(p []byte) (int, error) {
	select {
	case c.writeSem <- struct{}{}:
	case <-c.closing:
		return 0, c.opError("write", net.ErrClosed)
	}
	defer func() { <-c.writeSem }()
	if c.isClosing() || c.writeClosed.Load() {
		return 0, c.opError("write", net.ErrClosed)
	}
	n, err := c.st.Write(p)
	return n, c.mapErr("write", err)
}

func (c *quicConn) CloseWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("close write", net.ErrClosed)
	}
	c.writeClosed.Store(true)
	if !c.isClient && !c.peerFIN {
		// The FIN follows once Read has reached the client's FIN, or at
		// Close: the client closes the connection when it sees our FIN,
		// which would throw away data we still mean to read.
		c.finWanted = true
		return nil
	}
	// Close only fails on a stream already reset, which has nothing to end.
	_ = c.st.Close()
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
	// FIN now, even on a server whose CloseWrite still waits for the
	// client's FIN: this side reads nothing more, so nothing it could lose
	// when the client closes the connection matters any longer.
	c.finWanted = false
	_ = c.st.Close()
	c.mu.Unlock()

	c.linger()
	c.qc.CloseWithError(quicNoError, "")
	c.release()
	return nil
}

// linger waits, at most closeTimeout, until closing the connection cannot
// throw away data the peer still reads: quic-go drops received but unread
// stream data when the connection closes. See QUIC for the scheme.
func (c *quicConn) linger() {
	deadline := time.Now().Add(c.closeTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	// Read up to the peer's FIN, dropping the data: the application has
	// stopped reading, and draining keeps flow control open so the peer's
	// last bytes and FIN can arrive.
	select {
	case c.readSem <- struct{}{}: // Reads in progress were woken by Close
		c.st.SetReadDeadline(deadline)
		buf := make([]byte, 4096)
		for {
			if _, err := c.st.Read(buf); err != nil {
				break
			}
		}
		<-c.readSem
	case <-ctx.Done():
	}
	if c.isClient {
		// The server sent its FIN once it had read all it wanted: the
		// caller closes the connection.
		return
	}
	// The client closes the connection once it has read our FIN.
	select {
	case <-c.qc.Context().Done():
	case <-ctx.Done():
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
