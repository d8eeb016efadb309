package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

func init() { Register(QUIC) }

// QUIC is the "quic" transport (PROTOCOL.md §3): one QUIC connection (RFC 9000,
// TLS 1.3, ALPN "securechat/1") per securechat connection, carrying exactly
// one bidirectional stream opened by the client.
//
// The listener presents a self-signed Ed25519 certificate made at Listen; the
// dialer does not verify it, because the securechat handshake inside the stream
// authenticates the server. Neither side accepts 0-RTT or session resumption.
// The server allows the client one bidirectional stream and no
// unidirectional ones; the client allows the server no streams.
//
// Because a QUIC peer cannot see a stream before data is written on it, the
// listener's Accept returns a conn only once the client has written its first
// bytes (securechat's client speaks first). Connections that do not get that
// far within Options.StreamTimeout are closed with error 0x1 without ever
// being returned, and never hold up other connections. Until then each holds
// one of the listener's pending places; Options.Admit lets the application
// refuse a connection before it takes one for long, for example because its
// source already holds its share, and Options.Precheck lets it refuse one at
// its first packet, before the QUIC handshake costs anything.
//
// Conns implement ChannelBinder, Aborter and CloseWriter. What Read returns:
//
//   - io.EOF: the peer's stream FIN, after all stream data (sticky: a later
//     connection close does not replace it).
//   - ErrAborted: the connection closed before the peer's FIN, whatever the
//     reason: the peer's Abort (application error 0x1), a peer that closed the
//     connection with code 0 without finishing its stream, a stream reset, the
//     idle timeout (a vanished peer is noticed after Options.MaxIdleTimeout),
//     a stateless reset, or a QUIC protocol error.
//   - net.ErrClosed: this side called Close or Abort.
//   - os.ErrDeadlineExceeded: a deadline passed.
//
// Close is graceful, and may block up to Options.CloseTimeout, because closing
// a QUIC connection throws away stream data the peer has received but not yet
// read. The rule (PROTOCOL.md §3) needs nothing but stream FINs and the
// connection close, so that a peer written with any QUIC library can keep it:
// the client closes the connection, with application error code 0 (no_error),
// once it has read the server's FIN; and the server sends its FIN only when it
// has read all it wants. So a server's CloseWrite holds the FIN back until Read
// has reached the client's FIN, or until Close. Close sends the FIN (on the
// client, after the data already written), then reads and drops whatever the
// peer still sends, up to its FIN; the client then closes the connection, the
// server waits for the client to close it. If CloseTimeout passes first, the
// side closes the connection itself, with code 0.
var QUIC Transport = quicTransport{}

const (
	quicALPN = "securechat/1"

	// Channel binding of PROTOCOL.md §3: TLS exporter, empty context, 32 bytes.
	exporterLabel     = "EXPORTER-securechat-v1"
	channelBindingLen = 32

	// Application error codes of PROTOCOL.md §3.
	quicNoError   quic.ApplicationErrorCode = 0x0
	quicProtoFail quic.ApplicationErrorCode = 0x1

	// maxPendingQUIC bounds the QUIC connections that finished their handshake
	// but were not yet returned by Accept (waiting for the client's stream or
	// for the application to call Accept). When it is reached the listener
	// stops taking connections from quic-go until a place frees (see
	// acceptLoop); quic-go's own queue then holds those that finish their
	// handshake, and refuses new ones once it is full.
	maxPendingQUIC = 64
)

type quicTransport struct{}

func (quicTransport) Name() string { return "quic" }

