package benchcmd

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"securechat/bench"
	"securechat/handshake"
	"securechat/internal/cliflags"
	"securechat/internal/cmderr"
	"securechat/internal/serve"
	"securechat/metrics"
	"securechat/transport"
)

// Command is 'bench' and its subcommands.
func Command() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure the secure channel and the server under load",
		Description: `Load tests on loopback, each figure beside its baseline from the same run:

  throughput  one session's bulk MB/s through the secure channel, beside the
              raw transport and AES-256-CBC + HMAC-SHA-256 on one core
  handshake   handshakes/s per key exchange group beside crypto/tls 1.3, and
              logins/s against a real creds store, by password and by key
  fanout      N clients in one room, S senders: deliveries, loss, latency
  idle        N idle logged-in connections: what each costs the server
  storm       fan-out without and with a password storm from other
              loopback sources against the real serve, probe logins timed
              in both, and a stream-less QUIC flood
  failover    kill -9 serve nodes in turn: time until their clients chat
              again on another node
  cluster     fanout over several serve nodes of one cluster
  targets     all of the above but storm at the sizes of the performance
              targets, with a verdict per target

fanout and idle start their own server (a child process by default, so that
its memory is its own) with throwaway benchmark accounts, or load an
external server given with --addr. Loopback only unless --allow-remote.
See BENCHMARKS.md for the figures and how to reproduce them.`,
		Subcommands: []*cli.Command{
			benchThroughputCommand(),
			benchHandshakeCommand(),
			benchFanoutCommand(),
			benchIdleCommand(),
			benchStormCommand(),
			benchFailoverCommand(),
			benchClusterCommand(),
			benchTargetsCommand(),
			benchProvisionCommand(),
			benchServerCommand(),
			benchStormDialerCommand(),
		},
	}
}

// Flags shared by the scenarios.
func benchOutputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress line on standard error"},
		&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of this process to `FILE`"},
		&cli.StringFlag{Name: "memprofile", Usage: "write a heap profile of this process to `FILE` at the end"},
	}
}

// clientTransportFlags are --transport and --kex of the commands whose
// load clients connect to a server; transportAndGroups reads them.
func clientTransportFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "transport", Value: "tcp", Usage: "transport: " + strings.Join(transport.Names(), "|")},
		&cli.StringFlag{Name: "kex", Usage: "key exchange groups the clients offer, comma-separated (default: the client default)"},
	}
}

// transportAndGroups reads the flags of clientTransportFlags.
func transportAndGroups(c *cli.Context) (transport.Transport, []handshake.Group, error) {
	tr, err := bench.ParseTransport(c.String("transport"))
	if err != nil {
		return nil, nil, err
	}
	groups, err := cliflags.ParseGroups(c.String("kex"))
	if err != nil {
		return nil, nil, err
	}
	return tr, groups, nil
}

func benchTargetFlags(defaultAccounts string) []cli.Flag {
	return append(clientTransportFlags(),
		&cli.StringFlag{Name: "server", Value: "child", Usage: "server when --addr is not given: child ('bench server'), serve (the real 'serve' command) or inproc"},
		&cli.StringFlag{Name: "addr", Usage: "load the external server at `HOST:PORT` instead of starting one"},
		&cli.BoolFlag{Name: "allow-remote", Usage: "allow an --addr that is not a loopback address"},
		&cli.StringFlag{Name: "fingerprint", Usage: "external server: its host key, `SHA256:...` (required with --addr)"},
		&cli.StringFlag{Name: "prefix", Value: "bench", Usage: "external server: account names are `PREFIX`0, PREFIX1, ..."},
		&cli.StringFlag{Name: "password-file", Usage: "external server: the accounts' shared password, from `FILE`"},
		&cli.IntFlag{Name: "server-pid", Usage: "external server: its `PID` on this host, to read its RSS"},
		&cli.IntFlag{Name: "accounts", Usage: "distinct accounts the clients log in as, round robin (default: " + defaultAccounts + ")"},
		&cli.IntFlag{Name: "connect-concurrency", Value: 64, Usage: "clients connecting at once"},
		&cli.StringFlag{Name: "server-cpuprofile", Usage: "child server: write its CPU profile to `FILE`"},
		&cli.StringFlag{Name: "server-memprofile", Usage: "child server: write its heap profile to `FILE` (idle: at the end of the hold)"},
	)
}

