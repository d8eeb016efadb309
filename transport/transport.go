// Package transport carries securechat's byte stream over TCP or QUIC.
//
// The one rule: transports move bytes and know nothing of securechat's
// cryptography. A transport hands out a net.Conn that is one reliable, ordered,
// full-duplex byte stream (PROTOCOL.md §3); the secure channel is layered on top
// of that net.Conn by the handshake and cipher packages, exactly as crypto/tls
// and x/crypto/ssh layer over any net.Conn. The only thing a transport exports
// towards the secure channel is an optional channel binding value
// (ChannelBinder), which the handshake mixes into its transcript.
//
// Transports register themselves by name (Register, Lookup, Names), so adding a
// transport is one new file with an init function that calls Register.
//
// # Conn contract
//
// Every net.Conn returned by a Transport (from Dial or from its Listener's
// Accept) obeys the following, on top of the net.Conn documentation:
//
//   - Read returns io.EOF only when the peer ended its sending half gracefully
//     (TCP FIN, QUIC stream FIN), after all the bytes the peer wrote before that.
//   - Read and Write return an error satisfying errors.Is(err, net.ErrClosed)
//     after this side called Close or Abort, and Write does so after CloseWrite.
//   - Read and Write return an error satisfying
//     errors.Is(err, os.ErrDeadlineExceeded) (a net.Error whose Timeout reports
//     true) when a deadline set with SetDeadline, SetReadDeadline or
//     SetWriteDeadline passes. The deadline also unblocks a call already
//     waiting. The connection stays usable once the deadline is moved.
//   - Any other end of the connection is abrupt and Read and Write return an
//     error satisfying errors.Is(err, ErrAborted): the peer aborted (TCP RST,
//     QUIC CONNECTION_CLOSE or stream reset before the stream FIN), the QUIC idle
//     timeout fired, or the network failed. Such errors never satisfy
//     net.ErrClosed, os.ErrDeadlineExceeded or io.EOF, and their Timeout method
//     (if any) reports false.
//   - Close unblocks pending Read and Write calls. Bytes from Write calls that
//     returned before Close reach the peer, provided the peer keeps reading.
//   - All methods may be called concurrently; concurrent Writes do not
//     interleave their bytes.
//
// Note that io.EOF proves only that the transport saw an orderly end: a TCP
// peer whose process dies still sends FIN. The securechat CLOSE record
// (PROTOCOL.md §12), not the transport, tells a clean end from truncation.
//
// # Listener contract
//
// Accept blocks until a connection is ready. Close makes every pending and
// future Accept return an error satisfying errors.Is(err, net.ErrClosed).
// Closing a Listener does not close connections it has already returned.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// Transport makes byte-stream connections. Implementations are stateless
// values safe for concurrent use; each Listen and Dial creates its own sockets.
type Transport interface {
	// Name is the registry name, also sent in CLIENT_HELLO's transport field
	// (PROTOCOL.md §5): "tcp" or "quic".
	Name() string

	// Listen listens on addr ("host:port"). A host left empty (":7000")
	// listens on all local addresses, IPv4 and IPv6; port 0 picks a free port,
	// reported by the Listener's Addr. ctx bounds only the setup of the
	// listener; it does not affect the returned Listener. opts may be nil.
	//
	// The Listener's Accept returns conns that keep the conn contract of the
	// package documentation. Its Close makes pending and later Accept calls
	// return an error satisfying errors.Is(err, net.ErrClosed), releases the
	// listening socket once no accepted conn still needs it, and leaves
	// accepted conns open; a second Close returns a net.ErrClosed error.
	Listen(ctx context.Context, addr string, opts *Options) (net.Listener, error)

	// Dial connects to addr ("host:port"). ctx bounds the whole connection
	// setup (resolution, TCP connect or QUIC handshake and stream opening)
	// and has no effect once Dial has returned. opts may be nil. The conn
	// keeps the conn contract of the package documentation; closing it
	// releases every resource Dial made.
	Dial(ctx context.Context, addr string, opts *Options) (net.Conn, error)
}

