package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"securechat/bench"
	"securechat/credstore"
	"securechat/handshake"
	"securechat/metrics"
	"securechat/transport"
)

func benchCommand() *cli.Command {
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

func benchTargetFlags(defaultAccounts string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "transport", Value: "tcp", Usage: "transport: " + strings.Join(transport.Names(), "|")},
		&cli.StringFlag{Name: "kex", Usage: "key exchange groups the clients offer, comma-separated (default: the client default)"},
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
	}
}

// benchOutput starts what every scenario does around its run (see
// bench.Output), from the output flags.
func benchOutput(c *cli.Context) (*bench.Output, error) {
	if c.Args().Present() {
		return nil, usageError("bench %s takes no arguments, got %q", c.Command.Name, c.Args().First())
	}
	f, ok := c.App.ErrWriter.(*os.File)
	o := &bench.Output{Stdout: c.App.Writer, Stderr: c.App.ErrWriter, StderrIsTTY: ok && isTerminal(f),
		JSON: c.Bool("json"), Quiet: c.Bool("quiet"), CPUProfile: c.String("cpuprofile"), MemProfile: c.String("memprofile")}
	return o, o.Start()
}

func benchTransport(name string) (transport.Transport, error) {
	tr, err := transport.Lookup(name)
	if err != nil {
		return nil, usageError("--transport %q: want one of %s", name, strings.Join(transport.Names(), ", "))
	}
	return tr, nil
}

// benchTarget starts a server with benchmark accounts, or describes the
// external one given with --addr. The returned stop ends what it started.
func benchTarget(c *cli.Context, accounts int, stderr io.Writer) (*bench.Target, *bench.Server, error) {
	return benchTargetStore(c, accounts, stderr, false, 0)
}

// benchTargetStore is benchTarget with the started server's chat state in
// a database (withStore) or nowhere.
func benchTargetStore(c *cli.Context, accounts int, stderr io.Writer, withStore bool, keyed int) (*bench.Target, *bench.Server, error) {
	tr, err := benchTransport(c.String("transport"))
	if err != nil {
		return nil, nil, err
	}
	groups, err := parseGroups(c.String("kex"))
	if err != nil {
		return nil, nil, err
	}
	if n := c.Int("accounts"); n != 0 {
		if n < 0 || n > bench.MaxAccounts {
			return nil, nil, usageError("--accounts %d: want 1 to %d", n, bench.MaxAccounts)
		}
		accounts = n
	}
	if addr := c.String("addr"); addr != "" {
		if err := bench.CheckLoopback(c.Context, addr, c.Bool("allow-remote")); err != nil {
			return nil, nil, usageError("--addr: %v", err)
		}
		if !strings.HasPrefix(c.String("fingerprint"), "SHA256:") {
			return nil, nil, usageError("--addr needs --fingerprint SHA256:... (the server prints it at start)")
		}
		if c.String("password-file") == "" {
			return nil, nil, usageError("--addr needs --password-file with the benchmark accounts' password (see 'securechat bench provision')")
		}
		pw, err := os.ReadFile(c.String("password-file"))
		if err != nil {
			return nil, nil, fmt.Errorf("password file: %w", err)
		}
		pw = trimLineBreak(pw)
		if err := credstore.CheckName(bench.AccountName(c.String("prefix"), accounts-1)); err != nil {
			return nil, nil, usageError("--prefix: %v", err)
		}
		return &bench.Target{
			Transport: tr, Addr: addr, Fingerprint: c.String("fingerprint"), Prefix: c.String("prefix"),
			Accounts: accounts, Password: pw, Groups: groups, PID: c.Int("server-pid"),
		}, nil, nil
	}
	cfg, err := benchServerConfig(c, tr, accounts, groups, stderr)
	if err != nil {
		return nil, nil, err
	}
	cfg.Store, cfg.KeyedAccounts = withStore, keyed
	srv, err := bench.StartServer(c.Context, cfg)
	if err != nil {
		return nil, nil, err
	}
	return &srv.Target, srv, nil
}