// benchOutput starts what every scenario does around its run (see
// bench.Output), from the output flags.
func benchOutput(c *cli.Context) (*bench.Output, error) {
	if c.Args().Present() {
		return nil, cmderr.Usagef("bench %s takes no arguments, got %q", c.Command.Name, c.Args().First())
	}
	f, ok := c.App.ErrWriter.(*os.File)
	o := &bench.Output{Stdout: c.App.Writer, Stderr: c.App.ErrWriter, StderrIsTTY: ok && cliflags.IsTerminal(f),
		JSON: c.Bool("json"), Quiet: c.Bool("quiet"), CPUProfile: c.String("cpuprofile"), MemProfile: c.String("memprofile")}
	return o, o.Start()
}

// benchRun checks a scenario's flags, starts its output and runs it.
func benchRun(c *cli.Context, err error, run func(*bench.Output) error) error {
	if err != nil {
		return err
	}
	o, err := benchOutput(c)
	if err != nil {
		return err
	}
	return run(o)
}

// benchTargetOptions reads the flags of benchTargetFlags.
func benchTargetOptions(c *cli.Context) bench.TargetOptions {
	return bench.TargetOptions{
		Transport: c.String("transport"), Kex: c.String("kex"), Server: c.String("server"),
		Commands: benchCommands(), Stderr: c.App.ErrWriter,
		Addr: c.String("addr"), AllowRemote: c.Bool("allow-remote"), Fingerprint: c.String("fingerprint"),
		Prefix: c.String("prefix"), PasswordFile: c.String("password-file"), ServerPID: c.Int("server-pid"),
		Accounts: c.Int("accounts"), ServerCPUProfile: c.String("server-cpuprofile"), ServerMemProfile: c.String("server-memprofile"),
	}
}

// BenchServerArgv, ServeArgv and StormDialerArgv are how child processes
// are started, from the path of this program: 'bench server', 'serve' and
// 'bench storm-dialer' of the securechat binary that runs the bench. Tests
// replace them to start the children through the test binary.
var (
	BenchServerArgv = func(exe string) []string { return []string{exe, "bench", "server"} }
	ServeArgv       = func(exe string) []string { return []string{exe, "serve"} }
	StormDialerArgv = func(exe string) []string { return []string{exe, "bench", "storm-dialer"} }
)

func benchCommands() bench.Commands {
	argv := func(of func(string) []string) func() ([]string, error) {
		return func() ([]string, error) {
			exe, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("cannot find this program to start the server: %w", err)
			}
			return of(exe), nil
		}
	}
	return bench.Commands{BenchServer: argv(BenchServerArgv), Serve: argv(ServeArgv), StormDialer: argv(StormDialerArgv)}
}

func benchThroughputCommand() *cli.Command {
	return &cli.Command{
		Name:  "throughput",
		Usage: "bulk MB/s of one session, beside the raw transport and the primitives",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "transport", Value: "tcp,quic", Usage: "transports, comma-separated"},
			&cli.Int64Flag{Name: "size", Value: 256, Usage: "MiB per transport, raw and secure each, all rounds together"},
			&cli.IntFlag{Name: "rounds", Value: 4, Usage: "raw and secure transfers take turns this many times"},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "bound on each transfer"},
			&cli.DurationFlag{Name: "primitive-time", Value: time.Second, Usage: "time of each single-core loop"},
		}, benchOutputFlags()...),
		Action: func(c *cli.Context) error {
			var trs []transport.Transport
			for _, name := range strings.Split(c.String("transport"), ",") {
				tr, err := bench.ParseTransport(strings.TrimSpace(name))
				if err != nil {
					return err
				}
				trs = append(trs, tr)
			}
			cfg := bench.ThroughputConfig{Transports: trs, Size: c.Int64("size") << 20, Rounds: c.Int("rounds"),
				Timeout: c.Duration("timeout"), PrimitiveTime: c.Duration("primitive-time")}
			return benchRun(c, cfg.Check(), func(o *bench.Output) error { return o.Throughput(c.Context, cfg) })
		},
	}
}

