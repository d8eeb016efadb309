package bench

import (
	"context"
	"fmt"
	"io"

	"securechat/internal/cmderr"
)

// What each bench command runs once its options are checked and its
// Output started: the scenario with the output's progress line, then the
// report. Each returns the run's error or else the report's verdict.

// end writes rep when the run got one (ok) and returns the run's error,
// else verdict's.
func (o *Output) end(scenario string, rep interface{ WriteText(io.Writer) }, ok bool, err error, verdict func() error) error {
	if !ok {
		o.Stop()
		return err
	}
	if ferr := o.Finish(scenario, rep); ferr != nil {
		return ferr
	}
	if err != nil || verdict == nil {
		return err
	}
	return verdict()
}

// Throughput runs bench throughput.
func (o *Output) Throughput(ctx context.Context, cfg ThroughputConfig) error {
	cfg.Progress = o.Progress
	rep, err := RunThroughput(ctx, cfg)
	return o.end("throughput", rep, err == nil, err, nil)
}

// Handshake runs bench handshake.
func (o *Output) Handshake(ctx context.Context, cfg HandshakeConfig) error {
	cfg.Progress = o.Progress
	rep, err := RunHandshake(ctx, cfg)
	return o.end("handshake", rep, err == nil, err, func() error { return rep.Err() })
}

// Idle runs bench idle against the server target opens.
func (o *Output) Idle(ctx context.Context, target TargetOptions, cfg IdleConfig) error {
	t, srv, err := target.Open(ctx, min(cfg.Clients, 100), false, 0)
	if err != nil {
		o.Stop()
		return err
	}
	cfg.Progress = o.Progress
	if srv != nil && !srv.InProcess && target.Server == "child" {
		cfg.HeapStats = srv.HeapStats
	}
	rep, err := RunIdle(ctx, t, cfg)
	if srv != nil {
		if cerr := srv.Close(); err == nil {
			err = cerr
		}
	}
	return o.end("idle", rep, rep != nil, err, func() error { return rep.Err() })
}

// Storm runs bench storm.
func (o *Output) Storm(ctx context.Context, cfg StormConfig) error {
	cfg.Progress, cfg.Fanout.Progress = o.Progress, o.Progress
	rep, err := RunStorm(ctx, cfg)
	return o.end("storm", rep, rep != nil, err, func() error { return rep.Err() })
}

// Targets runs bench targets.
func (o *Output) Targets(ctx context.Context, cfg TargetsConfig) error {
	cfg.Progress = o.Progress
	rep, err := RunTargets(ctx, cfg)
	return o.end("targets", rep, rep != nil, err, func() error { return rep.Err() })
}

// FanoutOptions are the flags of bench fanout beyond its FanoutConfig.
type FanoutOptions struct {
	Target        TargetOptions
	Store, Signed string // off, on or compare
	VerifySample  int
	// SignedRounds is how many unsigned/signed pairs --signed compare
	// runs, the order alternating, with the median ratios reported.
	SignedRounds  int
	Metrics       bool // compare the server's metrics off and on
	MetricsRounds int
}

// Check validates the options, before the output starts.
func (f FanoutOptions) Check(cfg FanoutConfig) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	if f.Metrics {
		if f.Store != "off" {
			return cmderr.Usagef("--metrics and --store compare different things: give one")
		}
		if f.Target.Addr != "" {
			return cmderr.Usagef("--metrics starts its own servers; it cannot be used with --addr")
		}
		if f.MetricsRounds < 1 || f.MetricsRounds > 20 {
			return cmderr.Usagef("--metrics-rounds %d: want 1 to 20", f.MetricsRounds)
		}
		_, err := f.metricsServer(cfg)
		return err
	}
	stores, signs, err := f.phases()
	if err != nil {
		return err
	}
	if len(stores) == 2 && len(signs) == 2 {
		return cmderr.Usagef("--store compare and --signed compare: one comparison at a time")
	}
	external := f.Target.Addr != "" || f.Target.Server == "serve"
	if f.Store != "off" && external {
		return cmderr.Usagef("--store: the server this scenario starts (--server child or inproc) is the one it can set up")
	}
	if f.Signed != "off" && external {
		return cmderr.Usagef("--signed: the server this scenario starts (--server child or inproc) is the one it can give the senders' keys")
	}
	if n := f.VerifySample; f.Signed != "off" && (n < 1 || n > cfg.Clients) {
		return cmderr.Usagef("--verify-sample %d: want 1 to --clients", n)
	}
	if n := f.SignedRounds; n != 0 && n != 1 && (f.Signed != "compare" || n < 1 || n > 20) {
		return cmderr.Usagef("--signed-rounds %d: want 1 to 20, with --signed compare", n)
	}
	return nil
}

