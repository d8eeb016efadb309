package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"securechat/credstore"
	"securechat/handshake"
	"securechat/internal/cmderr"
	"securechat/transport"
)

// The options of the bench commands, checked against the package's limits
// before anything starts. A wrong value is a usage mistake (package
// cmderr) named by its flag, so that the command line can say which flag to
// fix.

// ParseTransport is the transport named by a --transport flag.
func ParseTransport(name string) (transport.Transport, error) {
	tr, err := transport.Lookup(name)
	if err != nil {
		return nil, cmderr.Usagef("--transport %q: want one of %s", name, strings.Join(transport.Names(), ", "))
	}
	return tr, nil
}

func parseGroups(list string) ([]handshake.Group, error) {
	gs, err := handshake.ParseGroups(list)
	if err != nil {
		return nil, cmderr.Usagef("--kex: %v", err)
	}
	return gs, nil
}

// Commands start this program's own servers as children.
type Commands struct {
	// BenchServer, Serve and StormDialer return the argv of "securechat
	// bench server", of "securechat serve" and of "securechat bench
	// storm-dialer".
	BenchServer, Serve, StormDialer func() ([]string, error)
}

// TargetOptions choose the server that fanout and idle load: one they
// start (Server: child, serve or inproc) or the external one at Addr.
type TargetOptions struct {
	Transport, Kex string // flag values
	Server         string // child, serve or inproc
	Commands       Commands
	Stderr         io.Writer // a started child's standard error

	// The external server.
	Addr         string
	AllowRemote  bool
	Fingerprint  string
	Prefix       string
	PasswordFile string
	ServerPID    int

	Accounts         int // 0: the scenario's default
	ServerCPUProfile string
	ServerMemProfile string
}

// parse reads the transport, the groups and the number of accounts (def
// unless set).
func (o TargetOptions) parse(def int) (transport.Transport, []handshake.Group, int, error) {
	tr, err := ParseTransport(o.Transport)
	if err != nil {
		return nil, nil, 0, err
	}
	groups, err := parseGroups(o.Kex)
	if err != nil {
		return nil, nil, 0, err
	}
	if n := o.Accounts; n != 0 {
		if n < 0 || n > MaxAccounts {
			return nil, nil, 0, cmderr.Usagef("--accounts %d: want 1 to %d", n, MaxAccounts)
		}
		def = n
	}
	return tr, groups, def, nil
}

// Open starts a server with accounts benchmark accounts (its chat state
// in a database with withStore, the first keyed accounts logging in by
// key), or describes the external one at Addr. The returned server, nil
// for an external one, is for the caller to close.
func (o TargetOptions) Open(ctx context.Context, accounts int, withStore bool, keyed int) (*Target, *Server, error) {
	tr, groups, accounts, err := o.parse(accounts)
	if err != nil {
		return nil, nil, err
	}
	if o.Addr != "" {
		if err := CheckLoopback(ctx, o.Addr, o.AllowRemote); err != nil {
			return nil, nil, cmderr.Usagef("--addr: %v", err)
		}
		if !strings.HasPrefix(o.Fingerprint, "SHA256:") {
			return nil, nil, cmderr.Usagef("--addr needs --fingerprint SHA256:... (the server prints it at start)")
		}
		if o.PasswordFile == "" {
			return nil, nil, cmderr.Usagef("--addr needs --password-file with the benchmark accounts' password (see 'securechat bench provision')")
		}
		pw, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, nil, fmt.Errorf("password file: %w", err)
		}
		if err := credstore.CheckName(AccountName(o.Prefix, accounts-1)); err != nil {
			return nil, nil, cmderr.Usagef("--prefix: %v", err)
		}
		return &Target{
			Transport: tr, Addr: o.Addr, Fingerprint: o.Fingerprint, Prefix: o.Prefix,
			Accounts: accounts, Password: credstore.TrimLineBreak(pw), Groups: groups, PID: o.ServerPID,
		}, nil, nil
	}
	cfg, err := o.serverConfig(tr, accounts, groups)
	if err != nil {
		return nil, nil, err
	}
	cfg.Store, cfg.KeyedAccounts = withStore, keyed
	srv, err := StartServer(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return &srv.Target, srv, nil
}

// serverConfig describes the server --server asks for.
func (o TargetOptions) serverConfig(tr transport.Transport, accounts int, groups []handshake.Group) (ServerConfig, error) {
	cfg := ServerConfig{Transport: tr, Accounts: accounts, Groups: groups, Stderr: o.Stderr}
	var err error
	switch o.Server {
	case "child":
		if cfg.Command, err = o.Commands.BenchServer(); err != nil {
			return cfg, fmt.Errorf("%w (use --server inproc)", err)
		}
		if f := o.ServerCPUProfile; f != "" {
			cfg.Args = append(cfg.Args, "--cpuprofile", f)
		}
		if f := o.ServerMemProfile; f != "" {
			cfg.Args = append(cfg.Args, "--memprofile", f)
		}
	case "serve", "inproc":
		if o.ServerCPUProfile != "" || o.ServerMemProfile != "" {
			return cfg, cmderr.Usagef("--server-cpuprofile and --server-memprofile need --server child")
		}
		if o.Server == "serve" {
			if cfg.Command, err = o.Commands.Serve(); err != nil {
				return cfg, fmt.Errorf("%w (use --server inproc)", err)
			}
			cfg.RealServe = true
		}
	default:
		return cfg, cmderr.Usagef("--server %q: want child, serve or inproc", o.Server)
	}
	return cfg, nil
}

