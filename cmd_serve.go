package main

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

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"securechat/chat"
	"securechat/cipher"
	"securechat/credstore"
	"securechat/handshake"
	"securechat/server"
	"securechat/transport"
)

// defaultListen is the chat port when none is given.
const defaultListen = ":7777"

// shutdownGrace is how long SIGINT/SIGTERM waits for sessions to drain.
const shutdownGrace = 5 * time.Second

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "run a chat server",
		ArgsUsage: " ",
		Description: `Listens for securechat clients, authenticates them against the creds file
and serves rooms, direct messages, presence and history. It prints the
transport, address and host key fingerprint at start. SIGHUP reloads the
creds file, the authorized keys file and the host keys (see keygen --next);
SIGINT or SIGTERM tells
everyone, closes every session and exits.`,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "check", Usage: "load and validate the configuration (flags, creds, host key, motd) and exit: 0 if serve would start, else the first problem"},
			&cli.StringFlag{Name: "listen", Value: defaultListen, Usage: "address to listen on, `HOST:PORT`", EnvVars: []string{"SECURECHAT_LISTEN"}},
			&cli.StringFlag{Name: "transport", Value: "tcp", Usage: "transport: " + strings.Join(transport.Names(), "|"), EnvVars: []string{"SECURECHAT_TRANSPORT"}},
			credsFlag(),
			keysFlag(),
			&cli.StringFlag{Name: "auth", Value: "any", Usage: "login methods accepted: any (password or key) or publickey (keys only)", EnvVars: []string{"SECURECHAT_AUTH"}},
			stateDirFlag(),
			&cli.StringFlag{Name: "kex", Usage: "allowed key exchange groups, comma-separated (default: mlkem768x25519,x25519; ffdhe3072 only if listed: it costs about 12 times the CPU of x25519)", EnvVars: []string{"SECURECHAT_KEX"}},
			&cli.StringFlag{Name: "log-format", Usage: "log format, text|json (default: text on a terminal, json otherwise)", EnvVars: []string{"SECURECHAT_LOG_FORMAT"}},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log level, debug|info|warn|error", EnvVars: []string{"SECURECHAT_LOG_LEVEL"}},
			&cli.StringFlag{Name: "motd", Usage: "message of the day `FILE`, shown at login", EnvVars: []string{"SECURECHAT_MOTD"}},
			&cli.IntFlag{Name: "history", Value: 500, Usage: "messages kept per room", EnvVars: []string{"SECURECHAT_HISTORY"}},
			&cli.IntFlag{Name: "replay", Value: 50, Usage: "messages replayed on join", EnvVars: []string{"SECURECHAT_REPLAY"}},
			&cli.IntFlag{Name: "history-room-bytes", Value: 1 << 20, Usage: "memory one room's history may take, in `BYTES`; the oldest messages go first (0: no limit)", EnvVars: []string{"SECURECHAT_HISTORY_ROOM_BYTES"}},
			&cli.IntFlag{Name: "history-bytes", Value: 64 << 20, Usage: "memory all rooms' history may take together, in `BYTES`; the oldest messages anywhere go first (0: no limit)", EnvVars: []string{"SECURECHAT_HISTORY_BYTES"}},
			&cli.IntFlag{Name: "flood-burst", Value: 5, Usage: "messages an account may send at once (all its sessions together)", EnvVars: []string{"SECURECHAT_FLOOD_BURST"}},
			&cli.Float64Flag{Name: "flood-rate", Value: 2, Usage: "messages per second after the burst (negative: no limit)", EnvVars: []string{"SECURECHAT_FLOOD_RATE"}},
			&cli.IntFlag{Name: "max-sessions", Value: 10, Usage: "sessions one account may have at once (0: no limit)", EnvVars: []string{"SECURECHAT_MAX_SESSIONS"}},
			&cli.IntFlag{Name: "max-auth-tries", Value: handshake.DefaultMaxAuthTries, Usage: "password attempts per connection", EnvVars: []string{"SECURECHAT_MAX_AUTH_TRIES"}},
			&cli.DurationFlag{Name: "login-grace-time", Value: handshake.DefaultLoginGraceTime, Usage: "time from accept to login", EnvVars: []string{"SECURECHAT_LOGIN_GRACE_TIME"}},
			&cli.StringFlag{Name: "max-startups", Value: "10:30:100", Usage: "unauthenticated connections, `start:rate:full` as in OpenSSH", EnvVars: []string{"SECURECHAT_MAX_STARTUPS"}},
			&cli.IntFlag{Name: "per-source-max-startups", Value: 4, Usage: "unauthenticated connections per source address or IPv6 /64 (0: no cap, and any number of password checks from one source may queue)", EnvVars: []string{"SECURECHAT_PER_SOURCE_MAX_STARTUPS"}},
			&cli.StringSliceFlag{Name: "penalty-exempt", Usage: "trusted addresses or CIDR prefixes: no penalties, no per-source or max-startups cap, first in the password check queue", EnvVars: []string{"SECURECHAT_PENALTY_EXEMPT"}},
			&cli.BoolFlag{Name: "no-penalties", Usage: "turn per-source penalties off", EnvVars: []string{"SECURECHAT_NO_PENALTIES"}},
			&cli.BoolFlag{Name: "no-rehash", Usage: "keep weak or imported hashes as they are at login (for benchmark accounts; normally they are upgraded)", EnvVars: []string{"SECURECHAT_NO_REHASH"}},
			&cli.DurationFlag{Name: "idle-timeout", Value: 30 * time.Second, Usage: "QUIC: end a connection silent for this long", EnvVars: []string{"SECURECHAT_IDLE_TIMEOUT"}},
			&cli.DurationFlag{Name: "handshake-timeout", Value: 5 * time.Second, Usage: "transport connection setup timeout", EnvVars: []string{"SECURECHAT_HANDSHAKE_TIMEOUT"}},
			&cli.DurationFlag{Name: "keepalive", Value: 15 * time.Second, Usage: "transport keepalive period (negative: off)", EnvVars: []string{"SECURECHAT_KEEPALIVE"}},
			&cli.DurationFlag{Name: "ping-interval", Value: 30 * time.Second, Usage: "chat ping after this much silence; dead peers go after twice this", EnvVars: []string{"SECURECHAT_PING_INTERVAL"}},
			&cli.DurationFlag{Name: "hello-timeout", Value: 30 * time.Second, Usage: "time from login to the chat hello", EnvVars: []string{"SECURECHAT_HELLO_TIMEOUT"}},
			&cli.Int64Flag{Name: "rekey-bytes", Value: 1 << 30, Usage: "rekey each direction after this many bytes", EnvVars: []string{"SECURECHAT_REKEY_BYTES"}},
			&cli.DurationFlag{Name: "rekey-time", Value: time.Hour, Usage: "rekey each direction after this long", EnvVars: []string{"SECURECHAT_REKEY_TIME"}},
			metricsListenFlag(),
		}, append(storeFlags(), clusterFlags()...)...),
		Action: runServe,
	}
}

