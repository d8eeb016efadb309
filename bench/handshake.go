package bench

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"securechat/credstore"
	"securechat/handshake"
	"securechat/transport"
)

// Login costs of RunHandshake's login rows.
const (
	LoginBench   = "bench"   // BenchParams
	LoginDefault = "default" // credstore.DefaultParams
	// LoginKey is a public-key login (PROTOCOL.md §10.2, method 0x02)
	// checked against an authorized keys file, as serve checks it.
	LoginKey = "key"
)

// HandshakeConfig configures RunHandshake.
type HandshakeConfig struct {
	Transport   transport.Transport // for securechat; nil means TCP (the TLS baseline is always TCP)
	Concurrency int                 // clients handshaking at once; 0 means 8
	Duration    time.Duration       // per row, all rounds together; 0 means 3 s
	Rounds      int                 // the rows take turns this many times; 0 means 3
	MaxCount    int                 // per row; 0 means 1,000,000
	Groups      []handshake.Group   // nil means all three
	Logins      []string            // login rows (LoginBench, LoginDefault, LoginKey); nil means all three
	Progress    func(line string)
}

// HandshakeRow is the rate of one kind of handshake.
type HandshakeRow struct {
	Name       string  `json:"name"`
	Count      int     `json:"count"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	MeanMS     float64 `json:"mean_ms"` // one handshake's time at this concurrency
	Baseline   string  `json:"baseline,omitempty"`
	Ratio      float64 `json:"ratio,omitempty"`
}

// HandshakeReport is the outcome of RunHandshake.
type HandshakeReport struct {
	Transport   string         `json:"transport"`
	Concurrency int            `json:"concurrency"`
	Rounds      int            `json:"rounds"`
	Rows        []HandshakeRow `json:"rows"`
}

// Row names.
const (
	RowTLSX25519 = "crypto/tls 1.3 full handshake, X25519"
	RowTLSHybrid = "crypto/tls 1.3 full handshake, X25519MLKEM768"
)

// RowHandshake names the securechat handshake with group g and an
// accept-all verifier; RowLogin the same with a real credstore.
func RowHandshake(g handshake.Group) string { return "securechat " + g.String() + ", no hashing" }
func RowLogin(g handshake.Group, cost string, p credstore.Params) string {
	return fmt.Sprintf("securechat %s + login, %s argon2id %s", g, cost, p)
}

// RowKeyLogin names the key login row: the same handshake, logged in by an
// Ed25519 key that the server finds in its authorized keys file.
func RowKeyLogin(g handshake.Group) string {
	return "securechat " + g.String() + " + key login, Ed25519"
}

// RunHandshake measures full handshakes per second at a fixed concurrency
// over loopback, the rows taking turns in cfg.Rounds rounds: crypto/tls
// 1.3 as the baseline (Ed25519 certificate
// verified against a root, no resumption, the server sends one byte of
// data so that the client knows it is done), then securechat per group
// with a verifier that accepts without hashing, then logins against a real
// credstore. Each client connection ends with an abort (TCP RST), on both
// kinds alike, so that closing and TIME_WAIT do not enter the figures.
func RunHandshake(ctx context.Context, cfg HandshakeConfig) (*HandshakeReport, error) {
	if cfg.Transport == nil {
		cfg.Transport = transport.TCP
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Concurrency > 4096 {
		return nil, fmt.Errorf("bench: concurrency %d; want at most 4096", cfg.Concurrency)
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 3 * time.Second
	}
	if cfg.Duration > MaxDuration {
		return nil, fmt.Errorf("bench: duration %s; want up to %s", cfg.Duration, MaxDuration)
	}
	if cfg.MaxCount <= 0 {
		cfg.MaxCount = 1_000_000
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	if cfg.Rounds > 100 {
		return nil, fmt.Errorf("bench: %d rounds; want at most 100", cfg.Rounds)
	}
	if cfg.Groups == nil {
		cfg.Groups = []handshake.Group{handshake.GroupX25519, handshake.GroupMLKEM768X25519, handshake.GroupFFDHE3072}
	}
	if cfg.Logins == nil {
		cfg.Logins = []string{LoginBench, LoginDefault, LoginKey}
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	rep := &HandshakeReport{Transport: cfg.Transport.Name(), Concurrency: cfg.Concurrency, Rounds: cfg.Rounds}

	// Every row's server runs for the whole measurement, so that the rows
	// can take turns: background load then falls on baseline and
	// securechat alike.
	type row struct {
		name, baseline string
		op             func(context.Context) error
	}
	var rows []row
	var cleanups []func()
	defer func() {
		for _, f := range cleanups {
			f()
		}
	}()
	tlsSrv, err := startTLSSink(ctx)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, tlsSrv.close)
	_, hostKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, g := range cfg.Groups {
		baseline := ""
		switch g {
		case handshake.GroupX25519:
			baseline = RowTLSX25519
			rows = append(rows, row{RowTLSX25519, "", tlsSrv.dial(tls.X25519)})
		case handshake.GroupMLKEM768X25519:
			baseline = RowTLSHybrid
			rows = append(rows, row{RowTLSHybrid, "", tlsSrv.dial(tls.X25519MLKEM768)})
		}
		sink, err := startHandshakeSink(ctx, cfg.Transport, hostKey, g, acceptAll{})
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, sink.close)
		rows = append(rows, row{RowHandshake(g), baseline, sink.dial(g, "bench", []byte("bench-password"))})
	}
	keyRow := false
	for _, cost := range cfg.Logins {
		p := BenchParams
		switch cost {
		case LoginBench:
		case LoginDefault:
			p = credstore.DefaultParams
		case LoginKey:
			keyRow = true
			continue
		default:
			return nil, fmt.Errorf("bench: login kind %q; want %s, %s or %s", cost, LoginBench, LoginDefault, LoginKey)
		}
		progress("handshake: provisioning " + cost + " accounts")
		store, cleanup, err := loginStore(p)
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, cleanup)
		g := handshake.GroupX25519
		sink, err := startHandshakeSink(ctx, cfg.Transport, hostKey, g, store)
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, sink.close)
		rows = append(rows, row{RowLogin(g, cost, p), RowHandshake(g), sink.dial(g, "bench0", []byte(loginPassword))})
	}
	if keyRow {
		// Compared with the default-cost password login when that row
		// runs too (the key login's target is a multiple of it).
		g := handshake.GroupX25519
		baseline := RowHandshake(g)
		if slices.Contains(cfg.Logins, LoginDefault) {
			baseline = RowLogin(g, LoginDefault, credstore.DefaultParams)
		}
		progress("handshake: provisioning a key account")
		v, key, cleanup, err := keyLoginVerifier()
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, cleanup)
		sink, err := startHandshakeSink(ctx, cfg.Transport, hostKey, g, v)
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, sink.close)
		rows = append(rows, row{RowKeyLogin(g), baseline, sink.dialKey(g, "bench0", key)})
	}

	sums := make([]HandshakeRow, len(rows))
	total := make([]time.Duration, len(rows)) // time in successful ops, per row
	slice := cfg.Duration / time.Duration(cfg.Rounds)
	for round := 1; round <= cfg.Rounds && ctx.Err() == nil; round++ {
		for i, r := range rows {
			progress(fmt.Sprintf("handshake: round %d/%d: %s", round, cfg.Rounds, r.name))
			m := hammer(ctx, cfg.Concurrency, slice, max(1, (cfg.MaxCount-sums[i].Count)/(cfg.Rounds-round+1)), r.op)
			s := &sums[i]
			s.Count += m.Count
			s.Errors += m.Errors
			if s.FirstError == "" {
				s.FirstError = m.FirstError
			}
			s.Seconds += m.Seconds
			total[i] += time.Duration(m.MeanMS * float64(m.Count) * float64(time.Millisecond))
		}
	}
	for i, r := range rows {
		s := sums[i]
		s.Name, s.Baseline = r.name, r.baseline
		if s.Seconds > 0 {
			s.PerSecond = float64(s.Count) / s.Seconds
		}
		if s.Count > 0 {
			s.MeanMS = float64(total[i]) / float64(s.Count) / 1e6
		}
		for _, b := range rep.Rows {
			if b.Name == s.Baseline && b.PerSecond > 0 {
				s.Ratio = s.PerSecond / b.PerSecond
			}
		}
		rep.Rows = append(rep.Rows, s)
	}
	progress("")
	return rep, ctx.Err()
}

// hammer runs op from conc goroutines until d has passed or count ops have
// been started.
func hammer(ctx context.Context, conc int, d time.Duration, count int, op func(context.Context) error) HandshakeRow {
	var started, done, failed atomic.Int64
	var total atomic.Int64 // nanoseconds spent in successful ops
	var once sync.Once
	var first string
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) && started.Add(1) <= int64(count) {
				octx, cancel := context.WithTimeout(ctx, 30*time.Second)
				t0 := time.Now()
				err := op(octx)
				cancel()
				if err != nil {
					failed.Add(1)
					once.Do(func() { first = err.Error() })
					continue
				}
				total.Add(int64(time.Since(t0)))
				done.Add(1)
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	r := HandshakeRow{Count: int(done.Load()), Errors: int(failed.Load()), FirstError: first, Seconds: el.Seconds()}
	if el > 0 {
		r.PerSecond = float64(r.Count) / el.Seconds()
	}
	if r.Count > 0 {
		r.MeanMS = float64(total.Load()) / float64(r.Count) / 1e6
	}
	return r
}

// abortConn ends a client connection at once (TCP RST, QUIC
// CONNECTION_CLOSE) so that no TIME_WAIT is left behind.
func abortConn(c net.Conn) {
	if a, ok := c.(transport.Aborter); ok {
		a.Abort()
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// sink accepts connections and serves each with serve until closed.
type sink struct {
	ln     net.Listener
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

func newSink(ctx context.Context, ln net.Listener, serve func(context.Context, net.Conn)) *sink {
	ctx, cancel := context.WithCancel(ctx)
	s := &sink{ln: ln, cancel: cancel}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { serve(ctx, c) })
		}
	})
	return s
}

func (s *sink) close() {
	s.cancel()
	s.ln.Close()
	s.wg.Wait()
}

// waitPeerGone holds c until the client has dropped it, so the server
// never closes first (that could reset the last bytes it sent).
func waitPeerGone(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, c)
	c.Close()
}

type handshakeSink struct {
	*sink
	tr      transport.Transport
	hostKey ed25519.PublicKey
}

func startHandshakeSink(ctx context.Context, tr transport.Transport, key ed25519.PrivateKey, g handshake.Group, v handshake.Verifier) (*handshakeSink, error) {
	ln, err := tr.Listen(ctx, "127.0.0.1:0", nil)
	if err != nil {
		return nil, err
	}
	scfg := &handshake.ServerConfig{HostKey: key, Groups: []handshake.Group{g}, Verifier: v, Transport: tr.Name()}
	s := newSink(ctx, ln, func(ctx context.Context, c net.Conn) {
		sess, err := handshake.Server(ctx, c, scfg)
		if err != nil {
			return
		}
		waitPeerGone(sess.NetConn())
	})
	return &handshakeSink{sink: s, tr: tr, hostKey: key.Public().(ed25519.PublicKey)}, nil
}

func (s *handshakeSink) dial(g handshake.Group, user string, password []byte) func(context.Context) error {
	ccfg := &handshake.ClientConfig{
		Groups: []handshake.Group{g}, Transport: s.tr.Name(), HostKeyCallback: handshake.FixedHostKey(s.hostKey),
		User: user, Password: func(int) ([]byte, error) { return append([]byte{}, password...), nil },
		MaxAuthTries: 1,
	}
	addr := s.ln.Addr().String()
	return func(ctx context.Context) error {
		c, err := s.tr.Dial(ctx, addr, nil)
		if err != nil {
			return err
		}
		sess, err := handshake.Client(ctx, c, ccfg)
		if err != nil {
			return err
		}
		if sess.Group != g {
			abortConn(sess.NetConn())
			return fmt.Errorf("negotiated %s, want %s", sess.Group, g)
		}
		abortConn(sess.NetConn())
		return nil
	}
}

// dialKey is dial for a key login: no password at all.
func (s *handshakeSink) dialKey(g handshake.Group, user string, key ed25519.PrivateKey) func(context.Context) error {
	ccfg := &handshake.ClientConfig{
		Groups: []handshake.Group{g}, Transport: s.tr.Name(), HostKeyCallback: handshake.FixedHostKey(s.hostKey),
		User: user, Keys: []crypto.Signer{key}, MaxAuthTries: 1,
	}
	addr := s.ln.Addr().String()
	return func(ctx context.Context) error {
		c, err := s.tr.Dial(ctx, addr, nil)
		if err != nil {
			return err
		}
		sess, err := handshake.Client(ctx, c, ccfg)
		if err != nil {
			return err
		}
		abortConn(sess.NetConn())
		return nil
	}
}

type tlsSink struct {
	*sink
	roots *x509.CertPool
}

func startTLSSink(ctx context.Context) (*tlsSink, error) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "securechat.bench"},
		DNSNames:              []string{"securechat.bench"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("bench: tls certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("bench: tls certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	scfg := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		CurvePreferences:       []tls.CurveID{tls.X25519MLKEM768, tls.X25519},
		SessionTicketsDisabled: true,
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := newSink(ctx, ln, func(ctx context.Context, c net.Conn) {
		tc := tls.Server(c, scfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return
		}
		if _, err := tc.Write([]byte{1}); err != nil {
			c.Close()
			return
		}
		waitPeerGone(c)
	})
	return &tlsSink{sink: s, roots: roots}, nil
}

func (s *tlsSink) dial(curve tls.CurveID) func(context.Context) error {
	ccfg := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		RootCAs:                s.roots,
		ServerName:             "securechat.bench",
		CurvePreferences:       []tls.CurveID{curve},
		SessionTicketsDisabled: true,
	}
	addr := s.ln.Addr().String()
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer abortConn(c)
		tc := tls.Client(c, ccfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		if dl, ok := ctx.Deadline(); ok {
			tc.SetReadDeadline(dl)
		}
		var b [1]byte
		if _, err := io.ReadFull(tc, b[:]); err != nil {
			return err
		}
		if got := tc.ConnectionState().CurveID; got != curve {
			return fmt.Errorf("negotiated %v, want %v", got, curve)
		}
		return nil
	}
}

// keyVerifier checks passwords with a creds store and keys with an
// authorized keys file, as serve does.
type keyVerifier struct {
	*credstore.Store
	keys *credstore.KeyStore
}

func (v keyVerifier) VerifyPublicKey(ctx context.Context, user string, key ed25519.PublicKey) error {
	return v.keys.VerifyPublicKey(ctx, user, key)
}

// keyLoginVerifier provisions one account (bench0, cheap password) with a
// fresh Ed25519 key in an authorized keys file beside its creds file, and
// loads both as the server would.
func keyLoginVerifier() (handshake.Verifier, ed25519.PrivateKey, func(), error) {
	store, cleanup, err := loginStore(BenchParams)
	if err != nil {
		return nil, nil, nil, err
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	dir, err := os.MkdirTemp("", "securechat-bench-keys-")
	if err != nil {
		cleanup()
		return nil, nil, nil, fmt.Errorf("bench: %w", err)
	}
	all := func() { cleanup(); os.RemoveAll(dir) }
	path := filepath.Join(dir, "creds.keys")
	err = credstore.EditKeys(path, func(f *credstore.KeysFile) error {
		return f.Add(credstore.AuthorizedKey{User: "bench0", Key: pub, Comment: "bench"})
	})
	if err != nil {
		all()
		return nil, nil, nil, err
	}
	keys, err := credstore.LoadKeys(path)
	if err != nil {
		all()
		return nil, nil, nil, err
	}
	return keyVerifier{store, keys}, key, all, nil
}

// loginPassword is the password of the login rows' accounts.
const loginPassword = "bench-login-password"

// loginStore provisions a few accounts at p in a temporary creds file and
// loads it as the server would, without upgrades at login (the upgrade
// would rewrite the file on every first login and skew the rate).
func loginStore(p credstore.Params) (*credstore.Store, func(), error) {
	dir, err := os.MkdirTemp("", "securechat-bench-")
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	path := filepath.Join(dir, "creds.txt")
	if err := Provision(path, "bench", 1, []byte(loginPassword), p); err != nil {
		cleanup()
		return nil, nil, err
	}
	store, err := credstore.Load(path, &credstore.Options{Params: p, NoRehash: true})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return store, cleanup, nil
}
