package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"securechat/credstore"
	"securechat/handshake"
	"securechat/transport"
)

// StormConfig configures RunStorm.
type StormConfig struct {
	// Transport carries the fan-out, the password storm and its probes.
	Transport transport.Transport
	Groups    []handshake.Group // offered by every client and allowed by the server; nil: defaults
	// Fanout is the chat load of both phases (its hooks are RunStorm's).
	Fanout FanoutConfig

	Sources        int     // storm sources, each its own loopback address
	Rate           float64 // storm connections per second, all sources together
	WrongPasswords int     // password attempts per storm connection, all wrong
	// MaxInFlight bounds the storm connections open at once; when it is
	// reached a due connection is skipped and counted. 0 means 4096.
	MaxInFlight int

	Probes       int           // logins from fresh sources, and from the exempt source, per phase
	ProbeTimeout time.Duration // bound on one probe login, retries included; 0 means 10 s

	// QUICRate is the rate of the stream-less QUIC flood (connections per
	// second, one source) of the last phase, which runs against a QUIC
	// server of its own for QUICDuration; 0 skips that phase.
	QUICRate     float64
	QUICDuration time.Duration

	// StrongParams is the Argon2id cost of the accounts the storm attacks
	// and the probes log in to; zero means credstore.DefaultParams.
	StrongParams credstore.Params

	// DialerCommand, if set, is the argv of a process that runs the
	// password storm (one that calls RunStormDialer); nil runs the storm
	// in this process, beside the fan-out's clients.
	DialerCommand []string

	// Command is the argv of "securechat serve": the scenario needs the
	// real server with its limits. ServeFlags are added to its command
	// line after the scenario's own (see StormServeFlags).
	Command    []string
	ServeFlags []string
	Stderr     io.Writer // the servers' error-level log lines; nil discards

	Progress func(line string)
}

// DefaultStormConfig returns the sizes of the hardening issue: 1000
// clients chatting at 100 messages/s (10 senders × 10), 40 storm sources
// at 2,900 connections/s with 3 wrong passwords each, 10 s per phase, 5
// probes of each kind, and 200 stream-less QUIC connections/s for 5 s.
// Transport and Command are left to the caller.
func DefaultStormConfig() StormConfig {
	return StormConfig{
		Fanout: FanoutConfig{Clients: 1000, Senders: 10, Rate: 10, Duration: 10 * time.Second,
			// Below serve's MaxStartups start (10), so that the gate
			// drops none of them.
			ConnectConcurrency: 8},
		Sources: 40, Rate: 2900, WrongPasswords: 3, MaxInFlight: 4096,
		Probes: 5, ProbeTimeout: 10 * time.Second,
		QUICRate: 200, QUICDuration: 5 * time.Second,
		StrongParams: credstore.DefaultParams,
	}
}

// Bounds of one storm run.
const (
	MaxStormSources = 250
	MaxStormRate    = 50_000.0
	maxStormTries   = 20
	maxProbes       = 100
)

// Loopback addresses of the storm scenario's parties. Linux routes all of
// 127.0.0.0/8 to the loopback interface, so each party is a source of its
// own to the server's per-source limits.
const (
	stormExemptSource     = "127.4.0.1"
	stormStreamlessSource = "127.5.0.1"
	blockClients          = 1
	blockStorm            = 2
	blockFresh            = 3
)

// loopbackSource is address i of loopback block 127.block.0.0/16, skipping
// the .0.0 address; beyond 65535 the addresses repeat.
func loopbackSource(block, i int) string {
	n := i%65535 + 1
	return "127." + strconv.Itoa(block) + "." + strconv.Itoa(n>>8) + "." + strconv.Itoa(n&255)
}

// StormServeFlags are the serve flags of the storm scenario: serve's
// default limits stay on (pre-login gate, per-source cap, penalties),
// stormExemptSource is exempt, senders are not flood-limited (the fan-out
// sends faster than a person), cheap accounts are not upgraded, and the
// log is JSON at info level, which the scenario counts.
var StormServeFlags = []string{
	"--penalty-exempt", stormExemptSource, "--flood-rate", "-1", "--no-rehash",
	"--log-level", "info", "--log-format", "json",
}

func (c *StormConfig) check() error {
	switch {
	case c.Transport == nil:
		return errors.New("bench: storm: no transport")
	case len(c.Command) == 0:
		return errors.New("bench: storm: needs the serve command")
	case c.Sources < 1 || c.Sources > MaxStormSources:
		return fmt.Errorf("bench: storm: %d sources; want 1 to %d", c.Sources, MaxStormSources)
	case c.Rate <= 0 || c.Rate > MaxStormRate:
		return fmt.Errorf("bench: storm: %g connections/s; want more than 0, at most %g", c.Rate, MaxStormRate)
	case c.WrongPasswords < 1 || c.WrongPasswords > maxStormTries:
		return fmt.Errorf("bench: storm: %d wrong passwords per connection; want 1 to %d", c.WrongPasswords, maxStormTries)
	case c.MaxInFlight < 0:
		return errors.New("bench: storm: negative in-flight bound")
	case c.Probes < 1 || c.Probes > maxProbes:
		return fmt.Errorf("bench: storm: %d probes; want 1 to %d", c.Probes, maxProbes)
	case c.QUICRate < 0 || c.QUICRate > MaxStormRate:
		return fmt.Errorf("bench: storm: stream-less QUIC rate %g; want 0 to %g", c.QUICRate, MaxStormRate)
	case c.QUICRate > 0 && (c.QUICDuration <= 0 || c.QUICDuration > MaxDuration):
		return fmt.Errorf("bench: storm: stream-less QUIC phase of %s; want up to %s", c.QUICDuration, MaxDuration)
	}
	return c.Fanout.check()
}