// Options tune a Listen or Dial. The zero value (or a nil *Options) gives
// the defaults noted on each field.
type Options struct {
	// HandshakeIdleTimeout bounds connection setup. TCP: the connect timeout
	// of Dial. QUIC: quic-go's HandshakeIdleTimeout. 0 means 5 s.
	HandshakeIdleTimeout time.Duration

	// StreamTimeout is how long a QUIC listener gives a client, once the
	// QUIC handshake is done, to open its stream and write its first bytes
	// (securechat's client writes CLIENT_HELLO at once, so this takes one
	// flight). Until then the connection holds one of the listener's few
	// pending places, so the wait is short. 0 means 2 s, or
	// HandshakeIdleTimeout if that is shorter. TCP ignores it.
	StreamTimeout time.Duration

	// Admit, if not nil, decides whether a QUIC listener keeps a connection
	// from remote. It is called once per connection, as soon as the QUIC
	// handshake is done and before the listener waits for the stream, so a
	// server can apply to connections it cannot see yet the limits it
	// applies to the ones Accept returns (per-source caps, penalties). Calls
	// come one at a time from the listener's own goroutine, so Admit must be
	// quick. TCP ignores it.
	//
	// If ok is false, the listener closes the connection at once with
	// application error 0x1 and never returns it from Accept. If ok is true,
	// release must not be nil, and the listener calls it exactly once: with
	// nil when Accept returns the connection (from then on the caller
	// applies its own limits, as to any connection), or with the reason
	// when it drops the connection before that (no stream within
	// StreamTimeout, a QUIC state it refuses, or the listener's Close). By
	// the time the listener's Close returns, every release has been called.
	Admit func(remote net.Addr) (release func(dropped error), ok bool)

	// Precheck, if not nil, decides whether a QUIC listener starts a
	// connection from remote at all. It is called at the connection's first
	// Initial packet, before any handshake work; if it returns false the
	// listener answers CONNECTION_REFUSED and keeps no state, so a source
	// the server would refuse anyway (penalised, or holding its share) costs
	// neither a handshake nor a place in the listener's queues.
	// handshaking is how many other connections from the same source block
	// (the /32 of an IPv4 address, the /64 of an IPv6 one) whose address
	// was proved are between their first packet and Admit; add it to what
	// the source already holds to apply a per-source cap. Calls come from
	// quic-go's packet-handling goroutine, under a lock of the listener, so
	// Precheck must be quick and must never block or call back into the
	// listener. Setting Precheck also makes the listener ask a source that
	// already has a connection in handshake to prove its address (Retry)
	// before its next one, so a spoofed address cannot fill another's count.
	// TCP ignores it.
	Precheck func(remote net.Addr, handshaking int) bool

	// MaxIdleTimeout ends a QUIC connection on which nothing has been
	// received for this long (the effective value is the smaller of both
	// peers' values). Reads then fail with ErrAborted. TCP ignores it. 0
	// means 30 s.
	MaxIdleTimeout time.Duration

	// KeepAlivePeriod keeps idle connections alive and detects dead peers.
	// TCP: the keepalive idle time and probe interval (both sides). QUIC: the
	// client's PING period (capped by quic-go at half the idle timeout); the
	// server sends none. 0 means 15 s; a negative value disables keepalives.
	KeepAlivePeriod time.Duration

	// CloseTimeout bounds how long a QUIC Close waits for the peer to finish
	// the stream (see the QUIC conn documentation in quic.go). TCP ignores it,
	// the kernel lingers on its own. 0 means 2 s.
	CloseTimeout time.Duration

	// StatelessResetKey, if not nil, is the key a QUIC listener makes its
	// stateless reset tokens with (RFC 9000 §10.3). When a packet arrives
	// for a connection the listener does not know (say, one from before a
	// restart), it answers with a stateless reset, and the peer's Reads
	// fail with ErrAborted at once instead of after the idle timeout. The
	// key must stay the same across restarts and be secret; nil disables
	// stateless resets. Dial and TCP ignore it.
	StatelessResetKey *[32]byte

	// LocalAddr is the local IP address Dial sends from (the TCP socket or
	// QUIC's UDP socket is bound to it, port chosen by the system), so that
	// a load test can appear as many sources: on Linux every address of
	// 127.0.0.0/8 is loopback. Empty lets the system choose. Listen
	// ignores it.
	LocalAddr string

	// Logger receives the transport's few log lines: debug lines about
	// refused QUIC connections, and the warning, once per process, that the
	// UDP socket buffers are smaller than quic-go wants (with the sysctl
	// settings that fix it). quic-go would print that warning itself through
	// the standard log package; the first QUIC Listen or Dial silences it by
	// setting QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true in the process
	// environment, unless that variable is already set, in which case its
	// value rules both warnings. nil means slog.Default().
	Logger *slog.Logger
}

const (
	defaultHandshakeIdleTimeout = 5 * time.Second
	defaultMaxIdleTimeout       = 30 * time.Second
	defaultKeepAlivePeriod      = 15 * time.Second
	defaultCloseTimeout         = 2 * time.Second
)