func benchHandshakeCommand() *cli.Command {
	return &cli.Command{
		Name:  "handshake",
		Usage: "handshakes/s per group beside crypto/tls 1.3, and logins/s",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "transport", Value: "tcp", Usage: "transport of the securechat handshakes (crypto/tls runs over TCP)"},
			&cli.IntFlag{Name: "concurrency", Value: 8, Usage: "clients handshaking at once"},
			&cli.DurationFlag{Name: "duration", Value: 3 * time.Second, Usage: "time of each row, all rounds together"},
			&cli.IntFlag{Name: "rounds", Value: 3, Usage: "the rows take turns this many times, so that background load falls on all alike"},
			&cli.IntFlag{Name: "count", Value: 1_000_000, Usage: "bound on the handshakes of each row"},
			&cli.StringFlag{Name: "kex", Value: "x25519,mlkem768x25519,ffdhe3072", Usage: "groups to measure"},
			&cli.StringFlag{Name: "login", Value: "bench,default,key", Usage: "login rows: password with argon2id cost bench (m=64,t=1,p=1) or default, and key (Ed25519 against an authorized keys file, compared with default); empty: none"},
		}, benchOutputFlags()...),
		Action: func(c *cli.Context) error {
			tr, groups, err := transportAndGroups(c)
			if err != nil {
				return err
			}
			if groups == nil {
				groups = []handshake.Group{}
			}
			logins, err := bench.ParseLogins(c.String("login"))
			if err != nil {
				return err
			}
			cfg := bench.HandshakeConfig{Transport: tr, Concurrency: c.Int("concurrency"), Duration: c.Duration("duration"),
				MaxCount: c.Int("count"), Rounds: c.Int("rounds"), Groups: groups, Logins: logins}
			return benchRun(c, cfg.Check(), func(o *bench.Output) error { return o.Handshake(c.Context, cfg) })
		},
	}
}

func benchFanoutCommand() *cli.Command {
	return &cli.Command{
		Name:  "fanout",
		Usage: "N clients in one room, S senders: deliveries, loss and latency",
		Description: `Connects --clients sessions to #general, waits until all of them have read
every join, then lets the first --senders send --rate messages per second
each for --duration. Every message carries its send time; every member
records the latency when it reads it. Lost = expected - delivered, where
expected counts every accepted message once per connected member.
--rate 0 sends as fast as a window of unfinished messages per sender allows
(saturation without overflowing the server's queues).
--metrics runs the same fan-out against fresh servers with their Prometheus
metrics off and on (scraped every second), --metrics-rounds pairs in
alternating order, and compares p99 latency and deliveries per second.`,
		Flags: append(append([]cli.Flag{
			&cli.IntFlag{Name: "clients", Value: 100, Usage: "sessions in the room"},
			&cli.IntFlag{Name: "senders", Value: 10, Usage: "of which send"},
			&cli.Float64Flag{Name: "rate", Value: 10, Usage: "messages per second per sender (0: as fast as the window allows)"},
			&cli.IntFlag{Name: "window", Usage: "--rate 0: messages per sender in flight (default 128/senders)"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "sending time"},
			&cli.IntFlag{Name: "text-size", Usage: "pad message texts to this many bytes"},
			&cli.StringFlag{Name: "store", Value: "off", Usage: "the started server's chat database: off, on (chat.db, acks after commit), or compare (an off run, then an on run, and their ratios)"},
			&cli.BoolFlag{Name: "metrics", Usage: "compare the server's metrics off and on (needs a server started here, not --addr)"},
			&cli.IntFlag{Name: "metrics-rounds", Value: 2, Usage: "--metrics: pairs of runs, off and on"},
			&cli.StringFlag{Name: "signed", Value: "off", Usage: "signed messages: off, on (senders log in by key and sign every message; a sample of receivers verify), or compare (an unsigned run, then a signed one, and their ratios)"},
			&cli.IntFlag{Name: "verify-sample", Value: 10, Usage: "--signed: receivers that verify every message"},
			&cli.IntFlag{Name: "signed-rounds", Value: 1, Usage: "--signed compare: pairs of runs, the order alternating, with the median ratios"},
		}, benchTargetFlags("one per client")...), benchOutputFlags()...),
		Action: func(c *cli.Context) error {
			cfg := bench.FanoutConfig{
				Clients: c.Int("clients"), Senders: c.Int("senders"), Rate: c.Float64("rate"),
				Window: c.Int("window"), Duration: c.Duration("duration"), TextSize: c.Int("text-size"),
				ConnectConcurrency: c.Int("connect-concurrency"),
			}
			f := bench.FanoutOptions{Target: benchTargetOptions(c), Store: c.String("store"), Signed: c.String("signed"),
				VerifySample: c.Int("verify-sample"), SignedRounds: c.Int("signed-rounds"), Metrics: c.Bool("metrics"), MetricsRounds: c.Int("metrics-rounds")}
			return benchRun(c, f.Check(cfg), func(o *bench.Output) error { return o.Fanout(c.Context, f, cfg) })
		},
	}
}