// Check validates the throughput flags (Size in bytes, from --size in MiB).
func (cfg ThroughputConfig) Check() error {
	if mib := cfg.Size >> 20; mib < 1 || mib > MaxTransfer>>20 {
		return cmderr.Usagef("--size %d: want 1 to %d MiB", mib, MaxTransfer>>20)
	}
	return checkRounds(cfg.Rounds)
}

func checkRounds(r int) error {
	if r < 1 || r > 100 {
		return cmderr.Usagef("--rounds %d: want 1 to 100", r)
	}
	return nil
}

// ParseLogins reads --login: login rows, comma-separated.
func ParseLogins(list string) ([]string, error) {
	logins := []string{}
	for _, l := range strings.Split(list, ",") {
		switch l = strings.TrimSpace(l); l {
		case "":
		case LoginBench, LoginDefault, LoginKey:
			logins = append(logins, l)
		default:
			return nil, cmderr.Usagef("--login %q: want bench, default and/or key", l)
		}
	}
	return logins, nil
}

// Check validates the handshake flags.
func (cfg HandshakeConfig) Check() error {
	if n := cfg.Concurrency; n < 1 || n > 4096 {
		return cmderr.Usagef("--concurrency %d: want 1 to 4096", n)
	}
	if d := cfg.Duration; d <= 0 || d > MaxDuration {
		return cmderr.Usagef("--duration %s: want up to %s", d, MaxDuration)
	}
	if cfg.MaxCount < 1 {
		return cmderr.Usagef("--count must be positive")
	}
	return checkRounds(cfg.Rounds)
}

// Check validates the fan-out flags.
func (cfg FanoutConfig) Check() error {
	switch {
	case cfg.Clients < 1 || cfg.Clients > MaxClients:
		return cmderr.Usagef("--clients %d: want 1 to %d", cfg.Clients, MaxClients)
	case cfg.Senders < 1 || cfg.Senders > cfg.Clients:
		return cmderr.Usagef("--senders %d: want 1 to --clients", cfg.Senders)
	case cfg.Rate < 0 || cfg.Rate > MaxRate:
		return cmderr.Usagef("--rate %g: want 0 to %g", cfg.Rate, MaxRate)
	case cfg.Duration <= 0 || cfg.Duration > MaxDuration:
		return cmderr.Usagef("--duration %s: want up to %s", cfg.Duration, MaxDuration)
	case cfg.Window < 0:
		return cmderr.Usagef("--window must not be negative")
	case cfg.TextSize < 0 || cfg.TextSize > 4096:
		return cmderr.Usagef("--text-size %d: want 0 to 4096", cfg.TextSize)
	}
	return checkConnectConcurrency(cfg.ConnectConcurrency)
}

func checkConnectConcurrency(n int) error {
	if n < 1 || n > 4096 {
		return cmderr.Usagef("--connect-concurrency %d: want 1 to 4096", n)
	}
	return nil
}

// Check validates the idle flags.
func (cfg IdleConfig) Check() error {
	if n := cfg.Clients; n < 1 || n > MaxClients {
		return cmderr.Usagef("--clients %d: want 1 to %d", n, MaxClients)
	}
	if d := cfg.Duration; d < 0 || d > MaxDuration {
		return cmderr.Usagef("--duration %s: want up to %s", d, MaxDuration)
	}
	return checkConnectConcurrency(cfg.ConnectConcurrency)
}

// Check validates the storm flags.
func (cfg StormConfig) Check() error {
	if cfg.Fanout.Rate == 0 {
		return cmderr.Usagef("--rate must be positive: the storm is measured beside a steady chat load")
	}
	if err := cfg.Fanout.Check(); err != nil {
		return err
	}
	switch {
	case cfg.Sources < 1 || cfg.Sources > MaxStormSources:
		return cmderr.Usagef("--sources %d: want 1 to %d", cfg.Sources, MaxStormSources)
	case cfg.Rate <= 0 || cfg.Rate > MaxStormRate:
		return cmderr.Usagef("--storm-rate %g: want more than 0, at most %g", cfg.Rate, MaxStormRate)
	case cfg.WrongPasswords < 1 || cfg.WrongPasswords > 20:
		return cmderr.Usagef("--wrong-passwords %d: want 1 to 20", cfg.WrongPasswords)
	case cfg.MaxInFlight < 1 || cfg.MaxInFlight > 65536:
		return cmderr.Usagef("--max-in-flight %d: want 1 to 65536", cfg.MaxInFlight)
	case cfg.Probes < 1 || cfg.Probes > 100:
		return cmderr.Usagef("--probes %d: want 1 to 100", cfg.Probes)
	case cfg.ProbeTimeout <= 0 || cfg.ProbeTimeout > time.Minute:
		return cmderr.Usagef("--probe-timeout %s: want more than 0, at most 1m", cfg.ProbeTimeout)
	case cfg.QUICRate < 0 || cfg.QUICRate > MaxStormRate:
		return cmderr.Usagef("--quic-rate %g: want 0 to %g", cfg.QUICRate, MaxStormRate)
	case cfg.QUICRate > 0 && (cfg.QUICDuration <= 0 || cfg.QUICDuration > MaxDuration):
		return cmderr.Usagef("--quic-duration %s: want more than 0, up to %s", cfg.QUICDuration, MaxDuration)
	}
	for _, f := range cfg.ServeFlags {
		if !strings.HasPrefix(f, "-") {
			return cmderr.Usagef("--serve-flag %q: give each serve flag with its dashes, e.g. --serve-flag=--max-startups=20:30:200", f)
		}
	}
	return nil
}