// StormLoad is what the password storm of one phase did, seen from the
// attacking side.
type StormLoad struct {
	Sources        int     `json:"sources"`
	TargetRate     float64 `json:"target_rate"`
	WrongPasswords int     `json:"wrong_passwords"`
	Seconds        float64 `json:"seconds"`

	Started      int64   `json:"started"`       // connections begun
	AchievedRate float64 `json:"achieved_rate"` // started per second
	Skipped      int64   `json:"skipped"`       // due but not begun: MaxInFlight reached
	// How the connections ended: refused before the key exchange finished
	// (the server's gate or penalty box, or a failed dial), after one or
	// more wrong passwords, logged in (never expected), or still open when
	// the storm stopped.
	Refused        int64 `json:"refused"`
	AuthFailed     int64 `json:"auth_failed"`
	LoggedIn       int64 `json:"logged_in"`
	CutAtEnd       int64 `json:"cut_at_end"`
	PasswordsSent  int64 `json:"passwords_sent"`
	MaxInFlightObs int64 `json:"max_in_flight"`
	// ReusedKeyShares says that every connection offered one set of key
	// shares, made before the storm (see startStorm).
	ReusedKeyShares bool `json:"reused_key_shares"`
	// OwnProcess says that the storm ran in a dialer process of its own
	// (see RunStormDialer), not beside the fan-out's clients.
	OwnProcess bool `json:"own_process"`
	// DialerCPUCores is the dialer process's CPU during the storm, in
	// cores; 0 when the storm ran in this process (its CPU is then part
	// of the fan-out report's load generator figure).
	DialerCPUCores float64 `json:"dialer_cpu_cores,omitempty"`
}

// ProbeStats summarises the probe logins of one kind in one phase. A probe
// retries refused attempts (after 100 ms) until it logs in or its timeout
// passes; its latency runs from its first attempt to the login.
type ProbeStats struct {
	Kind      string    `json:"kind"` // "fresh source" or "exempt source"
	Count     int       `json:"count"`
	Succeeded int       `json:"succeeded"`
	FirstTry  int       `json:"first_try"` // logged in at the first attempt
	Attempts  int       `json:"attempts"`
	P50MS     float64   `json:"p50_ms"`
	MaxMS     float64   `json:"max_ms"`
	Latencies []float64 `json:"latencies_ms"` // failed probes count their timeout
	// The first probe that never logged in, and the first attempt that
	// failed (a refusal is seen as the connection reset or closed).
	FailedLogin   string `json:"failed_login,omitempty"`
	FailedAttempt string `json:"failed_attempt,omitempty"`
}

// StormPhase is one phase of the scenario: the server's view (its log
// lines counted by message) beside the attackers' and the probes'.
type StormPhase struct {
	Name      string           `json:"name"`
	Fanout    *FanoutReport    `json:"fanout,omitempty"`
	Storm     *StormLoad       `json:"storm,omitempty"`
	Fresh     *ProbeStats      `json:"fresh,omitempty"`
	Exempt    *ProbeStats      `json:"exempt,omitempty"`
	ServerLog map[string]int64 `json:"server_log"`
	// MaxUnauthenticated is the largest count of unauthenticated
	// connections the server's refusal lines gave (its pre-login gate).
	MaxUnauthenticated int64 `json:"max_unauthenticated,omitempty"`
	RSSMax             int64 `json:"rss_max,omitempty"` // server, sampled every 250 ms
}

// StreamlessLoad is what the stream-less QUIC flood did.
type StreamlessLoad struct {
	TargetRate   float64 `json:"target_rate"`
	Seconds      float64 `json:"seconds"`
	Started      int64   `json:"started"`
	AchievedRate float64 `json:"achieved_rate"`
	Established  int64   `json:"established"` // QUIC handshakes completed (and no stream ever opened)
	Failed       int64   `json:"failed"`      // handshakes that failed or timed out
	Skipped      int64   `json:"skipped"`
	MaxOpen      int64   `json:"max_open"`
}

