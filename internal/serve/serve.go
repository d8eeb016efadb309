// Package serve runs a securechat server process as the serve command
// asks for it: it checks the configuration, loads the accounts and host
// keys, opens the chat database, starts the hub, the server and the metrics
// listener, and handles SIGHUP reloads and the shutdown.
//
// Its one rule: Check and Run read and validate the configuration the same
// way (one setup), so serve --check accepts exactly what serve starts with.
// A wrong setting is a usage mistake (package cmderr) named by its flag.
package serve

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"securechat/chat"
	"securechat/cipher"
	"securechat/credstore"
	"securechat/handshake"
	"securechat/internal/cmderr"
	"securechat/internal/sdnotify"
	"securechat/server"
	"securechat/transport"
)

// shutdownGrace is how long SIGINT/SIGTERM waits for sessions to drain.
const shutdownGrace = 5 * time.Second

// Config is the serve command's settings, as its flags give them; the
// flags' help says what each means. Paths are resolved by the caller.
type Config struct {
	Listen, Transport string
	CredsFile         string
	// CredsHint is the hint for a creds file that does not exist.
	CredsHint       string
	KeysFile        string
	Auth            string // any or publickey
	StateDir        string
	Kex             string
	LogFormat       string
	LogLevel        string
	MOTD            string // file
	MetricsListen   string
	NoRehash        bool
	NoPenalties     bool
	PenaltyExempt   []string
	MaxStartups     string // start:rate:full
	PerSourceMax    int
	MaxAuthTries    int
	LoginGraceTime  time.Duration
	IdleTimeout     time.Duration
	HandshakeTime   time.Duration
	Keepalive       time.Duration
	RekeyBytes      int64
	RekeyTime       time.Duration
	Hub             HubLimits
	Store           string // sqlite or memory
	HistoryRetained time.Duration
	HistoryMax      int
	Cluster         Cluster

	Stdout, Stderr io.Writer
}

// HubLimits are the chat hub's settings. For the byte and session limits 0
// means no limit.
type HubLimits struct {
	History, Replay                int
	HistoryRoomBytes, HistoryBytes int
	FloodBurst                     int
	FloodRate                      float64
	MaxSessions                    int
	PingInterval, HelloTimeout     time.Duration
}

// hubConfig builds the chat hub's settings.
func (l HubLimits) hubConfig(log *slog.Logger, motd string, isAdmin func(string) bool) *chat.Config {
	// For these flags 0 means no limit; for the hub, 0 means its default.
	noLimitIfZero := func(v int) int {
		if v <= 0 {
			return -1
		}
		return v
	}
	return &chat.Config{
		Logger:             log,
		MOTD:               motd,
		IsAdmin:            isAdmin,
		HistorySize:        l.History,
		HistoryReplay:      l.Replay,
		HistoryRoomBytes:   noLimitIfZero(l.HistoryRoomBytes),
		HistoryBytes:       noLimitIfZero(l.HistoryBytes),
		FloodBurst:         l.FloodBurst,
		FloodRate:          l.FloodRate,
		MaxSessionsPerUser: noLimitIfZero(l.MaxSessions),
		PingInterval:       l.PingInterval,
		PingTimeout:        l.PingInterval,
		HelloTimeout:       l.HelloTimeout,
	}
}

// accountVerifier checks passwords against the creds file and keys
// against the authorized keys file: a key login never waits for the
// password hashing.
type accountVerifier struct {
	*credstore.Store
	keys *credstore.KeyStore
}

func (v accountVerifier) VerifyPublicKey(ctx context.Context, user string, key ed25519.PublicKey) error {
	return v.keys.VerifyPublicKey(ctx, user, key)
}

var _ handshake.PublicKeyVerifier = accountVerifier{}

func parseMaxStartups(s string) (start, rate, full int, err error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, 0, 0, cmderr.Usagef("--max-startups %q: want start:rate:full, such as 10:30:100", s)
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0, 0, 0, cmderr.Usagef("--max-startups %q: %q is not a non-negative number", s, p)
		}
		v[i] = n
	}
	if v[1] > 100 || v[2] < v[0] {
		return 0, 0, 0, cmderr.Usagef("--max-startups %q: rate must be at most 100 and full at least start", s)
	}
	return v[0], v[1], v[2], nil
}

// tellManager logs a failed service manager notification: the server
// keeps serving, but the operator should know systemd was not told.
func tellManager(log *slog.Logger, err error) {
	if err != nil {
		log.Warn("service manager notification failed", "err", err)
	}
}

// NewLogger builds the server log: text on a terminal, JSON otherwise.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, cmderr.Usagef("--log-level %q: want debug, info, warn or error", level)
	}
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, cmderr.Usagef("--log-format %q: want text or json", format)
}