// benchServerConfig describes the server --server asks for.
func benchServerConfig(c *cli.Context, tr transport.Transport, accounts int, groups []handshake.Group, stderr io.Writer) (bench.ServerConfig, error) {
	cfg := bench.ServerConfig{Transport: tr, Accounts: accounts, Groups: groups, Stderr: stderr}
	switch c.String("server") {
	case "child":
		exe, err := os.Executable()
		if err != nil {
			return cfg, fmt.Errorf("cannot find this program to start the server: %w (use --server inproc)", err)
		}
		cfg.Command = benchServerArgv(exe)
		if f := c.String("server-cpuprofile"); f != "" {
			cfg.Args = append(cfg.Args, "--cpuprofile", f)
		}
		if f := c.String("server-memprofile"); f != "" {
			cfg.Args = append(cfg.Args, "--memprofile", f)
		}
	case "serve", "inproc":
		if c.String("server-cpuprofile") != "" || c.String("server-memprofile") != "" {
			return cfg, usageError("--server-cpuprofile and --server-memprofile need --server child")
		}
		if c.String("server") == "serve" {
			exe, err := os.Executable()
			if err != nil {
				return cfg, fmt.Errorf("cannot find this program to start the server: %w (use --server inproc)", err)
			}
			cfg.Command, cfg.RealServe = serveArgv(exe), true
		}
	default:
		return cfg, usageError("--server %q: want child, serve or inproc", c.String("server"))
	}
	return cfg, nil
}