// StormReport is the outcome of RunStorm.
type StormReport struct {
	Transport  string   `json:"transport"`
	ServeFlags []string `json:"serve_flags"`
	Accounts   string   `json:"accounts"` // what the storm attacks and the probes log in to

	Baseline *StormPhase `json:"baseline"`
	Storm    *StormPhase `json:"storm"`
	P99Ratio float64     `json:"p99_ratio,omitempty"` // storm p99 / baseline p99

	RSSBefore   int64 `json:"rss_before,omitempty"`    // server, no clients
	RSSBaseline int64 `json:"rss_baseline,omitempty"`  // end of the baseline's sending
	RSSStormMax int64 `json:"rss_storm_max,omitempty"` // most during the storm
	RSSAfter    int64 `json:"rss_after,omitempty"`     // storm over, clients gone

	QUICBaseline *StormPhase     `json:"quic_baseline,omitempty"`
	QUICFlood    *StormPhase     `json:"quic_flood,omitempty"`
	Streamless   *StreamlessLoad `json:"streamless,omitempty"`

	Targets []TargetResult `json:"targets"`
	Errors  []string       `json:"errors,omitempty"`
}

// Goals of the storm scenario, from the hardening issue.
const (
	stormFreshGoal      = 2 * time.Second
	stormExemptGoal     = time.Second
	stormP99Ratio       = 2.0
	streamlessDelayGoal = time.Second
	probeRetryPause     = 100 * time.Millisecond
)