// Run serves until ctx is done (SIGINT or SIGTERM), then tells everyone,
// closes every session and returns.
func Run(ctx context.Context, cfg Config) error {
	setup, err := load(cfg, false)
	if err != nil {
		return err
	}
	log, tr, store, hostKey := setup.log, setup.tr, setup.store, setup.hostKey
	// Under systemd with Type=notify: READY=1 once listening,
	// RELOADING=1 and READY=1 around a SIGHUP reload, STOPPING=1 at
	// shutdown. A malformed $NOTIFY_SOCKET is not worth refusing to
	// serve: if a manager waits on it, its start timeout will say so.
	notifier, err := sdnotify.New(sdnotify.SocketFromEnv())
	if err != nil {
		log.Warn("not notifying the service manager", "err", err)
	}
	keys := setup.keys
	if len(store.Users()) == 0 && len(keys.Users()) == 0 {
		log.Warn("the creds file has no accounts and there are no keys; nobody can log in",
			"creds", setup.credsFile, "keys", keys.Path())
	}
	if setup.keysOnly && len(keys.Users()) == 0 {
		log.Warn("--auth publickey, but the keys file has no keys yet; nobody can log in until it has", "keys", keys.Path())
	}
	pub := hostKey.Public().(ed25519.PublicKey)
	if setup.hostKeyCreated {
		log.Info("generated a new host key", "file", setup.hostKeyFile)
	}
	nextHostKey, err := handshake.LoadNextHostKey(setup.hostKeyFile, hostKey)
	if err != nil {
		return err
	}
	if nextHostKey != nil {
		log.Info("announcing the next host key", "next", handshake.Fingerprint(nextHostKey.Public().(ed25519.PublicKey)))
	}

	// The role is looked up at every admin command, so a reload that takes
	// it away applies to sessions already logged in.
	isAdmin := func(user string) bool {
		r, ok := store.Role(user)
		return ok && r == credstore.RoleAdmin
	}
	// The chat database: opened before the hub, closed after it (defers
	// run last-in first-out), so that every acknowledged message is in it.
	chatDB, err := openChatStore(cfg, setup.stateDir, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := chatDB.Close(); err != nil {
			log.Error("closing the chat database", "err", err)
		}
	}()
	userExists := func(user string) bool { _, ok := store.Role(user); return ok }
	hubCfg := withStore(cfg.Hub.hubConfig(log, setup.motd, isAdmin), chatDB, userExists)
	// --cluster (cluster.go): the store becomes this server's view of the
	// cluster's log. Left after the hub (defers run last-in first-out), so
	// that the other servers hear of its users leaving.
	relay, err := joinCluster(ctx, cfg.Cluster, log)
	if err != nil {
		return err
	}
	if relay != nil {
		defer relay.Close()
		hubCfg.Relay = relay
	}
	hub, err := chat.Start(hubCfg)
	if err != nil {
		return err
	}
	defer hub.Close()
	if relay != nil {
		if err := relay.Start(ctx, hub); err != nil {
			return err
		}
	}

	// --metrics-listen (metrics.go): off when nil.
	sm, err := newServeMetrics(cfg.MetricsListen, tr.Name(), relay)
	if err != nil {
		return err
	}
	defer sm.close()

	gate := setup.gate
	penalties := server.DefaultPenaltyBox()
	penalties.Exempt = setup.exempt
	if cfg.NoPenalties {
		penalties = &server.PenaltyBox{}
	}
	srv := server.New(server.Config{
		Transport:      tr.Name(),
		HostKey:        hostKey,
		Groups:         setup.groups,
		Verifier:       accountVerifier{store, keys},
		PublicKeyOnly:  setup.keysOnly,
		IsAdmin:        isAdmin,
		Hub:            hub,
		Gate:           gate,
		Penalties:      penalties,
		NextHostKey:    nextHostKey,
		MaxAuthTries:   cfg.MaxAuthTries,
		LoginGraceTime: cfg.LoginGraceTime,
		Record: &cipher.Options{
			RekeyAfterBytes: cfg.RekeyBytes,
			RekeyAfterTime:  cfg.RekeyTime,
		},
		Hooks:  sm.hooks(),
		Logger: log,
	})

	// SIGHUP reloads the accounts: all or nothing. Sessions of removed
	// accounts and of changed passwords end with a notice (a reset password
	// must lock out whoever logged in with the old one); a role change
	// applies at the next command, and the account's sessions are told. It
	// also rereads the host keys (a rotation's next key, or a promoted one)
	// for new connections.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// (Registered before the address is printed: whoever reads it may
	// signal at once, and an unhandled SIGHUP would kill the server.)
	//
	// Derived from the host key, so a restarted server resets the QUIC
	// connections of its previous run at once.
	resetKey := handshake.StatelessResetKey(hostKey)
	ln, err := tr.Listen(ctx, cfg.Listen, &transport.Options{
		StatelessResetKey: &resetKey,
		// Limits and penalties reach QUIC connections before their
		// handshake (Precheck) and before their stream (Admit), so one
		// source can neither fill the places of waiting ones nor make the
		// server do handshakes it would refuse anyway.
		Admit:                srv.AdmitQUIC,
		Precheck:             srv.PrecheckQUIC,
		HandshakeIdleTimeout: cfg.HandshakeTime,
		MaxIdleTimeout:       cfg.IdleTimeout,
		KeepAlivePeriod:      cfg.Keepalive,
		Logger:               log,
	})
	if err != nil {
		return cmderr.WithHint(err, "is another server already listening there?")
	}
	fmt.Fprintf(cfg.Stdout, "securechat: serving %s on %s\nsecurechat: host key fingerprint %s\n",
		tr.Name(), ln.Addr(), handshake.Fingerprint(pub))
	log.Info("serving", "transport", tr.Name(), "addr", ln.Addr().String(),
		"fingerprint", handshake.Fingerprint(pub), "users", len(store.Users()))
	sm.start(ctx, cfg.Stdout, log, srv, hub, setup.stateDir, chatDB.Healthy)
	status := fmt.Sprintf("serving %s on %s", tr.Name(), ln.Addr())
	tellManager(log, notifier.Ready(status))

	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				tellManager(log, notifier.Reloading())
				var failed []string
				if !reloadHostKeys(srv, setup.hostKeyFile, log) {
					failed = append(failed, "host keys")
				}
				if lost, err := keys.Reload(); err != nil {
					log.Error("authorized keys reload failed; keeping the old keys", "err", err)
					failed = append(failed, "authorized keys")
				} else {
					log.Info("authorized keys reloaded", "file", keys.Path(), "key_removed", lost)
					// Like a reset password: whoever logged in with a key
					// taken away must not stay.
					for _, u := range lost {
						hub.Disconnect(u, "a key of your account was removed")
					}
				}
				diff, err := store.Reload()
				if err != nil {
					failed = append(failed, "accounts")
				}
				sm.reloaded(failed)
				// Ready again either way: a failed reload keeps the old
				// accounts and the server goes on serving. The status
				// line tells systemctl status that it did fail (the
				// reason is in the log, which may quote the file).
				tellManager(log, notifier.Ready(reloadStatus(status, failed)))
				if err != nil {
					log.Error("creds reload failed; keeping the old accounts", "err", err)
					continue
				}
				log.Info("creds reloaded", "added", diff.Added, "removed", diff.Removed,
					"password_changed", diff.Password, "role_changed", diff.Role)
				for _, u := range diff.Removed {
					hub.Disconnect(u, "your account was removed")
				}
				for _, u := range diff.Password {
					hub.Disconnect(u, "your password was changed")
				}
				for _, u := range diff.Role {
					if slices.Contains(diff.Password, u) {
						continue
					}
					text := "you are no longer an admin"
					if isAdmin(u) {
						text = "you are now an admin"
					}
					hub.Notify(u, text)
				}
			}
		}
	}()

	serveErr := make(chan error, 1)
	// Sessions run under a context the signal does not cancel, so that
	// Shutdown, not a cancelled context, ends them: notice, CLOSE, drain.
	go func() { serveErr <- srv.Serve(context.WithoutCancel(ctx), ln) }()
	select {
	case err := <-serveErr:
		if errors.Is(err, server.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sm.stopping()
	log.Info("shutting down", "grace", shutdownGrace)
	tellManager(log, notifier.Stopping())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown", "err", err)
	}
	<-serveErr
	return nil
}

