package serve

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"securechat/credstore"
	"securechat/handshake"
	"securechat/internal/cmderr"
	"securechat/metrics"
	"securechat/server"
	"securechat/transport"
)

// setup is everything serve reads and validates before it listens.
// serve --check builds it and stops, so the two cannot disagree about what
// a valid configuration is.
type setup struct {
	log       *slog.Logger
	tr        transport.Transport
	groups    []handshake.Group
	gate      *server.StartupGate
	exempt    *server.PrefixList
	credsFile string
	store     *credstore.Store
	keys      *credstore.KeyStore // the authorized keys file
	keysOnly  bool                // --auth publickey
	stateDir  string
	// hostKey is nil under --check when there is no key yet: serve
	// creates one at its first start.
	hostKey        ed25519.PrivateKey
	hostKeyFile    string
	hostKeyCreated bool
	motd           string
}

// load parses the settings and loads the accounts, the host key and
// the message of the day, returning the first problem. With check it
// changes nothing on disk: no state directory or host key is created.
//
// Checks of new state (a database, say) belong here, after the host key,
// so that --check covers them too.
func load(cfg Config, check bool) (*setup, error) {
	s := &setup{gate: &server.StartupGate{}}
	var err error
	if s.log, err = NewLogger(cfg.Stderr, cfg.LogFormat, cfg.LogLevel); err != nil {
		return nil, err
	}
	if s.tr, err = transport.Lookup(cfg.Transport); err != nil {
		return nil, cmderr.Usagef("--transport %q: want one of %s", cfg.Transport, strings.Join(transport.Names(), ", "))
	}
	if err := checkListenAddr(s.tr.Name(), cfg.Listen); err != nil {
		return nil, err
	}
	if f := cfg.MetricsListen; f != "" {
		if _, err := metrics.ListenAddr(f); err != nil {
			return nil, cmderr.Usagef("--metrics-listen: %v", err)
		}
	}
	if s.groups, err = handshake.ParseGroups(cfg.Kex); err != nil {
		return nil, cmderr.Usagef("--kex: %v", err)
	}
	if s.gate.Start, s.gate.Rate, s.gate.Full, err = parseMaxStartups(cfg.MaxStartups); err != nil {
		return nil, err
	}
	if s.exempt, err = server.ParsePrefixList(cfg.PenaltyExempt); err != nil {
		return nil, cmderr.Usagef("--penalty-exempt: %v", err)
	}
	if err := cfg.checkNotNegative(); err != nil {
		return nil, err
	}
	s.gate.PerSource = cfg.PerSourceMax
	s.gate.Exempt = s.exempt

	s.credsFile = cfg.CredsFile
	s.store, err = credstore.Load(s.credsFile, &credstore.Options{Logger: s.log, NoRehash: cfg.NoRehash})
	if err != nil {
		var me *credstore.ModeError
		if errors.As(err, &me) {
			return nil, cmderr.WithHint(err, "the creds file holds password hashes; only its owner may read it")
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, cmderr.WithHint(err, cfg.CredsHint)
		}
		return nil, err
	}
	switch cfg.Auth {
	case "any":
	case "publickey":
		s.keysOnly = true
	default:
		return nil, cmderr.Usagef("--auth %q: want any or publickey", cfg.Auth)
	}
	if s.keys, err = credstore.LoadKeys(cfg.KeysFile); err != nil {
		var me *credstore.KeysModeError
		if errors.As(err, &me) {
			return nil, cmderr.WithHint(err, "whoever may write the keys file may log in as anyone")
		}
		return nil, err
	}

	s.stateDir = cfg.StateDir
	s.hostKeyFile = filepath.Join(s.stateDir, handshake.HostKeyFile)
	if check {
		err = s.checkHostKey()
	} else {
		err = s.loadHostKey()
	}
	if err != nil {
		return nil, err
	}

	if f := cfg.MOTD; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("motd: %w", err)
		}
		s.motd = string(b)
	}
	return s, nil
}