// RunStorm runs the login-storm scenario against fresh "securechat serve"
// children with their limits on: a fan-out without attack, the same
// fan-out while cfg.Sources loopback sources run a password storm, with
// probe logins from fresh sources and from an exempt one timed in both,
// and then (if cfg.QUICRate > 0) a stream-less QUIC flood from one source
// beside probe logins from others.
func RunStorm(ctx context.Context, cfg StormConfig) (*StormReport, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 4096
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 10 * time.Second
	}
	if cfg.StrongParams == (credstore.Params{}) {
		cfg.StrongParams = credstore.DefaultParams
	}
	flags := append(append([]string{}, StormServeFlags...), cfg.ServeFlags...)
	rep := &StormReport{Transport: cfg.Transport.Name(), ServeFlags: flags}
	victims := make([]string, min(cfg.Sources, 8))
	for i := range victims {
		victims[i] = AccountName("storm", i)
	}
	rep.Accounts = fmt.Sprintf("%d storm targets and a probe account, Argon2id %s; the fan-out's accounts %s",
		len(victims), cfg.StrongParams, BenchParams)
	progress := throttled(cfg.Progress)

	start := func(tr transport.Transport, log *logCounter) (*Server, error) {
		return StartServer(ctx, ServerConfig{Transport: tr, Accounts: cfg.Fanout.Clients, Groups: cfg.Groups,
			StrongAccounts: append(slices.Clone(victims), probeUser), StrongParams: cfg.StrongParams,
			Command: cfg.Command, RealServe: true, ServeFlags: flags, Stderr: log})
	}
	var fresh atomic.Int64 // fresh probe sources handed out

	// Phases 1 and 2: fan-out, then fan-out under the storm.
	log := newLogCounter(cfg.Stderr)
	srv, err := start(cfg.Transport, log)
	if err != nil {
		return nil, err
	}
	t := &srv.Target
	t.Source = func(i int) string { return loopbackSource(blockClients, i) }
	rep.RSSBefore, _ = ProcessRSS(t.PID)
	for _, storm := range []bool{false, true} {
		ph := &StormPhase{Name: "baseline"}
		if storm {
			ph.Name = "storm"
		}
		fc := cfg.Fanout
		fc.Progress = cfg.Progress
		var (
			stop      func() *StormLoad
			probes    func() (*ProbeStats, *ProbeStats)
			rssStop   func() int64
			logBefore map[string]int64
		)
		fc.BeforeSend = func() {
			logBefore = log.snapshot()
			log.takeUnauth()
			rssStop = sampleRSS(t.PID)
			if storm {
				var err error
				if stop, err = startStormIn(ctx, t, cfg, victims, progress, func(err error) {
					rep.Errors = append(rep.Errors, "storm: "+err.Error())
				}); err != nil {
					rep.Errors = append(rep.Errors, "storm: "+err.Error())
				}
			}
			probes = startProbes(ctx, t, cfg, cfg.Fanout.Duration, &fresh)
		}
		fc.AfterSend = func() {
			ph.Fresh, ph.Exempt = probes()
			if stop != nil {
				ph.Storm = stop()
			}
			ph.RSSMax = rssStop()
			ph.ServerLog = diffCounts(log.snapshot(), logBefore)
			ph.MaxUnauthenticated = log.takeUnauth()
		}
		fr, err := RunFanout(ctx, t, fc)
		ph.Fanout = fr
		if err != nil {
			rep.Errors = append(rep.Errors, ph.Name+": "+err.Error())
		}
		if storm {
			rep.Storm, rep.RSSStormMax = ph, ph.RSSMax
		} else {
			rep.Baseline = ph
			if fr != nil {
				rep.RSSBaseline = fr.RSSAfter
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	rep.RSSAfter, _ = ProcessRSS(t.PID)
	if err := srv.Close(); err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	if b, s := rep.Baseline.Fanout, rep.Storm; b != nil && s != nil && s.Fanout != nil && b.Latency.P99 > 0 {
		rep.P99Ratio = s.Fanout.Latency.P99 / b.Latency.P99
	}

	// Phase 3: stream-less QUIC connections from one source.
	if cfg.QUICRate > 0 && ctx.Err() == nil {
		if err := runStreamless(ctx, cfg, rep, start, &fresh, progress); err != nil {
			rep.Errors = append(rep.Errors, "stream-less quic: "+err.Error())
		}
	}
	progress("")
	rep.judge(cfg)
	return rep, ctx.Err()
}

// probeUser is the default-cost account the probes log in to.
const probeUser = "probe0"

func runStreamless(ctx context.Context, cfg StormConfig, rep *StormReport,
	start func(transport.Transport, *logCounter) (*Server, error), fresh *atomic.Int64, progress func(string)) error {
	log := newLogCounter(cfg.Stderr)
	srv, err := start(transport.QUIC, log)
	if err != nil {
		return err
	}
	defer srv.Close()
	t := &srv.Target
	for _, flood := range []bool{false, true} {
		ph := &StormPhase{Name: "quic baseline"}
		if flood {
			ph.Name = "quic stream-less flood"
		}
		before := log.snapshot()
		log.takeUnauth()
		rssStop := sampleRSS(t.PID)
		var stop func() *StreamlessLoad
		if flood {
			if stop, err = startStreamless(ctx, t, cfg.QUICRate, cfg.MaxInFlight, progress); err != nil {
				rssStop()
				return err
			}
		}
		probes := startProbes(ctx, t, cfg, cfg.QUICDuration, fresh)
		select {
		case <-time.After(cfg.QUICDuration):
		case <-ctx.Done():
		}
		ph.Fresh, ph.Exempt = probes()
		if stop != nil {
			rep.Streamless = stop()
		}
		ph.RSSMax = rssStop()
		ph.ServerLog = diffCounts(log.snapshot(), before)
		ph.MaxUnauthenticated = log.takeUnauth()
		if flood {
			rep.QUICFlood = ph
		} else {
			rep.QUICBaseline = ph
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// startStorm starts the password storm: cfg.Sources pacers, one per
// source address, each opening connections at its share of cfg.Rate that
// log in to one of victims with wrong passwords. The returned function
// stops it, cuts what is still open and reports.
//
// Every storm connection offers the same key shares, made once: an
// attacker whose connections are nearly all refused before the key
// exchange has no reason to pay for a fresh ML-KEM key pair each time, and
// the server cannot tell. So the storm's CPU on a machine it shares with
// the server goes to connecting, as an attacker's would, and not to key
// generation the server never sees.
func startStorm(ctx context.Context, t *Target, cfg StormConfig, victims []string, progress func(string)) (func() *StormLoad, error) {
	shares, err := handshake.NewReusedKeyShares(t.Groups)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	load := &StormLoad{Sources: cfg.Sources, TargetRate: cfg.Rate, WrongPasswords: cfg.WrongPasswords, ReusedKeyShares: true}
	var (
		started, skipped, refused, authFailed, loggedIn, cut, passwords atomic.Int64
		inFlight, maxInFlight                                           atomic.Int64
		conns                                                           sync.WaitGroup
	)
	attack := func(src, user string) {
		defer inFlight.Add(-1)
		cctx, ccancel := context.WithTimeout(ctx, time.Minute)
		defer ccancel()
		c, err := t.Transport.Dial(cctx, t.Addr, &transport.Options{LocalAddr: src})
		if err != nil {
			if ctx.Err() != nil {
				cut.Add(1)
			} else {
				refused.Add(1)
			}
			return
		}
		var tries int64
		sess, err := handshake.Client(cctx, c, &handshake.ClientConfig{
			Transport: t.Transport.Name(), ReusedKeyShares: shares, User: user,
			HostKeyCallback: fixedHostKey(t.Fingerprint),
			Password: func(attempt int) ([]byte, error) {
				passwords.Add(1)
				tries++
				return []byte("wrong password " + strconv.Itoa(attempt)), nil
			},
			MaxAuthTries: cfg.WrongPasswords,
		})
		switch {
		case err == nil:
			loggedIn.Add(1)
			sess.Close()
			return
		case ctx.Err() != nil:
			cut.Add(1)
		case tries > 0:
			authFailed.Add(1)
		default:
			refused.Add(1)
		}
		abortConn(c)
	}
	interval := time.Duration(float64(time.Second) * float64(cfg.Sources) / cfg.Rate)
	perSource := max(1, int64(cfg.MaxInFlight/cfg.Sources))
	begin := time.Now()
	var pacers sync.WaitGroup
	for s := range cfg.Sources {
		src, user := loopbackSource(blockStorm, s), victims[s%len(victims)]
		pacers.Go(func() {
			var mine atomic.Int64
			next := begin.Add(interval * time.Duration(s) / time.Duration(cfg.Sources))
			for {
				if d := time.Until(next); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				} else if ctx.Err() != nil {
					return
				}
				next = next.Add(interval)
				if behind := time.Since(next); behind > time.Second {
					// Fell far behind (the machine is saturated): do not
					// make up for it in one burst.
					next = time.Now()
				}
				if mine.Load() >= perSource {
					skipped.Add(1)
					continue
				}
				started.Add(1)
				mine.Add(1)
				storeMax(&maxInFlight, inFlight.Add(1))
				conns.Go(func() {
					defer mine.Add(-1)
					attack(src, user)
				})
				progress(fmt.Sprintf("storm: %d connections begun (%.0f/s), %d refused, %d failed logins, %d open",
					started.Load(), float64(started.Load())/time.Since(begin).Seconds(), refused.Load(), authFailed.Load(), inFlight.Load()))
			}
		})
	}
	return func() *StormLoad {
		cancel()
		pacers.Wait()
		load.Seconds = time.Since(begin).Seconds()
		conns.Wait()
		load.Started, load.Skipped = started.Load(), skipped.Load()
		load.AchievedRate = float64(load.Started) / load.Seconds
		load.Refused, load.AuthFailed, load.LoggedIn, load.CutAtEnd = refused.Load(), authFailed.Load(), loggedIn.Load(), cut.Load()
		load.PasswordsSent, load.MaxInFlightObs = passwords.Load(), maxInFlight.Load()
		return load
	}, nil
}

// startStormIn starts the storm in a dialer process if cfg names one, else
// in this process. An error the dialer process reports when stopped goes
// to fail.
func startStormIn(ctx context.Context, t *Target, cfg StormConfig, victims []string, progress func(string), fail func(error)) (func() *StormLoad, error) {
	if len(cfg.DialerCommand) == 0 {
		return startStorm(ctx, t, cfg, victims, progress)
	}
	progress("storm: running in a dialer process of its own")
	stop, err := startStormProcess(ctx, cfg.DialerCommand, t, cfg, victims, cfg.Stderr)
	if err != nil {
		return nil, err
	}
	return func() *StormLoad {
		load, err := stop()
		if err != nil {
			fail(err)
			return nil
		}
		load.OwnProcess = true
		return load
	}, nil
}

// quicALPN is the ALPN of securechat over QUIC (PROTOCOL.md §3), which
// the stream-less flood must offer to get through the QUIC handshake.
const quicALPN = "securechat/1"

// startStreamless opens QUIC connections to t from stormStreamlessSource
// at rate per second, each completing the QUIC handshake and never opening
// a stream, and holds each until the server closes it or the flood stops.
func startStreamless(ctx context.Context, t *Target, rate float64, maxOpen int, progress func(string)) (func() *StreamlessLoad, error) {
	raddr, err := net.ResolveUDPAddr("udp", t.Addr)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp", net.JoinHostPort(stormStreamlessSource, "0"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	load := &StreamlessLoad{TargetRate: rate}
	var started, established, failed, skipped, open, most atomic.Int64
	var conns sync.WaitGroup
	begin := time.Now()
	qt := &quic.Transport{Conn: pc}
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicALPN}, MinVersion: tls.VersionTLS13}
	qconf := &quic.Config{HandshakeIdleTimeout: 5 * time.Second, MaxIdleTimeout: 30 * time.Second}
	var pacer sync.WaitGroup
	pacer.Go(func() {
		interval := time.Duration(float64(time.Second) / rate)
		next := begin
		for {
			if d := time.Until(next); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			} else if ctx.Err() != nil {
				return
			}
			next = next.Add(interval)
			if time.Since(next) > time.Second {
				next = time.Now()
			}
			if open.Load() >= int64(maxOpen) {
				skipped.Add(1)
				continue
			}
			started.Add(1)
			storeMax(&most, open.Add(1))
			conns.Go(func() {
				defer open.Add(-1)
				dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
				qc, err := qt.Dial(dctx, raddr, tlsConf, qconf)
				dcancel()
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					return
				}
				established.Add(1)
				select {
				case <-qc.Context().Done():
				case <-ctx.Done():
				}
				qc.CloseWithError(0, "")
			})
			progress(fmt.Sprintf("stream-less quic: %d begun, %d established, %d failed, %d open",
				started.Load(), established.Load(), failed.Load(), open.Load()))
		}
	})
	return func() *StreamlessLoad {
		cancel()
		pacer.Wait()
		load.Seconds = time.Since(begin).Seconds()
		conns.Wait()
		qt.Close()
		pc.Close()
		load.Started, load.Established, load.Failed, load.Skipped, load.MaxOpen =
			started.Load(), established.Load(), failed.Load(), skipped.Load(), most.Load()
		load.AchievedRate = float64(load.Started) / load.Seconds
		return load
	}, nil
}