func benchIdleCommand() *cli.Command {
	return &cli.Command{
		Name:  "idle",
		Usage: "N idle logged-in connections: the server's RSS per connection",
		Description: `Connects --clients sessions (the connect storm: every one must get in), holds
them for --duration answering the server's pings, and reports the server's
RSS before and after, per connection, and the Go runtime's own view of it.
The figure needs the server in a process of its own: the default child
server, or --addr with --server-pid.`,
		Flags: append(append([]cli.Flag{
			&cli.IntFlag{Name: "clients", Value: 1000, Usage: "connections to hold"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "how long to hold them"},
		}, benchTargetFlags("100, or fewer clients")...), benchOutputFlags()...),
		Action: func(c *cli.Context) error {
			cfg := bench.IdleConfig{Clients: c.Int("clients"), Duration: c.Duration("duration"),
				ConnectConcurrency: c.Int("connect-concurrency")}
			return benchRun(c, cfg.Check(), func(o *bench.Output) error { return o.Idle(c.Context, benchTargetOptions(c), cfg) })
		},
	}
}

func benchStormCommand() *cli.Command {
	def := bench.DefaultStormConfig()
	return &cli.Command{
		Name:  "storm",
		Usage: "logins and fan-out during a password storm, beside a no-attack run",
		Description: `Starts the real serve command as a child with its default limits (pre-login
gate, per-source cap, penalties; only --penalty-exempt 127.4.0.1, no flood
limit, --no-rehash, JSON log) and runs, in one invocation:

  1. baseline: the fan-out of 'bench fanout' (--clients, each from a
     loopback address of its own in 127.1/16, --senders × --rate, for
     --duration), while probe logins run from fresh sources (127.3/16)
     and from the exempt source 127.4.0.1, --probes of each;
  2. storm: the same, while --sources addresses (127.2/16) open
     --storm-rate connections per second together, each trying
     --wrong-passwords wrong passwords on accounts hashed at
     --argon2-params (the default cost: what a real server checks),
     all offering one set of key shares made before the storm, as a
     cheap attacker would: the server cannot tell, and the machine's
     CPU goes to connecting rather than to key generation. The storm
     runs in a process of its own (this program again), so that its
     connections do not share a Go scheduler with the clients that
     time the fan-out;
  3. unless --quic-rate is 0: against a QUIC server, probe logins from
     fresh sources without and then beside a flood of QUIC connections
     from 127.5.0.1 that never open a stream, --quic-duration each.

A probe retries a refused login every 100 ms; its latency runs from its
first attempt to the login. The report gives both fan-outs (p99 ratio,
lost deliveries), the probes, the storm's achieved rate and outcomes, the
server's log lines counted by message per phase (refusals by reason), and
the server's RSS, then a verdict per goal. Linux only (it dials from many
loopback addresses). Takes about a minute and both cores at the defaults.
Exits 1 if a goal is missed.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "transport", Value: "tcp", Usage: "transport of the fan-out, the storm and the probes: " + strings.Join(transport.Names(), "|")},
			&cli.StringFlag{Name: "kex", Usage: "key exchange groups the clients offer, comma-separated (default: the client default)"},
			&cli.IntFlag{Name: "clients", Value: def.Fanout.Clients, Usage: "sessions in the room"},
			&cli.IntFlag{Name: "senders", Value: def.Fanout.Senders, Usage: "of which send"},
			&cli.Float64Flag{Name: "rate", Value: def.Fanout.Rate, Usage: "messages per second per sender"},
			&cli.DurationFlag{Name: "duration", Value: def.Fanout.Duration, Usage: "sending time of each phase"},
			&cli.IntFlag{Name: "connect-concurrency", Value: def.Fanout.ConnectConcurrency, Usage: "clients connecting at once (below serve's --max-startups start, 10, so none is dropped)"},
			&cli.IntFlag{Name: "sources", Value: def.Sources, Usage: "storm source addresses"},
			&cli.Float64Flag{Name: "storm-rate", Value: def.Rate, Usage: "storm connections per second, all sources together"},
			&cli.IntFlag{Name: "wrong-passwords", Value: def.WrongPasswords, Usage: "password attempts per storm connection, all wrong"},
			&cli.IntFlag{Name: "max-in-flight", Value: def.MaxInFlight, Usage: "storm connections open at once, at most"},
			&cli.IntFlag{Name: "probes", Value: def.Probes, Usage: "probe logins per phase from fresh sources, and as many from the exempt source"},
			&cli.DurationFlag{Name: "probe-timeout", Value: def.ProbeTimeout, Usage: "bound on one probe login, retries included"},
			&cli.Float64Flag{Name: "quic-rate", Value: def.QUICRate, Usage: "stream-less QUIC connections per second from one source (0: skip that phase)"},
			&cli.DurationFlag{Name: "quic-duration", Value: def.QUICDuration, Usage: "time of each QUIC phase"},
			&cli.StringFlag{Name: "argon2-params", Value: def.StrongParams.String(), Usage: "Argon2id cost of the attacked and probe accounts, m=KiB,t=passes,p=lanes"},
			&cli.StringSliceFlag{Name: "serve-flag", Usage: "more flags for the serve child, one per use (e.g. --serve-flag=--max-startups=20:30:200)"},
		}, benchOutputFlags()...),
		Action: func(c *cli.Context) error {
			cfg, err := stormConfig(c)
			if err != nil {
				return err
			}
			return benchRun(c, cfg.Check(), func(o *bench.Output) error {
				if cfg.Command, err = benchCommands().Serve(); err != nil {
					o.Stop()
					return err
				}
				if cfg.DialerCommand, err = benchCommands().StormDialer(); err != nil {
					o.Stop()
					return err
				}
				cfg.Stderr = c.App.ErrWriter
				return o.Storm(c.Context, cfg)
			})
		},
	}
}

// benchStormDialerCommand is the process bench storm runs its password
// storm in (see bench.RunStormDialer): not for people, so hidden.
func benchStormDialerCommand() *cli.Command {
	return &cli.Command{
		Name:   "storm-dialer",
		Hidden: true,
		Usage:  "run the password storm of 'bench storm' as its own process (configured on standard input)",
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cmderr.Usagef("storm-dialer takes no arguments")
			}
			return bench.RunStormDialer(c.Context, os.Stdin, c.App.Writer)
		},
	}
}

// stormConfig reads the flags of bench storm.
func stormConfig(c *cli.Context) (bench.StormConfig, error) {
	tr, groups, err := transportAndGroups(c)
	if err != nil {
		return bench.StormConfig{}, err
	}
	p, err := bench.ParseStormParams(c.String("argon2-params"))
	if err != nil {
		return bench.StormConfig{}, err
	}
	return bench.StormConfig{
		Transport: tr, Groups: groups,
		Fanout: bench.FanoutConfig{Clients: c.Int("clients"), Senders: c.Int("senders"), Rate: c.Float64("rate"),
			Duration: c.Duration("duration"), ConnectConcurrency: c.Int("connect-concurrency")},
		Sources: c.Int("sources"), Rate: c.Float64("storm-rate"), WrongPasswords: c.Int("wrong-passwords"),
		MaxInFlight: c.Int("max-in-flight"), Probes: c.Int("probes"), ProbeTimeout: c.Duration("probe-timeout"),
		QUICRate: c.Float64("quic-rate"), QUICDuration: c.Duration("quic-duration"),
		StrongParams: p, ServeFlags: c.StringSlice("serve-flag"),
	}, nil
}

func benchTargetsCommand() *cli.Command {
	return &cli.Command{
		Name:  "targets",
		Usage: "run every scenario at the targets' sizes and judge each target",
		Description: `Runs throughput (256 MiB), handshake (concurrency 8), fanout over tcp and
quic (1000 clients, 10 senders × 10 msg/s, 20 s), saturation (1000 clients,
tcp, 10 s) and idle (10,000 clients, which is also the connect storm), each
against a fresh child server, and prints every report and then the table of
targets with the baseline from the same run. Takes about two minutes and
both cores; run it on a quiet machine. With --storm it then runs 'bench
storm' at its default sizes (targets 9-12, logins under attack), which
takes about a minute more and needs Linux. Exits 1 if a target is missed.`,
		Flags: append([]cli.Flag{
			&cli.Float64Flag{Name: "scale", Value: 1, Usage: "multiply clients, sizes and durations (e.g. 0.1 for a quick look)"},
			&cli.StringFlag{Name: "server", Value: "child", Usage: "the chat servers: child ('bench server'), serve (the real 'serve' command) or inproc"},
			&cli.StringFlag{Name: "server-cpuprofile", Usage: "child servers: write CPU profiles to `FILE` (each run overwrites it)"},
			&cli.BoolFlag{Name: "metrics", Usage: "also judge what the server's metrics cost (target 13): tcp fan-out and saturation again, metrics off and on in pairs"},
			&cli.BoolFlag{Name: "storm", Usage: "also run 'bench storm' at its default sizes against the serve command (targets 9-12, about a minute more)"},
		}, benchOutputFlags()...),
		Action: func(c *cli.Context) error {
			cfg, err := bench.TargetsOptions{Scale: c.Float64("scale"), Metrics: c.Bool("metrics"), Storm: c.Bool("storm"),
				Server: c.String("server"), ServerCPUProfile: c.String("server-cpuprofile"),
				Commands: benchCommands(), Stderr: c.App.ErrWriter}.Config()
			return benchRun(c, err, func(o *bench.Output) error { return o.Targets(c.Context, cfg) })
		},
	}
}

func benchProvisionCommand() *cli.Command {
	return &cli.Command{
		Name:  "provision",
		Usage: "write a creds file of benchmark accounts for an external server",
		Description: `Writes a NEW creds file with --users accounts PREFIX0 ... PREFIX(N-1), all with
the password read from --password-file, hashed with Argon2id m=64,t=1,p=1:
cheap on purpose, so that a load test measures the server, not hashing.
The file is labelled as benchmark-only; never load it on a production
server. An existing file is refused.

Serve it with 'securechat serve --no-rehash' (and --max-startups 0:0:0
--per-source-max-startups 0 --no-penalties --flood-rate -1 for a load test
from one address): without --no-rehash, serve upgrades each account to the
default cost at its first login. 'securechat bench server' never does.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "creds", Required: true, Usage: "creds `FILE` to create"},
			&cli.IntFlag{Name: "users", Value: 1000, Usage: "number of accounts"},
			&cli.StringFlag{Name: "prefix", Value: "bench", Usage: "account name prefix"},
			&cli.StringFlag{Name: "password-file", Required: true, Usage: "the shared password, from `FILE` (one trailing newline removed)"},
			&cli.StringFlag{Name: "argon2-params", Value: bench.BenchParams.String(), Usage: "Argon2id cost, m=KiB,t=passes,p=lanes"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cmderr.Usagef("bench provision takes no arguments, got %q", c.Args().First())
			}
			return bench.ProvisionOptions{Creds: c.String("creds"), Prefix: c.String("prefix"), Users: c.Int("users"),
				PasswordFile: c.String("password-file"), Params: c.String("argon2-params")}.Run(c.App.Writer)
		},
	}
}

