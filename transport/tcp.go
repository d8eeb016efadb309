package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"
)

func init() { Register(TCP) }

// TCP is the "tcp" transport: one TCP connection per securechat connection.
//
// Conns have TCP_NODELAY set and TCP keepalives enabled (Options.KeepAlivePeriod),
// and implement Aborter and CloseWriter. Read returns io.EOF on the peer's FIN
// and an ErrAborted error on RST (the peer's Abort, or the peer's close with
// unread data still queued) and on keepalive or retransmission failure. The
// channel binding of TCP is empty, so its conns do not implement ChannelBinder.
var TCP Transport = tcpTransport{}

type tcpTransport struct{}

func (tcpTransport) Name() string { return "tcp" }

// keepAlive derives TCP keepalives from one period: probing starts after that
// much silence and repeats at the same pace, and three unanswered probes end
// the connection, so a vanished peer is noticed after about four periods. The
// first result is for the legacy KeepAlive fields, whose negative value is what
// disables keepalives when the config is not enabled.
func keepAlive(opts *Options) (time.Duration, net.KeepAliveConfig) {
	period := opts.keepAlivePeriod()
	if period == 0 {
		return -1, net.KeepAliveConfig{}
	}
	return period, net.KeepAliveConfig{Enable: true, Idle: period, Interval: period, Count: 3}
}

func (tcpTransport) Listen(ctx context.Context, addr string, opts *Options) (net.Listener, error) {
	// With an empty host Go opens one IPv6 socket with IPV6_V6ONLY off, which
	// accepts IPv4 too (dual stack).
	var lc net.ListenConfig
	lc.KeepAlive, lc.KeepAliveConfig = keepAlive(opts)
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: tcp listen: %w", err)
	}
	return &tcpListener{l: l.(*net.TCPListener)}, nil
}

func (tcpTransport) Dial(ctx context.Context, addr string, opts *Options) (net.Conn, error) {
	d := net.Dialer{Timeout: opts.handshakeIdleTimeout()}
	if opts != nil && opts.LocalAddr != "" {
		ip, err := netip.ParseAddr(opts.LocalAddr)
		if err != nil {
			return nil, fmt.Errorf("transport: tcp dial: local address %q: %w", opts.LocalAddr, err)
		}
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 0))
	}
	d.KeepAlive, d.KeepAliveConfig = keepAlive(opts)
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: tcp dial: %w", err)
	}
	return newTCPConn(c.(*net.TCPConn))
}

type tcpListener struct {
	l *net.TCPListener
}

func (l *tcpListener) Accept() (net.Conn, error) {
	// Errors from *net.TCPListener already satisfy net.ErrClosed after Close.
	c, err := l.l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return newTCPConn(c)
}

func (l *tcpListener) Close() error   { return l.l.Close() }
func (l *tcpListener) Addr() net.Addr { return l.l.Addr() }

func newTCPConn(c *net.TCPConn) (*tcpConn, error) {
	// Chat wants each line out at once, and the record layer already gathers
	// what belongs together into one Write (cipher.Conn.WriteMessages), so
	// Nagle's algorithm would only add delay.
	if err := c.SetNoDelay(true); err != nil {
		c.Close()
		return nil, fmt.Errorf("transport: tcp set nodelay: %w", err)
	}
	return &tcpConn{c: c}, nil
}

// tcpConn maps the errors of a *net.TCPConn onto the package contract. It
// deliberately exposes no ReadFrom/WriteTo, whose errors would bypass that.
type tcpConn struct {
	c           *net.TCPConn
	writeClosed atomic.Bool
}

var (
	_ net.Conn    = (*tcpConn)(nil)
	_ Aborter     = (*tcpConn)(nil)
	_ CloseWriter = (*tcpConn)(nil)
)

func (c *tcpConn) Read(p []byte) (int, error) {
	n, err := c.c.Read(p)
	return n, c.mapErr("read", err, false)
}

func (c *tcpConn) Write(p []byte) (int, error) {
	n, err := c.c.Write(p)
	return n, c.mapErr("write", err, c.writeClosed.Load())
}

// mapErr keeps the errors that already mean what the contract says (EOF,
// local close, deadline) and turns every other failure into ErrAborted.
func (c *tcpConn) mapErr(op string, err error, writeClosed bool) error {
	switch {
	case err == nil, err == io.EOF,
		errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrDeadlineExceeded):
		return err
	case writeClosed:
		// EPIPE after our own shutdown(SHUT_WR) is a local close.
		return &net.OpError{Op: op, Net: "tcp", Source: c.c.LocalAddr(), Addr: c.c.RemoteAddr(), Err: net.ErrClosed}
	}
	cause := err
	if oe, ok := err.(*net.OpError); ok {
		cause = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.c.LocalAddr(), Addr: c.c.RemoteAddr(), Err: aborted(cause)}
}

func (c *tcpConn) Close() error { return c.c.Close() }

func (c *tcpConn) CloseWrite() error {
	c.writeClosed.Store(true)
	return c.c.CloseWrite()
}

func (c *tcpConn) Abort() error {
	// SO_LINGER 0 turns close into RST, the TCP way of saying "failed", and
	// drops unsent data. An already closed conn reports net.ErrClosed here.
	if err := c.c.SetLinger(0); err != nil {
		return err
	}
	return c.c.Close()
}

func (c *tcpConn) LocalAddr() net.Addr                { return c.c.LocalAddr() }
func (c *tcpConn) RemoteAddr() net.Addr               { return c.c.RemoteAddr() }
func (c *tcpConn) SetDeadline(t time.Time) error      { return c.c.SetDeadline(t) }
func (c *tcpConn) SetReadDeadline(t time.Time) error  { return c.c.SetReadDeadline(t) }
func (c *tcpConn) SetWriteDeadline(t time.Time) error { return c.c.SetWriteDeadline(t) }