// startProbes runs cfg.Probes probe logins from fresh sources and as many
// from the exempt source, spread over phase: each starts at its time
// whether or not the one before it has ended, so that slow logins do not
// stretch the phase beyond phase + cfg.ProbeTimeout. The returned function
// waits for all of them and summarises each kind.
func startProbes(ctx context.Context, t *Target, cfg StormConfig, phase time.Duration, fresh *atomic.Int64) func() (*ProbeStats, *ProbeStats) {
	begin := time.Now()
	type result struct {
		d             time.Duration
		attempts      int
		firstErr, err error
	}
	var wg sync.WaitGroup
	series := func(offset float64, source func() string) []result {
		res := make([]result, cfg.Probes)
		for k := range cfg.Probes {
			at := begin.Add(time.Duration((float64(k) + offset) * float64(phase) / float64(cfg.Probes+1)))
			wg.Go(func() {
				select {
				case <-time.After(time.Until(at)):
				case <-ctx.Done():
					res[k].err = ctx.Err()
					return
				}
				r := &res[k]
				r.d, r.attempts, r.firstErr, r.err = probeLogin(ctx, t, source(), cfg.ProbeTimeout)
			})
		}
		return res
	}
	freshRes := series(1, func() string { return loopbackSource(blockFresh, int(fresh.Add(1)-1)) })
	exemptRes := series(1.5, func() string { return stormExemptSource })
	summary := func(kind string, res []result) *ProbeStats {
		ps := &ProbeStats{Kind: kind, Count: cfg.Probes}
		for _, r := range res {
			ps.record(r.d, r.attempts, r.firstErr, r.err)
		}
		ps.summarise()
		return ps
	}
	return func() (*ProbeStats, *ProbeStats) {
		wg.Wait()
		return summary("fresh source", freshRes), summary("exempt source", exemptRes)
	}
}