func (quicTransport) Listen(ctx context.Context, addr string, opts *Options) (net.Listener, error) {
	log := opts.logger()
	routeQUICBufferWarning()
	cert, err := selfSignedCertificate()
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{quicALPN},
		MinVersion:   tls.VersionTLS13,
		// No tickets, hence no resumption and no 0-RTT (PROTOCOL.md §3).
		SessionTicketsDisabled: true,
	}
	conf := &quic.Config{
		HandshakeIdleTimeout: opts.handshakeIdleTimeout(),
		MaxIdleTimeout:       opts.maxIdleTimeout(),
		// One bidirectional stream, ever: with RequireStreamCreditRelease a
		// finished stream keeps its credit, which is never released, so the
		// client cannot open a second one. No unidirectional streams.
		MaxIncomingStreams:         1,
		RequireStreamCreditRelease: true,
		MaxIncomingUniStreams:      -1,
		Allow0RTT:                  false,
	}

	// With an empty host Go opens one IPv6 socket with IPV6_V6ONLY off, which
	// receives IPv4 too (dual stack).
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: quic listen: %w", err)
	}
	ep := newUDPEndpoint(pc)
	if opts != nil && opts.StatelessResetKey != nil {
		key := quic.StatelessResetKey(*opts.StatelessResetKey)
		ep.tr.StatelessResetKey = &key
	}
	load := &handshakeLoad{retryAbove: quicRetryAbove, precheck: opts.precheck(), log: log}
	ep.tr.ConnContext = load.enter
	ep.tr.VerifySourceAddress = load.verifySource
	qln, err := ep.tr.Listen(tlsConf, conf)
	checkUDPBuffers(pc, log)
	if err != nil {
		ep.release()
		return nil, fmt.Errorf("transport: quic listen: %w", err)
	}

	lctx, cancel := context.WithCancel(context.Background())
	l := &quicListener{
		ln:           qln,
		ep:           ep,
		load:         load,
		log:          log,
		streamWait:   opts.streamTimeout(),
		admit:        opts.admit(),
		closeTimeout: opts.closeTimeout(),
		ctx:          lctx,
		cancel:       cancel,
		done:         make(chan struct{}),
		ready:        make(chan handedOver),
		slots:        make(chan struct{}, maxPendingQUIC),
	}
	l.wg.Go(l.acceptLoop)
	return l, nil
}

func (quicTransport) Dial(ctx context.Context, addr string, opts *Options) (net.Conn, error) {
	log := opts.logger()
	routeQUICBufferWarning()
	raddr, err := resolveUDP(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("transport: quic dial: %w", err)
	}
	tlsConf := &tls.Config{
		// The QUIC certificate is not verified, on purpose: the securechat
		// handshake inside the stream authenticates the server (its host key
		// signs the handshake transcript, pinned in known_hosts, PROTOCOL.md
		// §7), and the channel binding (§3) ties that handshake to this very
		// QUIC connection, so a relay terminating QUIC on both sides cannot
		// splice two connections. The certificate only lets the QUIC TLS
		// handshake run.
		InsecureSkipVerify: true,
		NextProtos:         []string{quicALPN},
		MinVersion:         tls.VersionTLS13,
	}
	conf := &quic.Config{
		HandshakeIdleTimeout:  opts.handshakeIdleTimeout(),
		MaxIdleTimeout:        opts.maxIdleTimeout(),
		KeepAlivePeriod:       opts.keepAlivePeriod(),
		MaxIncomingStreams:    -1, // the server opens no streams
		MaxIncomingUniStreams: -1,
	}

	// A socket of our own per connection (rather than quic.DialAddr's) so we
	// can inspect its buffers, and close it together with the connection.
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", opts.localUDP())
	if err != nil {
		return nil, fmt.Errorf("transport: quic dial: %w", err)
	}
	ep := newUDPEndpoint(pc)
	qc, err := ep.tr.Dial(ctx, raddr, tlsConf, conf)
	checkUDPBuffers(pc, log)
	if err != nil {
		ep.release()
		return nil, fmt.Errorf("transport: quic dial: %w", err)
	}
	if err := checkQUICState(qc); err != nil {
		qc.CloseWithError(quicProtoFail, "")
		ep.release()
		return nil, fmt.Errorf("transport: quic dial: %w", err)
	}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		qc.CloseWithError(quicProtoFail, "")
		ep.release()
		return nil, fmt.Errorf("transport: quic dial: open stream: %w", err)
	}
	return newQUICConn(qc, st, true, ep.release, opts.closeTimeout()), nil
}

