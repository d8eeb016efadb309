package main

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

	"github.com/urfave/cli/v2"

	"securechat/credstore"
	"securechat/handshake"
	"securechat/metrics"
	"securechat/server"
	"securechat/transport"
)

// serveSetup is everything serve reads and validates before it listens.
// serve --check builds it and stops, so the two cannot disagree about what
// a valid configuration is.
type serveSetup struct {
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

// loadServeSetup parses the flags and loads the accounts, the host key and
// the message of the day, returning the first problem. With check it
// changes nothing on disk: no state directory or host key is created.
//
// Checks of new state (a database, say) belong here, after the host key,
// so that --check covers them too.
func loadServeSetup(c *cli.Context, check bool) (*serveSetup, error) {
	s := &serveSetup{gate: &server.StartupGate{}}
	var err error
	if s.log, err = newLogger(c.App.ErrWriter, c.String("log-format"), c.String("log-level")); err != nil {
		return nil, err
	}
	if s.tr, err = transport.Lookup(c.String("transport")); err != nil {
		return nil, usageError("--transport %q: want one of %s", c.String("transport"), strings.Join(transport.Names(), ", "))
	}
	if err := checkListenAddr(s.tr.Name(), c.String("listen")); err != nil {
		return nil, err
	}
	if f := c.String("metrics-listen"); f != "" {
		if _, err := metrics.ListenAddr(f); err != nil {
			return nil, usageError("--metrics-listen: %v", err)
		}
	}
	if s.groups, err = parseGroups(c.String("kex")); err != nil {
		return nil, err
	}
	if s.gate.Start, s.gate.Rate, s.gate.Full, err = parseMaxStartups(c.String("max-startups")); err != nil {
		return nil, err
	}
	if s.exempt, err = server.ParsePrefixList(c.StringSlice("penalty-exempt")); err != nil {
		return nil, usageError("--penalty-exempt: %v", err)
	}
	if err := checkNotNegative(c); err != nil {
		return nil, err
	}
	s.gate.PerSource = c.Int("per-source-max-startups")
	s.gate.Exempt = s.exempt

	if s.credsFile, err = credsPath(c, false); err != nil {
		return nil, err
	}
	s.store, err = credstore.Load(s.credsFile, &credstore.Options{Logger: s.log, NoRehash: c.Bool("no-rehash")})
	if err != nil {
		var me *credstore.ModeError
		if errors.As(err, &me) {
			return nil, withCode(exitError, err, "the creds file holds password hashes; only its owner may read it")
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, withCode(exitError, err, "create it with 'securechat user add NAME"+credsArg(c)+"'")
		}
		return nil, err
	}
	switch c.String("auth") {
	case "any":
	case "publickey":
		s.keysOnly = true
	default:
		return nil, usageError("--auth %q: want any or publickey", c.String("auth"))
	}
	if s.keys, err = credstore.LoadKeys(keysPath(c, s.credsFile)); err != nil {
		var me *credstore.KeysModeError
		if errors.As(err, &me) {
			return nil, withCode(exitError, err, "whoever may write the keys file may log in as anyone")
		}
		return nil, withCode(exitError, err, "")
	}

	if s.stateDir, err = stateDir(c); err != nil {
		return nil, err
	}
	s.hostKeyFile = filepath.Join(s.stateDir, hostKeyFile)
	if check {
		err = s.checkHostKey()
	} else {
		err = s.loadHostKey()
	}
	if err != nil {
		return nil, err
	}

	if f := c.String("motd"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("motd: %w", err)
		}
		s.motd = string(b)
	}
	return s, nil
}

// loadHostKey makes the state directory and the host key when missing.
func (s *serveSetup) loadHostKey() error {
	if err := os.MkdirAll(s.stateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	var err error
	s.hostKey, s.hostKeyCreated, err = handshake.LoadOrCreateHostKey(s.hostKeyFile)
	return err
}

// checkHostKey reads the host key without creating it. A missing key is
// fine (serve makes one) as long as the state directory could hold it.
func (s *serveSetup) checkHostKey() error {
	key, err := handshake.LoadHostKey(s.hostKeyFile)
	if err == nil {
		s.hostKey = key
		// A rotation's next key, if any, must load too: serve refuses
		// to start on a broken one.
		_, err = loadNextHostKey(s.hostKeyFile, key)
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
		return usageError("--listen %q: want HOST:PORT (IPv6 addresses go in brackets: [::1]:7777)", addr)
	}
	var err error
	if network == "udp" {
		_, err = net.ResolveUDPAddr(network, addr)
	} else {
		_, err = net.ResolveTCPAddr(network, addr)
	}
	if err != nil {
		return usageError("--listen %q: %v", addr, err)
	}
	return nil
}

// checkNotNegative refuses negative counts and durations where a negative
// value has no meaning (unlike --keepalive and --flood-rate, where it
// means off).
func checkNotNegative(c *cli.Context) error {
	for _, name := range []string{"history", "replay", "history-room-bytes", "history-bytes",
		"flood-burst", "max-sessions", "max-auth-tries", "per-source-max-startups"} {
		if v := c.Int(name); v < 0 {
			return usageError("--%s %d: must not be negative", name, v)
		}
	}
	if v := c.Int64("rekey-bytes"); v < 0 {
		return usageError("--rekey-bytes %d: must not be negative", v)
	}
	for _, name := range []string{"login-grace-time", "handshake-timeout", "idle-timeout",
		"ping-interval", "hello-timeout", "rekey-time"} {
		if v := c.Duration(name); v < 0 {
			return usageError("--%s %v: must not be negative", name, v)
		}
	}
	return nil
}

// runServeCheck is serve --check: load and validate everything, as
// sshd -t does, and report. The first problem is the error; exit 0 means
// serve would start with this configuration.
func runServeCheck(c *cli.Context) error {
	s, err := loadServeSetup(c, true)
	if err != nil {
		return err
	}
	storeState, err := checkChatStore(c, s.stateDir, s.log)
	if err != nil {
		return err
	}
	clusterState, err := checkCluster(c)
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "securechat: configuration OK: %s on %s\n", s.tr.Name(), c.String("listen"))
	fmt.Fprintf(w, "securechat: creds %s: %d accounts\n", s.credsFile, len(s.store.Users()))
	if len(s.store.Users()) == 0 {
		fmt.Fprintf(c.App.ErrWriter, "securechat: warning: %s has no accounts; nobody can log in\n", s.credsFile)
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