// probeLogin logs in to probeUser from src, retrying a failed attempt
// after probeRetryPause, as a person's client would, until it succeeds or
// timeout passes. It returns the time from the first attempt to the login.
// The error of its first failed attempt, if any, is kept for the report.
func probeLogin(ctx context.Context, t *Target, src string, timeout time.Duration) (d time.Duration, attempts int, firstErr, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	for attempts = 1; ; attempts++ {
		sess, err := loginOnce(ctx, t, src)
		if err == nil {
			d := time.Since(start)
			sess.Close()
			return d, attempts, firstErr, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		select {
		case <-time.After(probeRetryPause):
		case <-ctx.Done():
			return time.Since(start), attempts, firstErr, fmt.Errorf("no login within %s, %d attempts: %w", timeout, attempts, err)
		}
	}
}

func loginOnce(ctx context.Context, t *Target, src string) (*handshake.Session, error) {
	c, err := t.Transport.Dial(ctx, t.Addr, &transport.Options{LocalAddr: src})
	if err != nil {
		return nil, err
	}
	sess, err := handshake.Client(ctx, c, &handshake.ClientConfig{
		Transport: t.Transport.Name(), Groups: t.Groups, User: probeUser,
		HostKeyCallback: fixedHostKey(t.Fingerprint),
		Password:        func(int) ([]byte, error) { return bytes.Clone(t.Password), nil },
		MaxAuthTries:    1,
	})
	if err != nil {
		abortConn(c)
		return nil, err
	}
	return sess, nil
}

// storeMax raises a to v if v is larger.
func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

func fixedHostKey(fingerprint string) func(ed25519.PublicKey) error {
	return func(key ed25519.PublicKey) error {
		if fp := handshake.Fingerprint(key); fp != fingerprint {
			return fmt.Errorf("bench: host key %s is not the expected %s", fp, fingerprint)
		}
		return nil
	}
}

func (ps *ProbeStats) record(d time.Duration, attempts int, firstErr, err error) {
	ps.Attempts += attempts
	ps.Latencies = append(ps.Latencies, ms(d))
	if ps.FailedLogin == "" && err != nil {
		ps.FailedLogin = err.Error()
	}
	if ps.FailedAttempt == "" && firstErr != nil {
		ps.FailedAttempt = firstErr.Error()
	}
	if err != nil {
		return
	}
	ps.Succeeded++
	if attempts == 1 {
		ps.FirstTry++
	}
}

// summarise sets P50MS and MaxMS from the latencies.
func (ps *ProbeStats) summarise() {
	if len(ps.Latencies) == 0 {
		return
	}
	s := slices.Clone(ps.Latencies)
	slices.Sort(s)
	ps.P50MS = s[(len(s)-1)/2]
	ps.MaxMS = s[len(s)-1]
}

// allWithin reports whether every probe logged in within goal (and, if
// firstTry, at its first attempt).
func (ps *ProbeStats) allWithin(goal time.Duration, firstTry bool) bool {
	if ps == nil || ps.Count == 0 || ps.Succeeded != ps.Count || ps.MaxMS > ms(goal) {
		return false
	}
	return !firstTry || ps.FirstTry == ps.Count
}

// sampleRSS samples the RSS of process pid every 250 ms until the
// returned function is called, which returns the largest sample.
func sampleRSS(pid int) func() int64 {
	done := make(chan struct{})
	var most atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if n, err := ProcessRSS(pid); err == nil {
				storeMax(&most, n)
			}
			select {
			case <-tick.C:
			case <-done:
				return
			}
		}
	})
	return func() int64 {
		close(done)
		wg.Wait()
		return most.Load()
	}
}

// logCounter is the standard error of a server child that logs JSON: it
// counts the lines by message, and passes error-level lines and lines
// that are not JSON on to next.
type logCounter struct {
	next io.Writer

	mu      sync.Mutex
	partial []byte
	counts  map[string]int64
	unauth  int64 // largest "unauthenticated" attribute since the last takeUnauth
}

func newLogCounter(next io.Writer) *logCounter {
	if next == nil {
		next = io.Discard
	}
	return &logCounter{next: next, counts: make(map[string]int64)}
}

