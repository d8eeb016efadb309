package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"securechat/chat"
	"securechat/cipher"
	"securechat/handshake"
	"securechat/transport"
)

// Target is a chat server to load and the benchmark accounts on it.
type Target struct {
	Transport transport.Transport
	Addr      string
	// Addrs, when set, are the nodes of one server (Addr is the first):
	// client i dials node i mod len(Addrs), so that the clients of a run
	// are spread over them.
	Addrs       []string
	Fingerprint string // the server's host key, "SHA256:..."; anything else is refused
	Prefix      string // accounts are Prefix0 … Prefix(Accounts-1)
	Accounts    int
	Password    []byte            // shared by every account
	Groups      []handshake.Group // offered; nil means the client default
	PID         int               // the server process on this host, for its RSS; 0 if unknown
	InProcess   bool              // the server runs in this process (its RSS includes the clients)
	// Source, if set, gives the local IP address client i dials from, so
	// that clients appear as many sources (see transport.Options.LocalAddr).
	Source func(i int) string
	// Keys are the login keys of the first len(Keys) accounts: those log
	// in by key, not password, and their sessions can sign messages.
	Keys []ed25519.PrivateKey
}

// key returns the login key of client i, or nil for a password login.
func (t *Target) key(i int) ed25519.PrivateKey {
	if a := i % t.Accounts; a < len(t.Keys) {
		return t.Keys[a]
	}
	return nil
}

func (t *Target) check() error {
	switch {
	case t == nil:
		return errors.New("bench: no target")
	case t.Transport == nil:
		return errors.New("bench: no transport")
	case t.Addr == "":
		return errors.New("bench: no server address")
	case t.Fingerprint == "":
		return errors.New("bench: no host key fingerprint for the server")
	case t.Accounts < 1:
		return errors.New("bench: no accounts")
	case len(t.Password) == 0:
		return errors.New("bench: no password")
	}
	return nil
}

// Dial connects as client i (account i modulo Accounts) and logs in.
func (t *Target) Dial(ctx context.Context, i int) (*handshake.Session, error) {
	var opts *transport.Options
	if t.Source != nil {
		opts = &transport.Options{LocalAddr: t.Source(i)}
	}
	addr := t.Addr
	if len(t.Addrs) > 0 {
		addr = t.Addrs[i%len(t.Addrs)]
	}
	c, err := t.Transport.Dial(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	ccfg := &handshake.ClientConfig{
		Groups:    t.Groups,
		Transport: t.Transport.Name(),
		HostKeyCallback: func(key ed25519.PublicKey) error {
			if fp := handshake.Fingerprint(key); fp != t.Fingerprint {
				return fmt.Errorf("bench: host key %s is not the expected %s", fp, t.Fingerprint)
			}
			return nil
		},
		User: AccountName(t.Prefix, i%t.Accounts),
		// The handshake clears what it is given.
		Password:     func(int) ([]byte, error) { return bytes.Clone(t.Password), nil },
		MaxAuthTries: 1,
	}
	if key := t.key(i); key != nil {
		ccfg.Keys, ccfg.Password = []crypto.Signer{key}, nil
	}
	return handshake.Client(ctx, bufferReads(c), ccfg)
}

// clientReadBuffer is the read buffer of each load-generating client.
const clientReadBuffer = 4096

// bufferReads gives a client connection a read buffer. The record layer
// reads a record's header and then its body, two system calls per record;
// through the buffer a burst of chat events costs one. The load generator
// shares the machine with the server it measures, so it must cost as
// little as it can.
func bufferReads(c net.Conn) net.Conn {
	bc := &bufConn{Conn: c, r: bufio.NewReaderSize(c, clientReadBuffer)}
	if _, ok := c.(transport.ChannelBinder); ok {
		return bindingBufConn{bc}
	}
	return bc
}

// bufConn is a net.Conn whose reads go through a bufio.Reader. It keeps
// the optional transport interfaces the record layer and the handshake
// look for.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufConn) Abort() error {
	if a, ok := c.Conn.(transport.Aborter); ok {
		return a.Abort()
	}
	return c.Conn.Close()
}

func (c *bufConn) CloseWrite() error {
	if cw, ok := c.Conn.(transport.CloseWriter); ok {
		return cw.CloseWrite()
	}
	return errors.New("bench: transport cannot half close")
}

type bindingBufConn struct{ *bufConn }

func (c bindingBufConn) ChannelBinding() ([]byte, error) {
	return c.Conn.(transport.ChannelBinder).ChannelBinding()
}

// CheckLoopback refuses a server address that is not on this host unless
// allowRemote is set: a load test aimed at someone else's server by a typo
// is a denial of service. Host names must resolve to loopback addresses
// only.
func CheckLoopback(ctx context.Context, addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bench: %q is not HOST:PORT", addr)
	}
	if allowRemote {
		return nil
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if host == "" {
		return fmt.Errorf("bench: %q has no host; name a loopback address such as 127.0.0.1", addr)
	} else {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return fmt.Errorf("bench: resolve %s: %w", host, err)
		}
		addrs = ips
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return fmt.Errorf("bench: %s is not a loopback address; load tests stay on this host unless --allow-remote is given", a)
		}
	}
	return nil
}