// loadHostKey makes the state directory and the host key when missing.
func (s *setup) loadHostKey() error {
	if err := os.MkdirAll(s.stateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	var err error
	s.hostKey, s.hostKeyCreated, err = handshake.LoadOrCreateHostKey(s.hostKeyFile)
	return err
}

// checkHostKey reads the host key without creating it. A missing key is
// fine (serve makes one) as long as the state directory could hold it.
func (s *setup) checkHostKey() error {
	key, err := handshake.LoadHostKey(s.hostKeyFile)
	if err == nil {
		s.hostKey = key
		// A rotation's next key, if any, must load too: serve refuses
		// to start on a broken one.
		_, err = handshake.LoadNextHostKey(s.hostKeyFile, key)
		return err
	}
	if !missing(err) {
		return err
	}
	// Walk up to the nearest directory that exists: serve creates the
	// rest.
	for dir := s.stateDir; ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if missing(err) && filepath.Dir(dir) != dir {
			continue
		}
		if err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("state directory: %s is not a directory", dir)
		}
		return nil
	}
}

// missing reports an error from a path that does not exist, including
// one whose parent is a file (ENOTDIR), which the walk up then names.
func missing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// checkListenAddr resolves --listen the way the transport will, without
// binding it (a running server may hold the port).
func checkListenAddr(tr, addr string) error {
	network := "tcp"
	if tr == "quic" {
		network = "udp"
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return cmderr.Usagef("--listen %q: want HOST:PORT (IPv6 addresses go in brackets: [::1]:7777)", addr)
	}
	var err error
	if network == "udp" {
		_, err = net.ResolveUDPAddr(network, addr)
	} else {
		_, err = net.ResolveTCPAddr(network, addr)
	}
	if err != nil {
		return cmderr.Usagef("--listen %q: %v", addr, err)
	}
	return nil
}

// checkNotNegative refuses negative counts and durations where a negative
// value has no meaning (unlike --keepalive and --flood-rate, where it
// means off).
func (cfg Config) checkNotNegative() error {
	for _, v := range []struct {
		name string
		n    int
	}{
		{"history", cfg.Hub.History}, {"replay", cfg.Hub.Replay},
		{"history-room-bytes", cfg.Hub.HistoryRoomBytes}, {"history-bytes", cfg.Hub.HistoryBytes},
		{"flood-burst", cfg.Hub.FloodBurst}, {"max-sessions", cfg.Hub.MaxSessions},
		{"max-auth-tries", cfg.MaxAuthTries}, {"per-source-max-startups", cfg.PerSourceMax},
	} {
		if v.n < 0 {
			return cmderr.Usagef("--%s %d: must not be negative", v.name, v.n)
		}
	}
	if v := cfg.RekeyBytes; v < 0 {
		return cmderr.Usagef("--rekey-bytes %d: must not be negative", v)
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{
		{"login-grace-time", cfg.LoginGraceTime}, {"handshake-timeout", cfg.HandshakeTime},
		{"idle-timeout", cfg.IdleTimeout}, {"ping-interval", cfg.Hub.PingInterval},
		{"hello-timeout", cfg.Hub.HelloTimeout}, {"rekey-time", cfg.RekeyTime},
	} {
		if v.d < 0 {
			return cmderr.Usagef("--%s %v: must not be negative", v.name, v.d)
		}
	}
	return nil
}

// Check is serve --check: load and validate everything, as sshd -t does,
// and report on cfg.Stdout. The first problem is the error; nil means
// serve would start with this configuration. It changes nothing on disk.
func Check(cfg Config) error {
	s, err := load(cfg, true)
	if err != nil {
		return err
	}
	storeState, err := checkChatStore(cfg, s.stateDir, s.log)
	if err != nil {
		return err
	}
	clusterState, err := checkCluster(cfg.Cluster)
	if err != nil {
		return err
	}
	w := cfg.Stdout
	fmt.Fprintf(w, "securechat: configuration OK: %s on %s\n", s.tr.Name(), cfg.Listen)
	fmt.Fprintf(w, "securechat: creds %s: %d accounts\n", s.credsFile, len(s.store.Users()))
	if len(s.store.Users()) == 0 {
		fmt.Fprintf(cfg.Stderr, "securechat: warning: %s has no accounts; nobody can log in\n", s.credsFile)
	}
	if s.hostKey == nil {
		fmt.Fprintf(w, "securechat: host key %s: none yet; serve will create it\n", s.hostKeyFile)
	} else {
		fmt.Fprintf(w, "securechat: host key %s: %s\n", s.hostKeyFile, handshake.Fingerprint(s.hostKey.Public().(ed25519.PublicKey)))
	}
	fmt.Fprintf(w, "securechat: %s\n", storeState)
	fmt.Fprintf(w, "securechat: %s\n", clusterState)
	return nil
}