// benchServerArgv, serveArgv and stormDialerArgv are how child processes
// are started; tests replace them.
var (
	benchServerArgv = func(exe string) []string { return []string{exe, "bench", "server"} }
	serveArgv       = func(exe string) []string { return []string{exe, "serve"} }
	stormDialerArgv = func(exe string) []string { return []string{exe, "bench", "storm-dialer"} }
)

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
				tr, err := benchTransport(strings.TrimSpace(name))
				if err != nil {
					return err
				}
				trs = append(trs, tr)
			}
			size := c.Int64("size")
			if size < 1 || size > bench.MaxTransfer>>20 {
				return usageError("--size %d: want 1 to %d MiB", size, bench.MaxTransfer>>20)
			}
			if r := c.Int("rounds"); r < 1 || r > 100 {
				return usageError("--rounds %d: want 1 to 100", r)
			}
			s, err := benchOutput(c)
			if err != nil {
				return err
			}
			rep, err := bench.RunThroughput(c.Context, bench.ThroughputConfig{
				Transports: trs, Size: size << 20, Rounds: c.Int("rounds"), Timeout: c.Duration("timeout"),
				PrimitiveTime: c.Duration("primitive-time"), Progress: s.Progress,
			})
			if err != nil {
				s.Stop()
				return err
			}
			return s.Finish("throughput", rep)
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
			tr, err := benchTransport(c.String("transport"))
			if err != nil {
				return err
			}
			groups, err := parseGroups(c.String("kex"))
			if err != nil {
				return err
			}
			if groups == nil {
				groups = []handshake.Group{}
			}
			logins := []string{}
			for _, l := range strings.Split(c.String("login"), ",") {
				switch l = strings.TrimSpace(l); l {
				case "":
				case bench.LoginBench, bench.LoginDefault, bench.LoginKey:
					logins = append(logins, l)
				default:
					return usageError("--login %q: want bench, default and/or key", l)
				}
			}
			if n := c.Int("concurrency"); n < 1 || n > 4096 {
				return usageError("--concurrency %d: want 1 to 4096", n)
			}
			if d := c.Duration("duration"); d <= 0 || d > bench.MaxDuration {
				return usageError("--duration %s: want up to %s", d, bench.MaxDuration)
			}
			if c.Int("count") < 1 {
				return usageError("--count must be positive")
			}
			if r := c.Int("rounds"); r < 1 || r > 100 {
				return usageError("--rounds %d: want 1 to 100", r)
			}
			s, err := benchOutput(c)
			if err != nil {
				return err
			}
			rep, err := bench.RunHandshake(c.Context, bench.HandshakeConfig{
				Transport: tr, Concurrency: c.Int("concurrency"), Duration: c.Duration("duration"),
				MaxCount: c.Int("count"), Rounds: c.Int("rounds"), Groups: groups, Logins: logins, Progress: s.Progress,
			})
			if err != nil {
				s.Stop()
				return err
			}
			if err := s.Finish("handshake", rep); err != nil {
				return err
			}
			return rep.Err()
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
		}, benchTargetFlags("one per client")...), benchOutputFlags()...),
		Action: func(c *cli.Context) error {
			cfg := bench.FanoutConfig{
				Clients: c.Int("clients"), Senders: c.Int("senders"), Rate: c.Float64("rate"),
				Window: c.Int("window"), Duration: c.Duration("duration"), TextSize: c.Int("text-size"),
				ConnectConcurrency: c.Int("connect-concurrency"),
			}
			if err := checkFanoutFlags(cfg); err != nil {
				return err
			}
			if c.Bool("metrics") {
				if c.String("store") != "off" {
					return usageError("--metrics and --store compare different things: give one")
				}
				return benchFanoutMetrics(c, cfg)
			}
			stores, err := offOnCompare("store", c.String("store"))
			if err != nil {
				return err
			}
			signs, err := offOnCompare("signed", c.String("signed"))
			if err != nil {
				return err
			}
			if len(stores) == 2 && len(signs) == 2 {
				return usageError("--store compare and --signed compare: one comparison at a time")
			}
			type fanoutPhase struct{ store, signed bool }
			var runs []fanoutPhase
			for _, st := range stores {
				for _, sg := range signs {
					runs = append(runs, fanoutPhase{st, sg})
				}
			}
			if c.String("store") != "off" && (c.String("addr") != "" || c.String("server") == "serve") {
				return usageError("--store: the server this scenario starts (--server child or inproc) is the one it can set up")
			}
			if c.String("signed") != "off" && (c.String("addr") != "" || c.String("server") == "serve") {
				return usageError("--signed: the server this scenario starts (--server child or inproc) is the one it can give the senders' keys")
			}
			if n := c.Int("verify-sample"); c.String("signed") != "off" && (n < 1 || n > cfg.Clients) {
				return usageError("--verify-sample %d: want 1 to --clients", n)
			}
			compare := func(reps []*bench.FanoutReport) interface{ WriteText(io.Writer) } {
				if len(signs) == 2 {
					return bench.CompareSigned(reps[0], reps[1])
				}
				return bench.CompareStore(reps[0], reps[1])
			}
			s, err := benchOutput(c)
			if err != nil {
				return err
			}
			cfg.Progress = s.Progress
			var reps []*bench.FanoutReport
			for _, phase := range runs {
				withStore := phase.store
				keyed := 0
				if phase.signed {
					keyed = cfg.Senders
				}
				t, srv, err := benchTargetStore(c, cfg.Clients, c.App.ErrWriter, withStore, keyed)
				if err != nil {
					s.Stop()
					return err
				}
				pcfg := cfg
				pcfg.Signed, pcfg.VerifySample = phase.signed, c.Int("verify-sample")
				rep, err := bench.RunFanout(c.Context, t, pcfg)
				if srv != nil {
					if cerr := srv.Close(); err == nil {
						err = cerr
					}
				}
				if rep == nil {
					s.Stop()
					return err
				}
				if c.String("store") != "off" {
					rep.SetStore(withStore)
				}
				reps = append(reps, rep)
				if err == nil {
					err = rep.Err()
				}
				if err != nil {
					var out interface{ WriteText(io.Writer) } = rep
					if len(reps) == 2 {
						out = compare(reps)
					}
					if ferr := s.Finish("fanout", out); ferr != nil {
						return ferr
					}
					return err
				}
			}
			if len(reps) == 1 {
				return s.Finish("fanout", reps[0])
			}
			return s.Finish("fanout", compare(reps))
		},
	}
}