// checkQUICState re-checks, on the finished handshake, what the configuration
// already asks for: ALPN securechat/1 and no 0-RTT (PROTOCOL.md §3).
func checkQUICState(qc *quic.Conn) error {
	cs := qc.ConnectionState()
	if cs.Used0RTT {
		return errors.New("peer used 0-RTT")
	}
	if cs.TLS.NegotiatedProtocol != quicALPN {
		return fmt.Errorf("negotiated ALPN %q, want %q", cs.TLS.NegotiatedProtocol, quicALPN)
	}
	return nil
}

// resolveUDP resolves host:port under ctx, preferring IPv4 like the net
// package does for "udp".
func resolveUDP(ctx context.Context, addr string) (*net.UDPAddr, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := net.DefaultResolver.LookupPort(ctx, "udp", portStr)
	if err != nil {
		return nil, err
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))), nil
	}
	if host == "" {
		host = "localhost"
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	pick := ips[0]
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			pick = ip
			break
		}
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(pick.Unmap(), uint16(port))), nil
}

// selfSignedCertificate makes the throwaway certificate that lets the QUIC TLS
// handshake run. Nothing checks it (see Dial), so its fields are minimal.
func selfSignedCertificate() (tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: quic certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: quic certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "securechat"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: quic certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}

// udpEndpoint is one UDP socket and the quic.Transport running on it, shared
// by a listener and the connections it accepted (or owned by one dialed
// connection). It closes when the last holder lets go, so that closing a
// listener leaves its accepted connections working, as with TCP.
type udpEndpoint struct {
	pc   net.PacketConn
	tr   *quic.Transport
	refs atomic.Int64
}

func newUDPEndpoint(pc net.PacketConn) *udpEndpoint {
	ep := &udpEndpoint{pc: pc, tr: &quic.Transport{Conn: pc}}
	ep.refs.Store(1)
	return ep
}

func (ep *udpEndpoint) acquire() { ep.refs.Add(1) }

func (ep *udpEndpoint) release() {
	if ep.refs.Add(-1) == 0 {
		// Transport.Close cuts remaining connections without a word, but
		// every holder has closed its connection by now. It leaves a socket
		// it did not create open, so close that too.
		ep.tr.Close()
		ep.pc.Close()
	}
}

// quicRetryAbove is how many connections a listener may have in their QUIC
// handshake or waiting for their stream before it asks new ones to prove
// their source address first (a variable for tests).
var quicRetryAbove int64 = maxPendingQUIC

// errRefusedEarly is what quic-go hears from ConnContext when Options.Precheck
// refuses a connection; quic-go then answers with CONNECTION_REFUSED.
var errRefusedEarly = errors.New("transport: quic: source refused before its handshake")

// handshakeLoad counts a listener's connections from their first packet
// until the listener hands them to Admit or drops them, in all and per
// source block, and turns on QUIC's Retry (RFC 9000 §8.1.2) while there are
// more than retryAbove.
//
// The limits of Options.Admit apply once the QUIC handshake is done, which a
// spoofed source address can never reach; but every Initial packet, spoofed
// or not, makes quic-go sign a handshake and send up to three times what it
// received to that address. Retry answers an Initial with a stateless token
// the client must echo from its real address, so under load a flood from
// spoofed addresses costs us a packet each and holds no state, while real
// clients pay one round trip. Without load nobody pays it.
//
// Options.Precheck refuses a source before its handshake, counting its
// connections already in handshake. Counting by an address nobody proved
// would let a spoofer fill a victim's count, so only connections whose
// address was proved count towards Precheck; and while a source block has a
// connection in handshake, its next ones must prove their address with
// Retry first. A spoofer thus holds one unproved connection per block at
// most, and a real source's second and later concurrent connections are
// counted.
type handshakeLoad struct {
	retryAbove int64
	precheck   func(net.Addr, int) bool // nil: no early refusal
	log        *slog.Logger

	inFlight atomic.Int64
	retries  atomic.Int64 // Retry packets asked for, for tests
	refused  atomic.Int64 // connections Precheck refused, for tests

	mu       sync.Mutex
	all      map[netip.Prefix]int // connections in handshake per block
	verified map[netip.Prefix]int // those whose source address was proved
}

