package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configure the link to the NATS cluster. The zero value connects
// without credentials and without TLS, which [Connect] accepts only when
// every server is on a loopback address.
type Options struct {
	// Name identifies this node to the NATS servers (their connection list
	// and logs) and in presence. Empty: the host name.
	Name string

	// CredsFile is a NATS credentials file (a user JWT and its NKey seed).
	// NKeySeedFile is a bare NKey seed file. Give at most one. Either file
	// must not be readable by group or others.
	CredsFile    string
	NKeySeedFile string

	// CAFile holds the certificates that verify the NATS servers. Setting it
	// turns TLS on for every server URL. CertFile and KeyFile are this
	// node's client certificate, for servers that verify clients.
	CAFile   string
	CertFile string
	KeyFile  string

	// Insecure allows a link without TLS or without credentials to servers
	// that are not on loopback. Off, such a link is refused: messages and
	// presence would cross the network in the clear.
	Insecure bool

	// Logger receives disconnects, reconnects and asynchronous errors.
	// Nil: discard.
	Logger *slog.Logger

	// Timeout bounds the first connection, and the set-up and reads that
	// are given a context without a deadline (stream, bucket, follower,
	// LastSeq, Banned): 5 seconds by default. Publish has its own,
	// [PublishPatience].
	Timeout time.Duration
}

// ErrInsecureLink refuses a plaintext or unauthenticated link to a server
// off loopback; [Options.Insecure] overrides it.
var ErrInsecureLink = errors.New("cluster: refusing an insecure NATS link")

// Conn is a connection to the NATS cluster and its JetStream. It is safe for
// concurrent use. It reconnects by itself, to any server in the list, for as
// long as it is open; operations made while it is away wait (up to their
// context or [Options.Timeout]) rather than fail at once.
type Conn struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	name    string
	log     *slog.Logger
	timeout time.Duration

	// reconnects counts reconnects, so that followers can tell that
	// messages in flight may have been lost.
	reconnects atomic.Uint64
}