// benchFanoutMetrics is bench fanout --metrics.
func benchFanoutMetrics(c *cli.Context, cfg bench.FanoutConfig) error {
	if c.String("addr") != "" {
		return usageError("--metrics starts its own servers; it cannot be used with --addr")
	}
	rounds := c.Int("metrics-rounds")
	if rounds < 1 || rounds > 20 {
		return usageError("--metrics-rounds %d: want 1 to 20", rounds)
	}
	tr, err := benchTransport(c.String("transport"))
	if err != nil {
		return err
	}
	groups, err := parseGroups(c.String("kex"))
	if err != nil {
		return err
	}
	accounts := cfg.Clients
	if n := c.Int("accounts"); n != 0 {
		if n < 0 || n > bench.MaxAccounts {
			return usageError("--accounts %d: want 1 to %d", n, bench.MaxAccounts)
		}
		accounts = n
	}
	scfg, err := benchServerConfig(c, tr, accounts, groups, c.App.ErrWriter)
	if err != nil {
		return err
	}
	s, err := benchOutput(c)
	if err != nil {
		return err
	}
	cfg.Progress = s.Progress
	rep, err := bench.RunMetricsCost(c.Context, bench.MetricsCostConfig{
		Fanout: cfg,
		Rounds: rounds,
		Start: func(ctx context.Context, on bool) (*bench.Server, error) {
			sc := scfg
			sc.Metrics = on
			return bench.StartServer(ctx, sc)
		},
	})
	if rep == nil {
		s.Stop()
		return err
	}
	if ferr := s.Finish("fanout-metrics", rep); ferr != nil {
		return ferr
	}
	if err != nil {
		return err
	}
	if len(rep.Errors) > 0 {
		return fmt.Errorf("bench: %d runs failed", len(rep.Errors))
	}
	return nil
}

// offOnCompare reads a flag of off, on or compare as the phases to run.
func offOnCompare(flag, v string) ([]bool, error) {
	switch v {
	case "off":
		return []bool{false}, nil
	case "on":
		return []bool{true}, nil
	case "compare":
		return []bool{false, true}, nil
	}
	return nil, usageError("--%s %q: want off, on or compare", flag, v)
}

// checkFanoutFlags validates what can be checked before anything starts.
func checkFanoutFlags(cfg bench.FanoutConfig) error {
	switch {
	case cfg.Clients < 1 || cfg.Clients > bench.MaxClients:
		return usageError("--clients %d: want 1 to %d", cfg.Clients, bench.MaxClients)
	case cfg.Senders < 1 || cfg.Senders > cfg.Clients:
		return usageError("--senders %d: want 1 to --clients", cfg.Senders)
	case cfg.Rate < 0 || cfg.Rate > bench.MaxRate:
		return usageError("--rate %g: want 0 to %g", cfg.Rate, bench.MaxRate)
	case cfg.Duration <= 0 || cfg.Duration > bench.MaxDuration:
		return usageError("--duration %s: want up to %s", cfg.Duration, bench.MaxDuration)
	case cfg.Window < 0:
		return usageError("--window must not be negative")
	case cfg.TextSize < 0 || cfg.TextSize > 4096:
		return usageError("--text-size %d: want 0 to 4096", cfg.TextSize)
	case cfg.ConnectConcurrency < 1 || cfg.ConnectConcurrency > 4096:
		return usageError("--connect-concurrency %d: want 1 to 4096", cfg.ConnectConcurrency)
	}
	return nil
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
			n := c.Int("clients")
			if n < 1 || n > bench.MaxClients {
				return usageError("--clients %d: want 1 to %d", n, bench.MaxClients)
			}
			if d := c.Duration("duration"); d < 0 || d > bench.MaxDuration {
				return usageError("--duration %s: want up to %s", d, bench.MaxDuration)
			}
			if cc := c.Int("connect-concurrency"); cc < 1 || cc > 4096 {
				return usageError("--connect-concurrency %d: want 1 to 4096", cc)
			}
			s, err := benchOutput(c)
			if err != nil {
				return err
			}
			t, srv, err := benchTarget(c, min(n, 100), c.App.ErrWriter)
			if err != nil {
				s.Stop()
				return err
			}
			cfg := bench.IdleConfig{Clients: n, Duration: c.Duration("duration"),
				ConnectConcurrency: c.Int("connect-concurrency"), Progress: s.Progress}
			if srv != nil && !srv.InProcess && c.String("server") == "child" {
				cfg.HeapStats = srv.HeapStats
			}
			rep, err := bench.RunIdle(c.Context, t, cfg)
			if srv != nil {
				if cerr := srv.Close(); err == nil {
					err = cerr
				}
			}
			if rep == nil {
				s.Stop()
				return err
			}
			if ferr := s.Finish("idle", rep); ferr != nil {
				return ferr
			}
			if err != nil {
				return err
			}
			return rep.Err()
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
			s, err := benchOutput(c)
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				s.Stop()
				return fmt.Errorf("cannot find this program to start the server: %w", err)
			}
			cfg.Command, cfg.Stderr, cfg.Progress = serveArgv(exe), c.App.ErrWriter, s.Progress
			cfg.DialerCommand = stormDialerArgv(exe)
			cfg.Fanout.Progress = s.Progress
			rep, err := bench.RunStorm(c.Context, cfg)
			if rep == nil {
				s.Stop()
				return err
			}
			if ferr := s.Finish("storm", rep); ferr != nil {
				return ferr
			}
			if err != nil {
				return err
			}
			missed := 0
			for _, t := range rep.Targets {
				if !t.Met {
					missed++
				}
			}
			if missed > 0 || len(rep.Errors) > 0 {
				return fmt.Errorf("bench: %d of %d goals missed, %d scenario errors", missed, len(rep.Targets), len(rep.Errors))
			}
			return nil
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
				return usageError("storm-dialer takes no arguments")
			}
			return bench.RunStormDialer(c.Context, os.Stdin, c.App.Writer)
		},
	}
}

