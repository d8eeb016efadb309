package main

import (
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
              logins/s against a real creds store
  fanout      N clients in one room, S senders: deliveries, loss, latency
  idle        N idle logged-in connections: what each costs the server
  targets     all of the above at the sizes of the performance targets,
              with a verdict per target

fanout and idle start their own server (a child process by default, so that
its memory is its own) with throwaway benchmark accounts, or load an
external server given with --addr. Loopback only unless --allow-remote.
See BENCHMARKS.md for the figures and how to reproduce them.`,
		Subcommands: []*cli.Command{
			benchThroughputCommand(),
			benchHandshakeCommand(),
			benchFanoutCommand(),
			benchIdleCommand(),
			benchTargetsCommand(),
			benchProvisionCommand(),
			benchServerCommand(),
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
	cfg := bench.ServerConfig{Transport: tr, Accounts: accounts, Groups: groups, Stderr: stderr}
	switch c.String("server") {
	case "child":
		exe, err := os.Executable()
		if err != nil {
			return nil, nil, fmt.Errorf("cannot find this program to start the server: %w (use --server inproc)", err)
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
			return nil, nil, usageError("--server-cpuprofile and --server-memprofile need --server child")
		}
		if c.String("server") == "serve" {
			exe, err := os.Executable()
			if err != nil {
				return nil, nil, fmt.Errorf("cannot find this program to start the server: %w (use --server inproc)", err)
			}
			cfg.Command, cfg.RealServe = serveArgv(exe), true
		}
	default:
		return nil, nil, usageError("--server %q: want child, serve or inproc", c.String("server"))
	}
	srv, err := bench.StartServer(c.Context, cfg)
	if err != nil {
		return nil, nil, err
	}
	return &srv.Target, srv, nil
}

// benchServerArgv and serveArgv are how child servers are started; tests
// replace them.
var (
	benchServerArgv = func(exe string) []string { return []string{exe, "bench", "server"} }
	serveArgv       = func(exe string) []string { return []string{exe, "serve"} }
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
			&cli.StringFlag{Name: "login", Value: "bench,default", Usage: "login rows: argon2id cost bench (m=64,t=1,p=1) and/or default; empty: none"},
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
				case bench.LoginBench, bench.LoginDefault:
					logins = append(logins, l)
				default:
					return usageError("--login %q: want bench, default or both", l)
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
(saturation without overflowing the server's queues).`,
		Flags: append(append([]cli.Flag{
			&cli.IntFlag{Name: "clients", Value: 100, Usage: "sessions in the room"},
			&cli.IntFlag{Name: "senders", Value: 10, Usage: "of which send"},
			&cli.Float64Flag{Name: "rate", Value: 10, Usage: "messages per second per sender (0: as fast as the window allows)"},
			&cli.IntFlag{Name: "window", Usage: "--rate 0: messages per sender in flight (default 128/senders)"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "sending time"},
			&cli.IntFlag{Name: "text-size", Usage: "pad message texts to this many bytes"},
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
			s, err := benchOutput(c)
			if err != nil {
				return err
			}
			t, srv, err := benchTarget(c, cfg.Clients, c.App.ErrWriter)
			if err != nil {
				s.Stop()
				return err
			}
			cfg.Progress = s.Progress
			rep, err := bench.RunFanout(c.Context, t, cfg)
			if srv != nil {
				if cerr := srv.Close(); err == nil {
					err = cerr
				}
			}
			if rep == nil {
				s.Stop()
				return err
			}
			if ferr := s.Finish("fanout", rep); ferr != nil {
				return ferr
			}
			if err != nil {
				return err
			}
			return rep.Err()
		},
	}
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

func benchTargetsCommand() *cli.Command {
	return &cli.Command{
		Name:  "targets",
		Usage: "run every scenario at the targets' sizes and judge each target",
		Description: `Runs throughput (256 MiB), handshake (concurrency 8), fanout over tcp and
quic (1000 clients, 10 senders × 10 msg/s, 20 s), saturation (1000 clients,
tcp, 10 s) and idle (10,000 clients, which is also the connect storm), each
against a fresh child server, and prints every report and then the table of
targets with the baseline from the same run. Takes about two minutes and
both cores; run it on a quiet machine. Exits 1 if a target is missed.`,
		Flags: append([]cli.Flag{
			&cli.Float64Flag{Name: "scale", Value: 1, Usage: "multiply clients, sizes and durations (e.g. 0.1 for a quick look)"},
			&cli.StringFlag{Name: "server", Value: "child", Usage: "the chat servers: child ('bench server'), serve (the real 'serve' command) or inproc"},
			&cli.StringFlag{Name: "server-cpuprofile", Usage: "child servers: write CPU profiles to `FILE` (each run overwrites it)"},
		}, benchOutputFlags()...),
		Action: func(c *cli.Context) error {
			scale := c.Float64("scale")
			if scale <= 0 || scale > 1 {
				return usageError("--scale %g: want more than 0 and at most 1", scale)
			}
			cfg := bench.TargetsConfig{Scale: scale}
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
			return bench.RunServerProcess(c.Context, bench.ProcessConfig{
				ServeConfig: bench.ServeConfig{Transport: tr, Listen: listen, Creds: c.String("creds"), Groups: groups, Logger: log},
				CPUProfile:  c.String("cpuprofile"),
				MemProfile:  c.String("memprofile"),
			}, c.App.Writer)
		},
	}
}