func (f FanoutOptions) phases() (stores, signs []bool, err error) {
	if stores, err = offOnCompare("store", f.Store); err == nil {
		signs, err = offOnCompare("signed", f.Signed)
	}
	return stores, signs, err
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
	return nil, cmderr.Usagef("--%s %q: want off, on or compare", flag, v)
}

// Fanout runs bench fanout: one run, or two compared (the chat database
// or signed messages off and on), or the metrics comparison.
func (o *Output) Fanout(ctx context.Context, f FanoutOptions, cfg FanoutConfig) error {
	if f.Metrics {
		return o.fanoutMetrics(ctx, f, cfg)
	}
	stores, signs, err := f.phases()
	if err != nil {
		o.Stop()
		return err
	}
	compare := func(reps []*FanoutReport) interface{ WriteText(io.Writer) } {
		if len(signs) == 2 {
			return CompareSigned(reps[0], reps[1])
		}
		return CompareStore(reps[0], reps[1])
	}
	cfg.Progress = o.Progress
	if len(signs) == 2 && f.SignedRounds > 1 {
		return o.fanoutSignedRounds(ctx, f, cfg)
	}
	var reps []*FanoutReport
	for _, withStore := range stores {
		for _, signed := range signs {
			rep, err := f.runPhase(ctx, cfg, withStore, signed)
			if rep == nil {
				o.Stop()
				return err
			}
			if f.Store != "off" {
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
				return o.end("fanout", out, true, err, nil)
			}
		}
	}
	if len(reps) == 1 {
		return o.Finish("fanout", reps[0])
	}
	return o.Finish("fanout", compare(reps))
}

// runPhase runs one fan-out on a server of its own, with the chat
// database and signed messages as asked.
func (f FanoutOptions) runPhase(ctx context.Context, cfg FanoutConfig, withStore, signed bool) (*FanoutReport, error) {
	keyed := 0
	if signed {
		keyed = cfg.Senders
	}
	t, srv, err := f.Target.Open(ctx, cfg.Clients, withStore, keyed)
	if err != nil {
		return nil, err
	}
	cfg.Signed, cfg.VerifySample = signed, f.VerifySample
	rep, err := RunFanout(ctx, t, cfg)
	if srv != nil {
		if cerr := srv.Close(); err == nil {
			err = cerr
		}
	}
	return rep, err
}

// fanoutSignedRounds is --signed compare with --signed-rounds: pairs of
// runs whose order alternates (unsigned first, then signed first), so
// that whatever favours a run's place in the invocation (a warmer
// machine, a colder cache) falls on both sides alike.
func (o *Output) fanoutSignedRounds(ctx context.Context, f FanoutOptions, cfg FanoutConfig) error {
	rounds := &SignedRounds{}
	for r := range f.SignedRounds {
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		var unsigned, signed *FanoutReport
		for _, s := range order {
			rep, err := f.runPhase(ctx, cfg, false, s)
			if rep == nil {
				o.Stop()
				return err
			}
			if err == nil {
				err = rep.Err()
			}
			if err != nil {
				return o.end("fanout", rep, true, err, nil)
			}
			if s {
				signed = rep
			} else {
				unsigned = rep
			}
		}
		rounds.Pairs = append(rounds.Pairs, CompareSigned(unsigned, signed))
	}
	rounds.summarize()
	return o.Finish("fanout", rounds)
}

// metricsServer is the server each run of --metrics starts.
func (f FanoutOptions) metricsServer(cfg FanoutConfig) (ServerConfig, error) {
	tr, groups, accounts, err := f.Target.parse(cfg.Clients)
	if err != nil {
		return ServerConfig{}, err
	}
	return f.Target.serverConfig(tr, accounts, groups)
}

// fanoutMetrics is bench fanout --metrics.
func (o *Output) fanoutMetrics(ctx context.Context, f FanoutOptions, cfg FanoutConfig) error {
	scfg, err := f.metricsServer(cfg)
	if err != nil {
		o.Stop()
		return err
	}
	cfg.Progress = o.Progress
	rep, err := RunMetricsCost(ctx, MetricsCostConfig{
		Fanout: cfg,
		Rounds: f.MetricsRounds,
		Start: func(ctx context.Context, on bool) (*Server, error) {
			sc := scfg
			sc.Metrics = on
			return StartServer(ctx, sc)
		},
	})
	return o.end("fanout-metrics", rep, rep != nil, err, func() error {
		if len(rep.Errors) > 0 {
			return fmt.Errorf("bench: %d runs failed", len(rep.Errors))
		}
		return nil
	})
}