// hubConfig builds the chat hub's settings from the serve flags.
func hubConfig(c *cli.Context, log *slog.Logger, motd string, isAdmin func(string) bool) *chat.Config {
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
		HistorySize:        c.Int("history"),
		HistoryReplay:      c.Int("replay"),
		HistoryRoomBytes:   noLimitIfZero(c.Int("history-room-bytes")),
		HistoryBytes:       noLimitIfZero(c.Int("history-bytes")),
		FloodBurst:         c.Int("flood-burst"),
		FloodRate:          c.Float64("flood-rate"),
		MaxSessionsPerUser: noLimitIfZero(c.Int("max-sessions")),
		PingInterval:       c.Duration("ping-interval"),
		PingTimeout:        c.Duration("ping-interval"),
		HelloTimeout:       c.Duration("hello-timeout"),
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
		return 0, 0, 0, usageError("--max-startups %q: want start:rate:full, such as 10:30:100", s)
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0, 0, 0, usageError("--max-startups %q: %q is not a non-negative number", s, p)
		}
		v[i] = n
	}
	if v[1] > 100 || v[2] < v[0] {
		return 0, 0, 0, usageError("--max-startups %q: rate must be at most 100 and full at least start", s)
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

// newLogger builds the server log: text on a terminal, JSON otherwise.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("--log-level %q: want debug, info, warn or error", level)
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
	return nil, usageError("--log-format %q: want text or json", format)
}