func (l *logCounter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(l.partial[:i])
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) == 0 {
		l.partial = nil // let the buffer go between bursts
	}
	return len(p), nil
}

func (l *logCounter) line(b []byte) {
	if len(bytes.TrimSpace(b)) == 0 {
		return
	}
	var rec struct {
		Level  string `json:"level"`
		Msg    string `json:"msg"`
		Unauth int64  `json:"unauthenticated"`
		Reason string `json:"reason"`
		// A line may stand for several events: serve logs the refusals
		// of a storm one by one only up to a rate, and the rest as one
		// line with their number.
		Count int64 `json:"count"`
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Msg == "" {
		l.counts["(not a JSON log line)"]++
		fmt.Fprintf(l.next, "%s\n", b)
		return
	}
	n := max(rec.Count, 1)
	l.counts[rec.Msg] += n
	if rec.Reason != "" {
		// By reason as well: a refusal by the penalty box and one by the
		// startup gate are different outcomes, and so are a wrong password
		// and a check refused unhashed.
		l.counts[rec.Msg+": "+rec.Reason] += n
	}
	l.unauth = max(l.unauth, rec.Unauth)
	if rec.Level == "ERROR" {
		fmt.Fprintf(l.next, "%s\n", b)
	}
}

// takeUnauth returns the largest unauthenticated count logged since the
// last call.
func (l *logCounter) takeUnauth() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.unauth
	l.unauth = 0
	return n
}

func (l *logCounter) snapshot() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]int64, len(l.counts))
	for k, v := range l.counts {
		m[k] = v
	}
	return m
}

// diffCounts returns after - before, leaving out what did not change.
func diffCounts(after, before map[string]int64) map[string]int64 {
	d := make(map[string]int64)
	for k, v := range after {
		if n := v - before[k]; n != 0 {
			d[k] = n
		}
	}
	return d
}

// judge sets the verdicts of the hardening issue's goals.
func (r *StormReport) judge(cfg StormConfig) {
	b, s := r.Baseline, r.Storm
	if b == nil || s == nil {
		return
	}
	load := "storm"
	if s.Storm != nil {
		load = fmt.Sprintf("%d sources, %.0f connections/s, %d wrong passwords each", s.Storm.Sources, s.Storm.AchievedRate, s.Storm.WrongPasswords)
	}
	probeText := func(ps *ProbeStats) string {
		if ps == nil {
			return "-"
		}
		return fmt.Sprintf("%d/%d logged in (%d at the first try), p50 %.0f ms, max %.0f ms", ps.Succeeded, ps.Count, ps.FirstTry, ps.P50MS, ps.MaxMS)
	}
	baseText := func(ps *ProbeStats) string {
		if ps == nil {
			return ""
		}
		return fmt.Sprintf("p50 %.0f ms, max %.0f ms without the storm", ps.P50MS, ps.MaxMS)
	}
	r.Targets = append(r.Targets,
		TargetResult{ID: 9, Name: "login from a fresh source during the password storm (" + load + ")",
			Goal: fmt.Sprintf("every one within %s", stormFreshGoal), Measured: probeText(s.Fresh), Baseline: baseText(b.Fresh),
			Met: s.Fresh.allWithin(stormFreshGoal, false)},
		TargetResult{ID: 10, Name: "login from an exempt source during the password storm",
			Goal: fmt.Sprintf("at once: first try, within %s", stormExemptGoal), Measured: probeText(s.Exempt), Baseline: baseText(b.Exempt),
			Met: s.Exempt.allWithin(stormExemptGoal, true)})
	if bf, sf := b.Fanout, s.Fanout; bf != nil && sf != nil {
		r.Targets = append(r.Targets, TargetResult{ID: 11,
			Name:     fmt.Sprintf("fan-out p99 during the storm, %d clients, %d × %g msg/s", sf.Clients, sf.Senders, sf.RatePerSender),
			Goal:     fmt.Sprintf("≤ %.0f× the no-attack run, 0 lost", stormP99Ratio),
			Measured: fmt.Sprintf("p99 %.1f ms, %d lost of %d", sf.Latency.P99, sf.Lost, sf.Expected),
			Baseline: fmt.Sprintf("p99 %.1f ms, %d lost", bf.Latency.P99, bf.Lost), Ratio: r.P99Ratio,
			Met: r.P99Ratio > 0 && r.P99Ratio <= stormP99Ratio && sf.Lost == 0 && bf.Lost == 0 &&
				sf.Connected == sf.Clients && sf.Disconnects == 0})
	}
	if qb, qf := r.QUICBaseline, r.QUICFlood; qb != nil && qf != nil && qf.Fresh != nil && qb.Fresh != nil && r.Streamless != nil {
		delay := qf.Fresh.MaxMS - qb.Fresh.P50MS
		r.Targets = append(r.Targets, TargetResult{ID: 12,
			Name:     fmt.Sprintf("quic login beside a stream-less flood from one source (%.0f connections/s)", r.Streamless.AchievedRate),
			Goal:     fmt.Sprintf("delayed by ≤ %s", streamlessDelayGoal),
			Measured: fmt.Sprintf("%s; delay %.0f ms", probeText(qf.Fresh), delay),
			Baseline: baseText(qb.Fresh),
			Met:      qf.Fresh.Succeeded == qf.Fresh.Count && delay <= ms(streamlessDelayGoal)})
	}
}