// stormConfig reads and checks the flags of bench storm.
func stormConfig(c *cli.Context) (bench.StormConfig, error) {
	tr, err := benchTransport(c.String("transport"))
	if err != nil {
		return bench.StormConfig{}, err
	}
	groups, err := parseGroups(c.String("kex"))
	if err != nil {
		return bench.StormConfig{}, err
	}
	p, err := credstore.ParseParams(c.String("argon2-params"))
	if err != nil {
		return bench.StormConfig{}, usageError("--argon2-params: %v", err)
	}
	if err := p.Check(credstore.MaxParams); err != nil {
		return bench.StormConfig{}, usageError("--argon2-params: %v", err)
	}
	cfg := bench.StormConfig{
		Transport: tr, Groups: groups,
		Fanout: bench.FanoutConfig{Clients: c.Int("clients"), Senders: c.Int("senders"), Rate: c.Float64("rate"),
			Duration: c.Duration("duration"), ConnectConcurrency: c.Int("connect-concurrency")},
		Sources: c.Int("sources"), Rate: c.Float64("storm-rate"), WrongPasswords: c.Int("wrong-passwords"),
		MaxInFlight: c.Int("max-in-flight"), Probes: c.Int("probes"), ProbeTimeout: c.Duration("probe-timeout"),
		QUICRate: c.Float64("quic-rate"), QUICDuration: c.Duration("quic-duration"),
		StrongParams: p, ServeFlags: c.StringSlice("serve-flag"),
	}
	return cfg, checkStormFlags(cfg)
}