// Connect joins the NATS cluster at urls, a comma-separated list such as
// "tls://a:4222,tls://b:4222" (a bare "host:port" means nats://host:port).
//
// The link must be private: each server off loopback needs TLS (a tls://
// URL or [Options.CAFile]) and credentials ([Options.CredsFile],
// [Options.NKeySeedFile] or a user in the URL), or Connect returns an error
// wrapping [ErrInsecureLink]. Servers that the cluster announces but the
// list does not name are used only over TLS, so gossip cannot lead a
// plaintext link off the machine.
func Connect(urls string, opts *Options) (*Conn, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Name == "" {
		o.Name, _ = os.Hostname()
	}
	servers, useTLS, err := checkLink(urls, &o)
	if err != nil {
		return nil, err
	}

	c := &Conn{name: o.Name, log: o.Logger, timeout: o.Timeout}
	list := make([]string, len(servers))
	for i, u := range servers {
		list[i] = u.String()
	}
	nopts := []nats.Option{
		nats.Name(o.Name),
		nats.Timeout(o.Timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		// Publishes made while reconnecting wait in this buffer and go out
		// after; JetStream acks them only once stored, so nothing is lost,
		// and Publish retries with the same message id past a timeout.
		nats.ReconnectBufSize(8 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.log.Warn("cluster: disconnected from NATS", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.reconnects.Add(1)
			c.log.Info("cluster: reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.log.Warn("cluster: NATS error", "err", err)
		}),
	}
	if !useTLS {
		nopts = append(nopts, nats.IgnoreDiscoveredServers())
	}
	if useTLS {
		cfg, err := tlsConfig(&o)
		if err != nil {
			return nil, err
		}
		nopts = append(nopts, nats.Secure(cfg))
	}
	switch {
	case o.CredsFile != "":
		if err := checkPrivate(o.CredsFile); err != nil {
			return nil, err
		}
		nopts = append(nopts, nats.UserCredentials(o.CredsFile))
	case o.NKeySeedFile != "":
		if err := checkPrivate(o.NKeySeedFile); err != nil {
			return nil, err
		}
		opt, err := nats.NkeyOptionFromSeed(o.NKeySeedFile)
		if err != nil {
			// The library's error may quote the file; keep to its name.
			return nil, fmt.Errorf("cluster: NKey seed file %s: not a valid seed", o.NKeySeedFile)
		}
		nopts = append(nopts, opt)
	}
	nc, err := nats.Connect(strings.Join(list, ","), nopts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to %s: %w", redacted(servers), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c.nc, c.js = nc, js
	return c, nil
}

// CheckLink makes every check [Connect] makes of urls and opts, reading
// the TLS and credential files, without connecting: a configuration check
// can report a link Connect would refuse.
func CheckLink(urls string, opts *Options) error {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	_, useTLS, err := checkLink(urls, &o)
	if err != nil {
		return err
	}
	if useTLS {
		if _, err := tlsConfig(&o); err != nil {
			return err
		}
	}
	switch {
	case o.CredsFile != "":
		if err := checkPrivate(o.CredsFile); err != nil {
			return err
		}
		if _, err := os.ReadFile(o.CredsFile); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	case o.NKeySeedFile != "":
		if err := checkPrivate(o.NKeySeedFile); err != nil {
			return err
		}
		if _, err := nats.NkeyOptionFromSeed(o.NKeySeedFile); err != nil {
			return fmt.Errorf("cluster: NKey seed file %s: not a valid seed", o.NKeySeedFile)
		}
	}
	return nil
}

// checkLink parses urls and refuses what Connect must not do: a plaintext
// or unauthenticated link off loopback, unless o.Insecure. useTLS says
// the link will use TLS.
func checkLink(urls string, o *Options) (servers []*url.URL, useTLS bool, err error) {
	servers, err = parseURLs(urls)
	if err != nil {
		return nil, false, err
	}
	if o.CredsFile != "" && o.NKeySeedFile != "" {
		return nil, false, errors.New("cluster: give a creds file or an NKey seed file, not both")
	}
	useTLS = o.CAFile != ""
	for _, u := range servers {
		if u.Scheme == "tls" {
			useTLS = true
		}
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, false, errors.New("cluster: a client certificate needs both its cert and key file")
	}
	if o.CertFile != "" && !useTLS {
		return nil, false, errors.New("cluster: a client certificate needs TLS: give the CA file too")
	}
	hasCreds := o.CredsFile != "" || o.NKeySeedFile != ""
	for _, u := range servers {
		if o.Insecure || isLoopback(u.Hostname()) {
			continue
		}
		if !useTLS {
			return nil, false, fmt.Errorf("%w: %s is not on loopback and the link has no TLS (give a CA file, or allow it with the insecure option)", ErrInsecureLink, u.Host)
		}
		if !hasCreds && u.User == nil {
			return nil, false, fmt.Errorf("%w: %s is not on loopback and the link has no credentials (give a creds or NKey seed file, or allow it with the insecure option)", ErrInsecureLink, u.Host)
		}
	}
	return servers, useTLS, nil
}

// Close drains and closes the connection: subscriptions stop, and
// publishes already sent are flushed. Followers, watchers and presence made
// from c stop with it.
func (c *Conn) Close() {
	if err := c.nc.Drain(); err != nil {
		c.nc.Close()
		return
	}
	deadline := time.Now().Add(c.timeout)
	for !c.nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c.nc.Close()
}

// Name is the node name given in [Options.Name].
func (c *Conn) Name() string { return c.name }

// Connected reports whether the link is up now. While it is down,
// publishes and state writes wait and may fail when their time runs out.
func (c *Conn) Connected() bool { return c.nc.IsConnected() }

// Reconnects counts the times the link came back after it was lost.
func (c *Conn) Reconnects() uint64 { return c.reconnects.Load() }

// NATS is the underlying connection, for metrics and tests.
func (c *Conn) NATS() *nats.Conn { return c.nc }

func parseURLs(urls string) ([]*url.URL, error) {
	var out []*url.URL
	for s := range strings.SplitSeq(urls, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("cluster: bad NATS server address %q: want nats://HOST:PORT or tls://HOST:PORT", stripUser(s))
		}
		if u.Scheme != "nats" && u.Scheme != "tls" {
			return nil, fmt.Errorf("cluster: bad NATS server address %q: scheme must be nats or tls", stripUser(s))
		}
		if u.Port() == "" {
			u.Host = net.JoinHostPort(u.Hostname(), "4222")
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, errors.New("cluster: no NATS server address given")
	}
	return out, nil
}

// stripUser keeps a password in a URL out of error text.
func stripUser(s string) string {
	if i := strings.Index(s, "@"); i >= 0 {
		if j := strings.Index(s, "://"); j >= 0 && j < i {
			return s[:j+3] + "…@" + s[i+1:]
		}
	}
	return s
}

func redacted(us []*url.URL) string {
	parts := make([]string, len(us))
	for i, u := range us {
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}

// isLoopback reports whether host is a loopback address or "localhost": the
// one place a link without TLS or credentials cannot be overheard.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func tlsConfig(o *Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster: CA file %s: no PEM certificate in it", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" {
		if err := checkPrivate(o.KeyFile); err != nil {
			return nil, err
		}
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// checkPrivate refuses a secret file that others may read: the NATS
// credentials let anyone post as this node.
func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("cluster: %s is readable by group or others; chmod 600 it", path)
	}
	return nil
}