type handshakeLoadKey struct{}

// enter is quic-go's ConnContext, called at a connection's first Initial
// packet (its address verified by Retry or not) before any handshake work:
// Precheck may refuse it here; otherwise it starts counting, and stops when
// it closes or leave is called, whichever comes first.
func (h *handshakeLoad) enter(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	key, keyed := quicSourceBlock(info.RemoteAddr)
	h.mu.Lock()
	if h.precheck != nil && !h.precheck(info.RemoteAddr, h.verified[key]) {
		h.mu.Unlock()
		h.refused.Add(1)
		h.log.Debug("transport: quic: connection refused before its handshake", "remote", info.RemoteAddr.String())
		return nil, errRefusedEarly
	}
	proved := info.AddrVerified
	if keyed {
		if h.all == nil {
			h.all = make(map[netip.Prefix]int)
			h.verified = make(map[netip.Prefix]int)
		}
		h.all[key]++
		if proved {
			h.verified[key]++
		}
	}
	h.mu.Unlock()
	h.inFlight.Add(1)
	leaveBlock := sync.OnceFunc(func() {
		if !keyed {
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.all[key]--; h.all[key] <= 0 {
			delete(h.all, key)
		}
		if proved {
			if h.verified[key]--; h.verified[key] <= 0 {
				delete(h.verified, key)
			}
		}
	})
	leave := sync.OnceFunc(func() {
		leaveBlock()
		h.inFlight.Add(-1)
	})
	ctx = context.WithValue(ctx, handshakeLoadKey{}, loadLeave{block: leaveBlock, all: leave})
	context.AfterFunc(ctx, leave)
	return ctx, nil
}

// loadLeave ends a connection's counting: block its per-source count, once
// Admit has taken it over; all, every count, once the listener is done with
// it before Accept.
type loadLeave struct{ block, all func() }

// admitted stops counting qc by its source block once Admit has counted it.
func (h *handshakeLoad) admitted(qc *quic.Conn) {
	if l, ok := qc.Context().Value(handshakeLoadKey{}).(loadLeave); ok {
		l.block()
	}
}

// leave stops counting qc once the listener is done with it before Accept.
func (h *handshakeLoad) leave(qc *quic.Conn) {
	if l, ok := qc.Context().Value(handshakeLoadKey{}).(loadLeave); ok {
		l.all()
	}
}

// verifySource is quic-go's VerifySourceAddress, asked about each Initial
// packet without a valid token: Retry under load, and, when Precheck is set,
// for a source block that already has a connection in handshake.
func (h *handshakeLoad) verifySource(remote net.Addr) bool {
	retry := h.inFlight.Load() >= h.retryAbove
	if !retry && h.precheck != nil {
		if key, ok := quicSourceBlock(remote); ok {
			h.mu.Lock()
			retry = h.all[key] > 0
			h.mu.Unlock()
		}
	}
	if retry {
		h.retries.Add(1)
	}
	return retry
}

// quicSourceBlock is the unit Precheck's counts go by: the /32 of an IPv4
// address, the /64 of an IPv6 one. The server's per-source limits count by
// the same blocks (server.sourceBlock); the rule is repeated here because
// transport must not depend on server.
func quicSourceBlock(remote net.Addr) (netip.Prefix, bool) {
	ua, ok := remote.(*net.UDPAddr)
	if !ok {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(ua.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

type quicListener struct {
	ln           *quic.Listener
	ep           *udpEndpoint
	load         *handshakeLoad
	log          *slog.Logger
	streamWait   time.Duration
	closeTimeout time.Duration
	admit        func(net.Addr) (func(error), bool) // nil: keep all

	ctx    context.Context // cancelled by Close, ends waits for streams
	cancel context.CancelFunc
	done   chan struct{}   // closed by Close
	ready  chan handedOver // hands conns with a stream to Accept
	slots  chan struct{}   // one per pending connection, see maxPendingQUIC
	wg     sync.WaitGroup

	closeOnce sync.Once
}

func (l *quicListener) Addr() net.Addr { return l.ln.Addr() }

func (l *quicListener) closedErr() error {
	return &net.OpError{Op: "accept", Net: "quic", Addr: l.Addr(), Err: net.ErrClosed}
}

func (l *quicListener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, l.closedErr()
	default:
	}
	select {
	case h := <-l.ready:
		// Released here, not after the send, so that Admit's owner has
		// heard by the time Accept returns, as Options.Admit promises.
		h.release(nil)
		return h.c, nil
	case <-l.done:
		return nil, l.closedErr()
	}
}

func (l *quicListener) Close() error {
	first := false
	l.closeOnce.Do(func() {
		first = true
		close(l.done)
		l.cancel()
		l.ln.Close()
		l.wg.Wait()
		l.ep.release()
	})
	if !first {
		return &net.OpError{Op: "close", Net: "quic", Addr: l.Addr(), Err: net.ErrClosed}
	}
	return nil
}

// acceptLoop takes handshaken connections from quic-go and waits for each
// one's stream on its own goroutine, so that a client slow to open its stream
// does not hold up the others.
//
// When every pending place is taken it waits for one, and quic-go's own
// queue (32) holds the connections that finish their handshake meanwhile:
// their clients have usually written already, and get in as soon as a
// stream-less connection times out. Refusing them at once instead served
// fewer honest clients when many sources fill the places (5 of 40 rather
// than 26 of 40 on loopback), and one source alone cannot fill the queue:
// Precheck counts the connections in it against the source's share.
func (l *quicListener) acceptLoop() {
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			// quic-go still returns the connections it queued before
			// Close; refuse them until it reports the end.
			for {
				qc, err := l.ln.Accept(context.Background())
				if err != nil {
					return
				}
				l.load.leave(qc)
				qc.CloseWithError(quicProtoFail, "")
			}
		}
		qc, err := l.ln.Accept(context.Background())
		if err != nil {
			<-l.slots
			return
		}
		release := func(error) {}
		if l.admit != nil {
			rel, ok := l.admit(qc.RemoteAddr())
			if !ok {
				l.log.Debug("transport: quic: connection not admitted", "remote", qc.RemoteAddr().String())
				<-l.slots
				l.refuse(qc)
				continue
			}
			release = rel
		}
		// Admit counts it now; Precheck's count of connections in
		// handshake lets go of it.
		l.load.admitted(qc)
		l.ep.acquire()
		l.wg.Go(func() {
			defer func() { <-l.slots }()
			l.handOver(qc, release)
		})
	}
}

// refuse closes a connection acceptLoop will not keep, with error 0x1.
func (l *quicListener) refuse(qc *quic.Conn) {
	l.load.leave(qc)
	// CloseWithError waits for the connection's loop to end; acceptLoop
	// must get back to quic-go's queue at once.
	l.wg.Go(func() { qc.CloseWithError(quicProtoFail, "") })
}

// handedOver is a conn on its way to Accept with the release Admit gave
// for it.
type handedOver struct {
	c       *quicConn
	release func(dropped error)
}

// errListenerClosed is what release hears about a connection the listener
// dropped because it was closed.
var errListenerClosed = errors.New("transport: quic: listener closed")

func (l *quicListener) handOver(qc *quic.Conn, release func(error)) {
	defer l.load.leave(qc)
	c, err := l.awaitStream(qc)
	if err != nil {
		l.log.Debug("transport: quic: refusing connection", "remote", qc.RemoteAddr().String(), "err", err)
		qc.CloseWithError(quicProtoFail, "")
		l.ep.release()
		release(err)
		return
	}
	select {
	case l.ready <- handedOver{c, release}:
	case <-l.done:
		c.Abort()
		release(errListenerClosed)
	}
}

func (l *quicListener) awaitStream(qc *quic.Conn) (*quicConn, error) {
	if err := checkQUICState(qc); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.streamWait)
	defer cancel()
	st, err := qc.AcceptStream(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("transport: quic: no stream from client within %v", l.streamWait)
		}
		return nil, fmt.Errorf("transport: quic: no stream from client: %w", err)
	}
	return newQUICConn(qc, st, false, l.ep.release, l.closeTimeout), nil
}