func runServe(c *cli.Context) error {
	if c.Args().Present() {
		return usageError("serve takes no arguments, got %q", c.Args().First())
	}
	if c.Bool("check") {
		return runServeCheck(c)
	}
	setup, err := loadServeSetup(c, false)
	if err != nil {
		return err
	}
	log, tr, store, hostKey := setup.log, setup.tr, setup.store, setup.hostKey
	// Under systemd with Type=notify: READY=1 once listening,
	// RELOADING=1 and READY=1 around a SIGHUP reload, STOPPING=1 at
	// shutdown. A malformed $NOTIFY_SOCKET is not worth refusing to
	// serve: if a manager waits on it, its start timeout will say so.
	notifier, err := newServiceNotifier(notifySocketFromEnv())
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
	nextHostKey, err := loadNextHostKey(setup.hostKeyFile, hostKey)
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
	chatDB, err := openChatStore(c, setup.stateDir, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := chatDB.Close(); err != nil {
			log.Error("closing the chat database", "err", err)
		}
	}()
	userExists := func(user string) bool { _, ok := store.Role(user); return ok }
	hubCfg := withStore(hubConfig(c, log, setup.motd, isAdmin), chatDB, userExists)
	// --cluster (serve_cluster.go): the store becomes this server's view
	// of the cluster's log. Left after the hub (defers run last-in
	// first-out), so that the other servers hear of its users leaving.
	relay, err := joinCluster(c.Context, c, log)
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
		if err := relay.Start(c.Context, hub); err != nil {
			return withCode(exitError, err, "")
		}
	}

	// --metrics-listen (servemetrics.go): off when nil.
	sm, err := newServeMetrics(c, tr.Name())
	if err != nil {
		return err
	}
	defer sm.close()

	gate := setup.gate
	penalties := server.DefaultPenaltyBox()
	penalties.Exempt = setup.exempt
	if c.Bool("no-penalties") {
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
		MaxAuthTries:   c.Int("max-auth-tries"),
		LoginGraceTime: c.Duration("login-grace-time"),
		Record: &cipher.Options{
			RekeyAfterBytes: c.Int64("rekey-bytes"),
			RekeyAfterTime:  c.Duration("rekey-time"),
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
	ctx := c.Context
	// Derived from the host key, so a restarted server resets the QUIC
	// connections of its previous run at once.
	resetKey := handshake.StatelessResetKey(hostKey)
	ln, err := tr.Listen(ctx, c.String("listen"), &transport.Options{
		StatelessResetKey: &resetKey,
		// Limits and penalties reach QUIC connections before their
		// handshake (Precheck) and before their stream (Admit), so one
		// source can neither fill the places of waiting ones nor make the
		// server do handshakes it would refuse anyway.
		Admit:                srv.AdmitQUIC,
		Precheck:             srv.PrecheckQUIC,
		HandshakeIdleTimeout: c.Duration("handshake-timeout"),
		MaxIdleTimeout:       c.Duration("idle-timeout"),
		KeepAlivePeriod:      c.Duration("keepalive"),
		Logger:               log,
	})
	if err != nil {
		return withCode(exitError, err, "is another server already listening there?")
	}
	fmt.Fprintf(c.App.Writer, "securechat: serving %s on %s\nsecurechat: host key fingerprint %s\n",
		tr.Name(), ln.Addr(), handshake.Fingerprint(pub))
	log.Info("serving", "transport", tr.Name(), "addr", ln.Addr().String(),
		"fingerprint", handshake.Fingerprint(pub), "users", len(store.Users()))
	sm.start(ctx, c.App.Writer, log, srv, hub, setup.stateDir, chatDB.Healthy)
	status := fmt.Sprintf("serving %s on %s", tr.Name(), ln.Addr())
	tellManager(log, notifier.ready(status))

	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				tellManager(log, notifier.reloading())
				reloadHostKeys(srv, setup.hostKeyFile, log)
				if lost, err := keys.Reload(); err != nil {
					log.Error("authorized keys reload failed; keeping the old keys", "err", err)
				} else {
					log.Info("authorized keys reloaded", "file", keys.Path(), "key_removed", lost)
					// Like a reset password: whoever logged in with a key
					// taken away must not stay.
					for _, u := range lost {
						hub.Disconnect(u, "a key of your account was removed")
					}
				}
				diff, err := store.Reload()
				sm.credsReloaded(err)
				// Ready again either way: a failed reload keeps the old
				// accounts and the server goes on serving.
				tellManager(log, notifier.ready(status))
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
	tellManager(log, notifier.stopping())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown", "err", err)
	}
	<-serveErr
	return nil
}