func benchServerCommand() *cli.Command {
	return &cli.Command{
		Name:  "server",
		Usage: "run a chat server set up for load tests",
		Description: `The server that 'bench fanout' and 'bench idle' start as a child: what serve
runs, with a fresh host key, the creds file loaded without hash upgrades
(benchmark accounts stay cheap), and no pre-login, per-source or flood
limits. It prints one ready line with its address, host key fingerprint
and PID, and on SIGUSR1 one line of Go runtime memory statistics.
Never expose it: it has none of serve's protection against floods.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "creds", Required: true, Usage: "accounts `FILE` (see 'securechat bench provision')"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:0", Usage: "address to listen on, `HOST:PORT`"},
			&cli.BoolFlag{Name: "allow-remote", Usage: "allow a --listen address that is not loopback"},
			&cli.StringFlag{Name: "transport", Value: "tcp", Usage: "transport: " + strings.Join(transport.Names(), "|")},
			&cli.StringFlag{Name: "kex", Usage: "allowed key exchange groups (default: mlkem768x25519,x25519)"},
			&cli.StringFlag{Name: "log-level", Value: "error", Usage: "log level of the text log on standard error"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the whole run to `FILE`"},
			&cli.StringFlag{Name: "memprofile", Usage: "write a heap profile to `FILE` on each SIGUSR1"},
			&cli.StringFlag{Name: "store-dir", Usage: "keep the chat state in chat.db in `DIR`, as serve does (default: no store)"},
			&cli.StringFlag{Name: "keys", Usage: "authorized keys `FILE`, as serve's --keys (default: password logins only)"},
			&cli.StringFlag{Name: "metrics-listen", Usage: "serve Prometheus metrics on `HOST:PORT` (loopback), as serve does"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cmderr.Usagef("bench server takes no arguments, got %q", c.Args().First())
			}
			tr, err := bench.ParseTransport(c.String("transport"))
			if err != nil {
				return err
			}
			listen := c.String("listen")
			if err := bench.CheckListen(listen, c.Bool("allow-remote")); err != nil {
				return err
			}
			groups, err := cliflags.ParseGroups(c.String("kex"))
			if err != nil {
				return err
			}
			log, err := serve.NewLogger(c.App.ErrWriter, "text", c.String("log-level"))
			if err != nil {
				return err
			}
			metricsListen := ""
			if f := c.String("metrics-listen"); f != "" {
				if metricsListen, err = metrics.ListenAddr(f); err != nil {
					return cmderr.Usagef("--metrics-listen: %v", err)
				}
			}
			return bench.RunServerProcess(c.Context, bench.ProcessConfig{
				ServeConfig: bench.ServeConfig{Transport: tr, Listen: listen, Creds: c.String("creds"), Groups: groups, Logger: log,
					StoreDir: c.String("store-dir"), Keys: c.String("keys"), MetricsListen: metricsListen},
				CPUProfile: c.String("cpuprofile"),
				MemProfile: c.String("memprofile"),
			}, c.App.Writer)
		},
	}
}
