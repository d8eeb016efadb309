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
	"path/filepath"
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
creds file and the host keys (see keygen --next); SIGINT or SIGTERM tells
everyone, closes every session and exits.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: defaultListen, Usage: "address to listen on, `HOST:PORT`", EnvVars: []string{"SECURECHAT_LISTEN"}},
			&cli.StringFlag{Name: "transport", Value: "tcp", Usage: "transport: " + strings.Join(transport.Names(), "|"), EnvVars: []string{"SECURECHAT_TRANSPORT"}},
			credsFlag(),
			stateDirFlag(),
			&cli.StringFlag{Name: "kex", Usage: "allowed key exchange groups, comma-separated (default: mlkem768x25519,x25519; ffdhe3072 only if listed: it costs about 12 times the CPU of x25519)", EnvVars: []string{"SECURECHAT_KEX"}},
			&cli.StringFlag{Name: "log-format", Usage: "log format, text|json (default: text on a terminal, json otherwise)", EnvVars: []string{"SECURECHAT_LOG_FORMAT"}},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log level, debug|info|warn|error", EnvVars: []string{"SECURECHAT_LOG_LEVEL"}},
			&cli.StringFlag{Name: "motd", Usage: "message of the day `FILE`, shown at login", EnvVars: []string{"SECURECHAT_MOTD"}},
			&cli.IntFlag{Name: "history", Value: 500, Usage: "messages kept per room"},
			&cli.IntFlag{Name: "replay", Value: 50, Usage: "messages replayed on join"},
			&cli.IntFlag{Name: "history-room-bytes", Value: 1 << 20, Usage: "memory one room's history may take, in `BYTES`; the oldest messages go first (0: no limit)", EnvVars: []string{"SECURECHAT_HISTORY_ROOM_BYTES"}},
			&cli.IntFlag{Name: "history-bytes", Value: 64 << 20, Usage: "memory all rooms' history may take together, in `BYTES`; the oldest messages anywhere go first (0: no limit)", EnvVars: []string{"SECURECHAT_HISTORY_BYTES"}},
			&cli.IntFlag{Name: "flood-burst", Value: 5, Usage: "messages an account may send at once (all its sessions together)"},
			&cli.Float64Flag{Name: "flood-rate", Value: 2, Usage: "messages per second after the burst (negative: no limit)"},
			&cli.IntFlag{Name: "max-sessions", Value: 10, Usage: "sessions one account may have at once (0: no limit)", EnvVars: []string{"SECURECHAT_MAX_SESSIONS"}},
			&cli.IntFlag{Name: "max-auth-tries", Value: handshake.DefaultMaxAuthTries, Usage: "password attempts per connection"},
			&cli.DurationFlag{Name: "login-grace-time", Value: handshake.DefaultLoginGraceTime, Usage: "time from accept to login"},
			&cli.StringFlag{Name: "max-startups", Value: "10:30:100", Usage: "unauthenticated connections, `start:rate:full` as in OpenSSH"},
			&cli.IntFlag{Name: "per-source-max-startups", Value: 4, Usage: "unauthenticated connections per source address (0: no cap)"},
			&cli.StringSliceFlag{Name: "penalty-exempt", Usage: "addresses or CIDR prefixes exempt from per-source limits and penalties", EnvVars: []string{"SECURECHAT_PENALTY_EXEMPT"}},
			&cli.BoolFlag{Name: "no-penalties", Usage: "turn per-source penalties off"},
			&cli.BoolFlag{Name: "no-rehash", Usage: "keep weak or imported hashes as they are at login (for benchmark accounts; normally they are upgraded)"},
			&cli.DurationFlag{Name: "idle-timeout", Value: 30 * time.Second, Usage: "QUIC: end a connection silent for this long"},
			&cli.DurationFlag{Name: "handshake-timeout", Value: 5 * time.Second, Usage: "transport connection setup timeout"},
			&cli.DurationFlag{Name: "keepalive", Value: 15 * time.Second, Usage: "transport keepalive period (negative: off)"},
			&cli.DurationFlag{Name: "ping-interval", Value: 30 * time.Second, Usage: "chat ping after this much silence; dead peers go after twice this"},
			&cli.DurationFlag{Name: "hello-timeout", Value: 30 * time.Second, Usage: "time from login to the chat hello", EnvVars: []string{"SECURECHAT_HELLO_TIMEOUT"}},
			&cli.Int64Flag{Name: "rekey-bytes", Value: 1 << 30, Usage: "rekey each direction after this many bytes"},
			&cli.DurationFlag{Name: "rekey-time", Value: time.Hour, Usage: "rekey each direction after this long"},
		},
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
	log, err := newLogger(c.App.ErrWriter, c.String("log-format"), c.String("log-level"))
	if err != nil {
		return err
	}
	tr, err := transport.Lookup(c.String("transport"))
	if err != nil {
		return usageError("--transport %q: want one of %s", c.String("transport"), strings.Join(transport.Names(), ", "))
	}
	groups, err := parseGroups(c.String("kex"))
	if err != nil {
		return err
	}
	start, rate, full, err := parseMaxStartups(c.String("max-startups"))
	if err != nil {
		return err
	}
	exempt, err := server.ParsePrefixList(c.StringSlice("penalty-exempt"))
	if err != nil {
		return usageError("--penalty-exempt: %v", err)
	}

	credsFile, err := credsPath(c, false)
	if err != nil {
		return err
	}
	store, err := credstore.Load(credsFile, &credstore.Options{Logger: log, NoRehash: c.Bool("no-rehash")})
	if err != nil {
		var me *credstore.ModeError
		if errors.As(err, &me) {
			return withCode(exitError, err, "the creds file holds password hashes; only its owner may read it")
		}
		if errors.Is(err, os.ErrNotExist) {
			return withCode(exitError, err, "create it with 'securechat user add NAME"+credsArg(c)+"'")
		}
		return err
	}
	if len(store.Users()) == 0 {
		log.Warn("the creds file has no accounts; nobody can log in", "creds", credsFile)
	}

	stateDir, err := stateDir(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	hostKeyPath := filepath.Join(stateDir, hostKeyFile)
	hostKey, created, err := handshake.LoadOrCreateHostKey(hostKeyPath)
	if err != nil {
		return err
	}
	pub := hostKey.Public().(ed25519.PublicKey)
	if created {
		log.Info("generated a new host key", "file", hostKeyPath)
	}
	nextHostKey, err := loadNextHostKey(hostKeyPath, hostKey)
	if err != nil {
		return err
	}
	if nextHostKey != nil {
		log.Info("announcing the next host key", "next", handshake.Fingerprint(nextHostKey.Public().(ed25519.PublicKey)))
	}

	motd := ""
	if f := c.String("motd"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("motd: %w", err)
		}
		motd = string(b)
	}
	// The role is looked up at every admin command, so a reload that takes
	// it away applies to sessions already logged in.
	isAdmin := func(user string) bool {
		r, ok := store.Role(user)
		return ok && r == credstore.RoleAdmin
	}
	hub := chat.NewHub(hubConfig(c, log, motd, isAdmin))
	defer hub.Close()

	gate := &server.StartupGate{Start: start, Rate: rate, Full: full,
		PerSource: c.Int("per-source-max-startups"), Exempt: exempt}
	penalties := server.DefaultPenaltyBox()
	penalties.Exempt = exempt
	if c.Bool("no-penalties") {
		penalties = &server.PenaltyBox{}
	}
	srv := server.New(server.Config{
		Transport:      tr.Name(),
		HostKey:        hostKey,
		Groups:         groups,
		Verifier:       store,
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
		// Limits and penalties reach QUIC connections before their stream
		// does, so one source cannot fill the places of waiting ones.
		Admit:                srv.AdmitQUIC,
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

	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reloadHostKeys(srv, hostKeyPath, log)
				diff, err := store.Reload()
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
	log.Info("shutting down", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown", "err", err)
	}
	<-serveErr
	return nil
}