func (o *Options) handshakeIdleTimeout() time.Duration {
	if o == nil || o.HandshakeIdleTimeout <= 0 {
		return defaultHandshakeIdleTimeout
	}
	return o.HandshakeIdleTimeout
}

const defaultStreamTimeout = 2 * time.Second

func (o *Options) streamTimeout() time.Duration {
	if o != nil && o.StreamTimeout > 0 {
		return o.StreamTimeout
	}
	return min(defaultStreamTimeout, o.handshakeIdleTimeout())
}

func (o *Options) admit() func(net.Addr) (func(error), bool) {
	if o == nil {
		return nil
	}
	return o.Admit
}

func (o *Options) precheck() func(net.Addr, int) bool {
	if o == nil {
		return nil
	}
	return o.Precheck
}

func (o *Options) maxIdleTimeout() time.Duration {
	if o == nil || o.MaxIdleTimeout <= 0 {
		return defaultMaxIdleTimeout
	}
	return o.MaxIdleTimeout
}

// keepAlivePeriod returns 0 when keepalives are disabled.
func (o *Options) keepAlivePeriod() time.Duration {
	switch {
	case o == nil || o.KeepAlivePeriod == 0:
		return defaultKeepAlivePeriod
	case o.KeepAlivePeriod < 0:
		return 0
	}
	return o.KeepAlivePeriod
}

func (o *Options) closeTimeout() time.Duration {
	if o == nil || o.CloseTimeout <= 0 {
		return defaultCloseTimeout
	}
	return o.CloseTimeout
}

// localUDP is the address Dial binds its UDP socket to.
func (o *Options) localUDP() string {
	if o == nil || o.LocalAddr == "" {
		return ":0"
	}
	return net.JoinHostPort(o.LocalAddr, "0")
}

func (o *Options) logger() *slog.Logger {
	if o == nil || o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

// ChannelBinder is implemented by conns whose transport has its own
// cryptographic session. ChannelBinding returns a value unique to that
// session, equal on both ends, which the securechat handshake binds into its
// transcript (PROTOCOL.md §3, §5.3). QUIC conns implement it with the TLS
// exporter "EXPORTER-securechat-v1", empty context, 32 bytes. TCP conns do not
// implement it; their channel binding is empty.
type ChannelBinder interface {
	ChannelBinding() ([]byte, error)
}

// Aborter is implemented by conns that can end abruptly, to signal a protocol
// failure. Abort discards unsent data, makes the peer's Read and Write fail
// with ErrAborted rather than io.EOF, and unblocks local calls like Close.
// TCP: SO_LINGER 0 then close, so the kernel sends RST. QUIC: CONNECTION_CLOSE
// with application error code 0x1 (securechat_error) and an empty reason.
// Abort after Close or Abort returns an error satisfying net.ErrClosed.
type Aborter interface {
	Abort() error
}

// CloseWriter is implemented by conns that can end their sending half while
// still reading: the peer reads the bytes written so far, then io.EOF. Later
// Writes fail with net.ErrClosed. TCP: shutdown(SHUT_WR). QUIC: the stream's
// FIN; on a conn from a QUIC listener the FIN, and so the peer's io.EOF, waits
// until Read has returned the peer's io.EOF or until Close (PROTOCOL.md §3),
// so a peer must not wait for it before ending its own half. Close is still
// needed afterwards to release the connection.
type CloseWriter interface {
	CloseWrite() error
}

// ErrAborted is matched (errors.Is) by Read and Write errors when the
// connection ended abruptly: the peer aborted, the connection timed out, or the
// network failed. See the package documentation for the full list.
var ErrAborted = errors.New("transport: connection aborted")

// aborted wraps cause so that it matches ErrAborted and nothing that cause
// matched: quic-go's connection errors match net.ErrClosed, which this package
// reserves for closes made on this side.
func aborted(cause error) error {
	return fmt.Errorf("%w: %v", ErrAborted, cause)
}

var (
	registryMu sync.RWMutex
	registry   = make(map[string]Transport)
)

// Register makes t available under t.Name(). It is meant to be called from an
// init function and panics if the name is empty or already taken, like
// database/sql.Register.
func Register(t Transport) {
	if t == nil {
		panic("transport: Register of nil transport")
	}
	name := t.Name()
	if name == "" {
		panic("transport: Register of transport with empty name")
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("transport: Register called twice for " + name)
	}
	registry[name] = t
}

// Lookup returns the transport registered under name.
func Lookup(name string) (Transport, error) {
	registryMu.RLock()
	t, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("transport: unknown transport %q (known: %v)", name, Names())
	}
	return t, nil
}

// Names returns the registered transport names, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