// WriteText prints the phases side by side, then the verdicts.
func (r *StormReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "login storm over %s against 'serve %s'\naccounts: %s\n\n", r.Transport, joinFlags(r.ServeFlags), r.Accounts)
	for _, ph := range []*StormPhase{r.Baseline, r.Storm} {
		if ph == nil {
			continue
		}
		fmt.Fprintf(w, "== %s\n", ph.Name)
		if ph.Fanout != nil {
			ph.Fanout.WriteText(w)
		}
		ph.writeCommon(w)
		fmt.Fprintln(w)
	}
	if r.RSSBefore > 0 {
		fmt.Fprintf(w, "server rss: %s before the clients, %s at the end of the baseline, %s at most during the storm, %s after (storm over, clients gone)\n\n",
			kib(r.RSSBefore), kib(r.RSSBaseline), kib(r.RSSStormMax), kib(r.RSSAfter))
	}
	for _, ph := range []*StormPhase{r.QUICBaseline, r.QUICFlood} {
		if ph == nil {
			continue
		}
		fmt.Fprintf(w, "== %s\n", ph.Name)
		if ph == r.QUICFlood && r.Streamless != nil {
			s := r.Streamless
			fmt.Fprintf(w, "flood: %d connections begun in %.1f s (%.0f/s of %.0f/s asked), %d QUIC handshakes completed, %d failed, %d skipped, %d open at most\n",
				s.Started, s.Seconds, s.AchievedRate, s.TargetRate, s.Established, s.Failed, s.Skipped, s.MaxOpen)
		}
		ph.writeCommon(w)
		fmt.Fprintln(w)
	}
	writeVerdicts(w, r.Targets, r.Errors)
}

func (ph *StormPhase) writeCommon(w io.Writer) {
	if s := ph.Storm; s != nil {
		fmt.Fprintf(w, "storm: %d sources, %d connections begun in %.1f s (%.0f/s of %.0f/s asked), %d skipped at the in-flight bound, %d open at most\n",
			s.Sources, s.Started, s.Seconds, s.AchievedRate, s.TargetRate, s.Skipped, s.MaxInFlightObs)
		if s.ReusedKeyShares {
			fmt.Fprintln(w, "storm key shares: one set, made before the storm and offered by every connection, as a cheap attacker would")
		}
		if s.OwnProcess {
			fmt.Fprintf(w, "storm dialer: a process of its own on the same host (%.2f cores), not in the process whose clients time the fan-out\n", s.DialerCPUCores)
		}
		fmt.Fprintf(w, "storm outcomes: %d refused before login, %d ended after wrong passwords (%d passwords sent), %d logged in, %d cut at the end\n",
			s.Refused, s.AuthFailed, s.PasswordsSent, s.LoggedIn, s.CutAtEnd)
	}
	for _, ps := range []*ProbeStats{ph.Fresh, ph.Exempt} {
		if ps == nil {
			continue
		}
		lat := make([]string, len(ps.Latencies))
		for i, l := range ps.Latencies {
			lat[i] = fmt.Sprintf("%.0f", l)
		}
		fmt.Fprintf(w, "probe logins, %s: %d/%d logged in, %d at the first try, %d attempts; p50 %.0f ms, max %.0f ms [%s ms]\n",
			ps.Kind, ps.Succeeded, ps.Count, ps.FirstTry, ps.Attempts, ps.P50MS, ps.MaxMS, joinFlags(lat))
		if ps.FailedLogin != "" {
			fmt.Fprintf(w, "  first probe that failed: %s\n", ps.FailedLogin)
		} else if ps.FailedAttempt != "" {
			fmt.Fprintf(w, "  first attempt that failed: %s\n", ps.FailedAttempt)
		}
	}
	if ph.RSSMax > 0 {
		fmt.Fprintf(w, "server rss at most: %s\n", kib(ph.RSSMax))
	}
	keys := make([]string, 0, len(ph.ServerLog))
	for k := range ph.ServerLog {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if ph.ServerLog[keys[i]] != ph.ServerLog[keys[j]] {
			return ph.ServerLog[keys[i]] > ph.ServerLog[keys[j]]
		}
		return keys[i] < keys[j]
	})
	if ph.MaxUnauthenticated > 0 {
		fmt.Fprintf(w, "server's unauthenticated connections at most: %d (from its refusal lines)\n", ph.MaxUnauthenticated)
	}
	fmt.Fprintf(w, "server log lines:")
	if len(keys) == 0 {
		fmt.Fprint(w, " none")
	}
	for _, k := range keys {
		fmt.Fprintf(w, " %q %d;", k, ph.ServerLog[k])
	}
	fmt.Fprintln(w)
}

func joinFlags(f []string) string {
	var b bytes.Buffer
	for i, s := range f {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	return b.String()
}