// ParseStormParams reads the storm's --argon2-params, at most
// credstore.MaxParams.
func ParseStormParams(s string) (credstore.Params, error) {
	p, err := credstore.ParseParams(s)
	if err == nil {
		err = p.Check(credstore.MaxParams)
	}
	if err != nil {
		return p, cmderr.Usagef("--argon2-params: %v", err)
	}
	return p, nil
}

// Err is the storm run's verdict: an error if a goal was missed or a
// scenario failed.
func (r *StormReport) Err() error { return verdict("goals", r.Targets, r.Errors) }

// TargetsOptions are the flags of bench targets.
type TargetsOptions struct {
	Scale            float64
	Metrics, Storm   bool
	Server           string // child, serve or inproc
	ServerCPUProfile string
	Commands         Commands
	Stderr           io.Writer
}

// Config checks the options and turns them into the run's configuration.
func (o TargetsOptions) Config() (TargetsConfig, error) {
	if o.Scale <= 0 || o.Scale > 1 {
		return TargetsConfig{}, cmderr.Usagef("--scale %g: want more than 0 and at most 1", o.Scale)
	}
	cfg := TargetsConfig{Scale: o.Scale, Metrics: o.Metrics}
	var err error
	if o.Storm {
		sc := DefaultStormConfig()
		if sc.Command, err = o.Commands.Serve(); err != nil {
			return cfg, err
		}
		if sc.DialerCommand, err = o.Commands.StormDialer(); err != nil {
			return cfg, err
		}
		sc.Transport, sc.Stderr = transport.TCP, o.Stderr
		cfg.Storm = &sc
	}
	switch o.Server {
	case "child":
		if cfg.ServerCommand, err = o.Commands.BenchServer(); err != nil {
			return cfg, fmt.Errorf("%w (use --server inproc)", err)
		}
		if f := o.ServerCPUProfile; f != "" {
			cfg.ServerArgs = []string{"--cpuprofile", f}
		}
	case "serve":
		if cfg.ServerCommand, err = o.Commands.Serve(); err != nil {
			return cfg, fmt.Errorf("%w (use --server inproc)", err)
		}
		cfg.RealServe = true
	case "inproc":
	default:
		return cfg, cmderr.Usagef("--server %q: want child, serve or inproc", o.Server)
	}
	return cfg, nil
}

// ProvisionOptions are the flags of bench provision.
type ProvisionOptions struct {
	Creds, Prefix string
	Users         int
	PasswordFile  string
	Params        string // --argon2-params
}

// Run writes the creds file and says so on stdout.
func (o ProvisionOptions) Run(stdout io.Writer) error {
	p, err := credstore.ParseParams(o.Params)
	if err != nil {
		return cmderr.Usagef("--argon2-params: %v", err)
	}
	n := o.Users
	if n < 1 || n > MaxAccounts {
		return cmderr.Usagef("--users %d: want 1 to %d", n, MaxAccounts)
	}
	pw, err := os.ReadFile(o.PasswordFile)
	if err != nil {
		return fmt.Errorf("password file: %w", err)
	}
	pw = credstore.TrimLineBreak(pw)
	if err := credstore.CheckPassword(pw); err != nil {
		return cmderr.Usagef("--password-file: %v", err)
	}
	if err := Provision(o.Creds, o.Prefix, n, pw, p); err != nil {
		if errors.Is(err, os.ErrExist) {
			return cmderr.WithHint(err, "benchmark accounts go in a file of their own; pick a new --creds path")
		}
		return err
	}
	names := AccountName(o.Prefix, 0)
	if n > 1 {
		names += " … " + AccountName(o.Prefix, n-1)
	}
	fmt.Fprintf(stdout, "securechat: wrote %d benchmark accounts %s to %s (argon2id %s: for load tests only)\n",
		n, names, o.Creds, p)
	return nil
}

// CheckListen checks bench server's --listen: HOST:PORT, on loopback
// unless allowRemote.
func CheckListen(listen string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return cmderr.Usagef("--listen %q is not HOST:PORT", listen)
	}
	if !allowRemote {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return cmderr.Usagef("--listen %q: a load-test server listens on a loopback address unless --allow-remote is given", listen)
		}
	}
	return nil
}