// chatClient is one logged-in chat session of a run.
type chatClient struct {
	idx  int
	sess *handshake.Session
	// event holds a copy of the payload being handled: closeAll may call
	// Close, which reads the rest of the stream into the record layer's
	// buffer, while handle still looks at the last payload. The copy itself
	// is made under closeMu, and closeAll marks the client closing under
	// it before Close, so that Close never overwrites a payload mid-copy.
	event   []byte
	closeMu sync.Mutex
	closing bool
}

// connectChat dials, logs in and says hello, and returns once the welcome
// has arrived.
func connectChat(ctx context.Context, t *Target, idx int) (*chatClient, error) {
	sess, err := t.Dial(ctx, idx)
	if err != nil {
		return nil, err
	}
	c := &chatClient{idx: idx, sess: sess}
	if err := c.hello(ctx); err != nil {
		c.abort()
		return nil, err
	}
	return c, nil
}

func (c *chatClient) send(r *chat.Request) error {
	p, err := chat.EncodeRequest(r)
	if err != nil {
		return err
	}
	return c.sess.WriteMessage(p)
}

func (c *chatClient) hello(ctx context.Context) error {
	if err := c.send(&chat.Request{Type: chat.TypeHello, V: chat.Version, ID: "hello", Client: "securechat-bench"}); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.sess.SetReadDeadline(dl)
		defer c.sess.SetReadDeadline(time.Time{})
	}
	for {
		t, p, err := c.sess.ReadRecord()
		if err != nil {
			return err
		}
		if t != cipher.TypeApp {
			continue
		}
		switch {
		case bytes.HasPrefix(p, []byte(`{"t":"welcome"`)):
			return nil
		case bytes.HasPrefix(p, []byte(`{"t":"error"`)):
			ev, err := chat.DecodeEvent(p)
			if err != nil {
				return err
			}
			return fmt.Errorf("bench: hello refused: %s: %s", ev.Code, ev.Text)
		}
	}
}

// receive reads events until the session ends, answers the server's pings
// and hands every other APP payload to handle (valid until it returns; a
// copy in c.event, reused, so the receive path stays allocation-free).
func (c *chatClient) receive(handle func(kind string, p []byte)) error {
	for {
		t, p, err := c.sess.ReadRecord()
		if err != nil {
			return err
		}
		if t != cipher.TypeApp {
			continue
		}
		c.closeMu.Lock()
		if c.closing {
			c.closeMu.Unlock()
			return errClientClosing
		}
		c.event = append(c.event[:0], p...)
		c.closeMu.Unlock()
		kind := eventKind(c.event)
		if kind == chat.TypePing {
			ev, err := chat.DecodeEvent(c.event)
			if err != nil {
				return err
			}
			if err := c.send(&chat.Request{Type: chat.TypePong, ID: ev.ID}); err != nil {
				return err
			}
			continue
		}
		handle(kind, c.event)
	}
}

// abort drops the connection without the CLOSE exchange.
func (c *chatClient) abort() {
	if a, ok := c.sess.NetConn().(transport.Aborter); ok {
		a.Abort()
		return
	}
	c.sess.NetConn().Close()
}

// eventKind classifies a server event by its leading bytes, so that the
// receive loop decodes JSON only for the few events it needs. The server's
// encoder always writes "t" first. Only the kinds the load generator acts
// on are told apart, without allocating.
func eventKind(p []byte) string {
	rest, ok := bytes.CutPrefix(p, []byte(`{"t":"`))
	if !ok {
		return ""
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return ""
	}
	switch string(rest[:end]) {
	case chat.TypeMsg:
		return chat.TypeMsg
	case chat.TypePing:
		return chat.TypePing
	case chat.TypeAck:
		return chat.TypeAck
	case chat.TypeError:
		return chat.TypeError
	case chat.TypeWelcome:
		return chat.TypeWelcome
	}
	return "other"
}

// connectAll connects n clients, at most conc at a time, starting each
// one's receive loop as soon as it is welcomed (so that the join events of
// those still connecting are read). It stops early if ctx ends. Failures
// are counted, the first few kept.
type connectResult struct {
	clients  []*chatClient // nil where the connection failed
	ok       int
	failed   int
	errors   []string
	duration time.Duration
}

func connectAll(ctx context.Context, t *Target, n, conc int, timeout time.Duration,
	started func(*chatClient), progress func(done int)) *connectResult {
	res := &connectResult{clients: make([]*chatClient, n)}
	var mu sync.Mutex
	var next, done atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, timeout)
				c, err := connectChat(cctx, t, i)
				cancel()
				mu.Lock()
				if err != nil {
					res.failed++
					if len(res.errors) < 5 {
						res.errors = append(res.errors, fmt.Sprintf("client %d: %v", i, err))
					}
				} else {
					res.ok++
					res.clients[i] = c
				}
				mu.Unlock()
				if c != nil {
					started(c)
				}
				if progress != nil {
					progress(int(done.Add(1)))
				}
			}
		})
	}
	wg.Wait()
	res.duration = time.Since(start)
	return res
}

// errClientClosing ends a receive loop whose client closeAll is closing.
var errClientClosing = errors.New("bench: client closing")

// closeAll ends every session with the CLOSE exchange, conc at a time.
func closeAll(clients []*chatClient, conc int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conc, len(clients)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(clients) {
					return
				}
				if c := clients[i]; c != nil {
					c.closeMu.Lock()
					c.closing = true
					c.closeMu.Unlock()
					c.sess.Close()
				}
			}
		})
	}
	wg.Wait()
}

// errorText shortens an error list for a report.
func errorText(errs []string) string { return strings.Join(errs, "; ") }
