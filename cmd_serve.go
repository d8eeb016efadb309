package main

import (
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"securechat/handshake"
	"securechat/internal/cliflags"
	"securechat/internal/serve"
	"securechat/transport"
)

// defaultListen is the chat port when none is given.
const defaultListen = ":7777"

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
			cliflags.Creds(),
			cliflags.Keys(),
			&cli.StringFlag{Name: "auth", Value: "any", Usage: "login methods accepted: any (password or key) or publickey (keys only)", EnvVars: []string{"SECURECHAT_AUTH"}},
			cliflags.StateDir(),
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

// metricsListenFlag is serve's --metrics-listen.
func metricsListenFlag() cli.Flag {
	return &cli.StringFlag{Name: "metrics-listen", Usage: "serve Prometheus metrics, /healthz and /readyz over HTTP on `HOST:PORT` (a bare port or :PORT means loopback; default: off)", EnvVars: []string{"SECURECHAT_METRICS_LISTEN"}}
}

// storeFlags are the serve flags of the chat database.
func storeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "store", Value: "sqlite", Usage: "where the chat state is kept: sqlite (chat.db in the state directory, kept across restarts) or memory (forgotten at exit)", EnvVars: []string{"SECURECHAT_STORE"}},
		&cli.DurationFlag{Name: "history-retention", Usage: "delete stored messages older than this (0: keep)", EnvVars: []string{"SECURECHAT_HISTORY_RETENTION"}},
		&cli.IntFlag{Name: "history-max", Usage: "stored messages kept per room, the newest (0: no limit)", EnvVars: []string{"SECURECHAT_HISTORY_MAX"}},
	}
}

// serveConfig reads the serve flags.
func serveConfig(c *cli.Context) (serve.Config, error) {
	credsFile, err := cliflags.CredsPath(c, false)
	if err != nil {
		return serve.Config{}, err
	}
	dir, err := cliflags.StateDirPath(c)
	if err != nil {
		return serve.Config{}, err
	}
	return serve.Config{
		Listen: c.String("listen"), Transport: c.String("transport"),
		CredsFile: credsFile, CredsHint: "create it with 'securechat user add NAME" + cliflags.CredsArg(c) + "'",
		KeysFile: cliflags.KeysPath(c, credsFile), Auth: c.String("auth"), StateDir: dir, Kex: c.String("kex"),
		LogFormat: c.String("log-format"), LogLevel: c.String("log-level"), MOTD: c.String("motd"),
		MetricsListen: c.String("metrics-listen"), NoRehash: c.Bool("no-rehash"), NoPenalties: c.Bool("no-penalties"),
		PenaltyExempt: c.StringSlice("penalty-exempt"), MaxStartups: c.String("max-startups"),
		PerSourceMax: c.Int("per-source-max-startups"), MaxAuthTries: c.Int("max-auth-tries"),
		LoginGraceTime: c.Duration("login-grace-time"), IdleTimeout: c.Duration("idle-timeout"),
		HandshakeTime: c.Duration("handshake-timeout"), Keepalive: c.Duration("keepalive"),
		RekeyBytes: c.Int64("rekey-bytes"), RekeyTime: c.Duration("rekey-time"),
		Hub: serve.HubLimits{
			History: c.Int("history"), Replay: c.Int("replay"),
			HistoryRoomBytes: c.Int("history-room-bytes"), HistoryBytes: c.Int("history-bytes"),
			FloodBurst: c.Int("flood-burst"), FloodRate: c.Float64("flood-rate"), MaxSessions: c.Int("max-sessions"),
			PingInterval: c.Duration("ping-interval"), HelloTimeout: c.Duration("hello-timeout"),
		},
		Store: c.String("store"), HistoryRetained: c.Duration("history-retention"), HistoryMax: c.Int("history-max"),
		Cluster: clusterConfig(c),
		Stdout:  c.App.Writer, Stderr: c.App.ErrWriter,
	}, nil
}

func runServe(c *cli.Context) error {
	if c.Args().Present() {
		return usageError("serve takes no arguments, got %q", c.Args().First())
	}
	cfg, err := serveConfig(c)
	if err != nil {
		return err
	}
	if c.Bool("check") {
		return serve.Check(cfg)
	}
	return serve.Run(c.Context, cfg)
}