// checkStormFlags validates what can be checked before anything starts.
func checkStormFlags(cfg bench.StormConfig) error {
	if cfg.Fanout.Rate == 0 {
		return usageError("--rate must be positive: the storm is measured beside a steady chat load")
	}
	if err := checkFanoutFlags(cfg.Fanout); err != nil {
		return err
	}
	switch {
	case cfg.Sources < 1 || cfg.Sources > bench.MaxStormSources:
		return usageError("--sources %d: want 1 to %d", cfg.Sources, bench.MaxStormSources)
	case cfg.Rate <= 0 || cfg.Rate > bench.MaxStormRate:
		return usageError("--storm-rate %g: want more than 0, at most %g", cfg.Rate, bench.MaxStormRate)
	case cfg.WrongPasswords < 1 || cfg.WrongPasswords > 20:
		return usageError("--wrong-passwords %d: want 1 to 20", cfg.WrongPasswords)
	case cfg.MaxInFlight < 1 || cfg.MaxInFlight > 65536:
		return usageError("--max-in-flight %d: want 1 to 65536", cfg.MaxInFlight)
	case cfg.Probes < 1 || cfg.Probes > 100:
		return usageError("--probes %d: want 1 to 100", cfg.Probes)
	case cfg.ProbeTimeout <= 0 || cfg.ProbeTimeout > time.Minute:
		return usageError("--probe-timeout %s: want more than 0, at most 1m", cfg.ProbeTimeout)
	case cfg.QUICRate < 0 || cfg.QUICRate > bench.MaxStormRate:
		return usageError("--quic-rate %g: want 0 to %g", cfg.QUICRate, bench.MaxStormRate)
	case cfg.QUICRate > 0 && (cfg.QUICDuration <= 0 || cfg.QUICDuration > bench.MaxDuration):
		return usageError("--quic-duration %s: want more than 0, up to %s", cfg.QUICDuration, bench.MaxDuration)
	}
	for _, f := range cfg.ServeFlags {
		if !strings.HasPrefix(f, "-") {
			return usageError("--serve-flag %q: give each serve flag with its dashes, e.g. --serve-flag=--max-startups=20:30:200", f)
		}
	}
	return nil
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
			scale := c.Float64("scale")
			if scale <= 0 || scale > 1 {
				return usageError("--scale %g: want more than 0 and at most 1", scale)
			}
			cfg := bench.TargetsConfig{Scale: scale, Metrics: c.Bool("metrics")}
			if c.Bool("storm") {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("cannot find this program to start the server: %w", err)
				}
				sc := bench.DefaultStormConfig()
				sc.Transport, sc.Command, sc.Stderr = transport.TCP, serveArgv(exe), c.App.ErrWriter
				sc.DialerCommand = stormDialerArgv(exe)
				cfg.Storm = &sc
			}
			switch c.String("server") {
			case "child":
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("cannot find this program to start the server: %w (use --server inproc)", err)
				}
				cfg.ServerCommand = benchServerArgv(exe)
				if f := c.String("server-cpuprofile"); f != "" {
					cfg.ServerArgs = []string{"--cpuprofile", f}
				}
			case "serve":
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("cannot find this program to start the server: %w (use --server inproc)", err)
				}
				cfg.ServerCommand, cfg.RealServe = serveArgv(exe), true
			case "inproc":
			default:
				return usageError("--server %q: want child, serve or inproc", c.String("server"))
			}
			s, err := benchOutput(c)
			if err != nil {
				return err
			}
			cfg.Progress = s.Progress
			rep, err := bench.RunTargets(c.Context, cfg)
			if rep == nil {
				s.Stop()
				return err
			}
			if ferr := s.Finish("targets", rep); ferr != nil {
				return ferr
			}
			if err != nil {
				return err
			}
			return rep.Err()
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
				return usageError("bench provision takes no arguments, got %q", c.Args().First())
			}
			p, err := credstore.ParseParams(c.String("argon2-params"))
			if err != nil {
				return usageError("--argon2-params: %v", err)
			}
			n := c.Int("users")
			if n < 1 || n > bench.MaxAccounts {
				return usageError("--users %d: want 1 to %d", n, bench.MaxAccounts)
			}
			pw, err := os.ReadFile(c.String("password-file"))
			if err != nil {
				return fmt.Errorf("password file: %w", err)
			}
			pw = trimLineBreak(pw)
			if err := credstore.CheckPassword(pw); err != nil {
				return usageError("--password-file: %v", err)
			}
			path, prefix := c.String("creds"), c.String("prefix")
			if err := bench.Provision(path, prefix, n, pw, p); err != nil {
				if errors.Is(err, os.ErrExist) {
					return withCode(exitError, err, "benchmark accounts go in a file of their own; pick a new --creds path")
				}
				return err
			}
			fmt.Fprintf(c.App.Writer, "securechat: wrote %d benchmark accounts %s to %s (argon2id %s: for load tests only)\n",
				n, accountRange(prefix, n), path, p)
			return nil
		},
	}
}

func accountRange(prefix string, n int) string {
	if n == 1 {
		return bench.AccountName(prefix, 0)
	}
	return bench.AccountName(prefix, 0) + " … " + bench.AccountName(prefix, n-1)
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
				return usageError("bench server takes no arguments, got %q", c.Args().First())
			}
			tr, err := benchTransport(c.String("transport"))
			if err != nil {
				return err
			}
			listen := c.String("listen")
			host, _, err := net.SplitHostPort(listen)
			if err != nil {
				return usageError("--listen %q is not HOST:PORT", listen)
			}
			if !c.Bool("allow-remote") {
				if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
					return usageError("--listen %q: a load-test server listens on a loopback address unless --allow-remote is given", listen)
				}
			}
			groups, err := parseGroups(c.String("kex"))
			if err != nil {
				return err
			}
			log, err := newLogger(c.App.ErrWriter, "text", c.String("log-level"))
			if err != nil {
				return err
			}
			metricsListen := ""
			if f := c.String("metrics-listen"); f != "" {
				if metricsListen, err = metrics.ListenAddr(f); err != nil {
					return usageError("--metrics-listen: %v", err)
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