// reloadHostKeys rereads the host key and the next one (on SIGHUP) and
// hands them to srv for new connections: all or nothing, and the current
// key must exist (a reload never creates one). It reports whether the
// keys it read are in force.
func reloadHostKeys(srv *server.Server, path string, log *slog.Logger) bool {
	current, err := handshake.LoadHostKey(path)
	if err != nil {
		log.Error("host key reload failed; keeping the old keys", "err", err)
		return false
	}
	next, err := handshake.LoadNextHostKey(path, current)
	if err != nil {
		log.Error("host key reload failed; keeping the old keys", "err", err)
		return false
	}
	srv.SetHostKeys(current, next)
	args := []any{"fingerprint", handshake.Fingerprint(current.Public().(ed25519.PublicKey))}
	if next != nil {
		args = append(args, "next", handshake.Fingerprint(next.Public().(ed25519.PublicKey)))
	}
	log.Info("host keys reloaded", args...)
	return true
}

// reloadStatus is the service status after a reload: the serving status,
// and which files the reload could not put in force, if any.
func reloadStatus(serving string, failed []string) string {
	if len(failed) == 0 {
		return serving
	}
	list := failed[0]
	if n := len(failed); n > 1 {
		list = strings.Join(failed[:n-1], ", ") + " and " + failed[n-1]
	}
	return serving + "; reload failed, old " + list + " kept (see the log)"
}
