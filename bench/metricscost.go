package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// MetricsCostConfig configures RunMetricsCost.
type MetricsCostConfig struct {
	Fanout FanoutConfig
	// Rounds is how many pairs of runs, metrics off and on, to make; the
	// order alternates (off-on, on-off, ...) so that drift in background
	// load falls on both alike. 0 means 2.
	Rounds int
	// ScrapeEvery is how often /metrics is fetched while metrics are on:
	// 1 s (Prometheus usually scrapes every 15 s).
	ScrapeEvery time.Duration
	// Start starts a fresh server for one run, with its metrics on or off.
	Start func(ctx context.Context, metrics bool) (*Server, error)
}

// MetricsCostReport compares the same fan-out with the server's metrics
// off and on, from one invocation.
type MetricsCostReport struct {
	Rounds        int             `json:"rounds"`
	ScrapeSeconds float64         `json:"scrape_seconds"`
	Scrapes       int             `json:"scrapes"` // successful, over all runs with metrics on
	Off           []*FanoutReport `json:"off"`
	On            []*FanoutReport `json:"on"`
	// Medians over the rounds, and on/off ratios: a p99 ratio above 1 and
	// a rate ratio below 1 are what metrics would cost.
	OffP99    float64 `json:"off_p99_ms"`
	OnP99     float64 `json:"on_p99_ms"`
	P99Ratio  float64 `json:"p99_ratio"`
	OffRate   float64 `json:"off_delivered_per_second"`
	OnRate    float64 `json:"on_delivered_per_second"`
	RateRatio float64 `json:"rate_ratio"`
	// The median over rounds of each round's own on/off ratio: the two
	// runs of a round follow each other, so they share more of the
	// background load than runs of different rounds do.
	P99PairRatio  float64  `json:"p99_pair_ratio"`
	RatePairRatio float64  `json:"rate_pair_ratio"`
	Errors        []string `json:"errors,omitempty"`
	offRound      []int    // the round of each Off report
	onRound       []int
}

// RunMetricsCost runs cfg.Fanout against fresh servers with metrics off
// and on, scraping /metrics during the runs with them on, and compares
// p99 latency and deliveries per second.
func RunMetricsCost(ctx context.Context, cfg MetricsCostConfig) (*MetricsCostReport, error) {
	if cfg.Start == nil {
		return nil, errors.New("bench: MetricsCostConfig.Start is required")
	}
	rounds := cfg.Rounds
	if rounds <= 0 {
		rounds = 2
	}
	every := cfg.ScrapeEvery
	if every <= 0 {
		every = time.Second
	}
	rep := &MetricsCostReport{Rounds: rounds, ScrapeSeconds: every.Seconds()}
	for i := range rounds {
		order := []bool{false, true}
		if i%2 == 1 {
			order = []bool{true, false}
		}
		for _, on := range order {
			fr, err := metricsCostRun(ctx, cfg, on, every, rep)
			what := fmt.Sprintf("round %d, metrics %s", i+1, onOff(on))
			if err != nil {
				rep.Errors = append(rep.Errors, what+": "+err.Error())
			}
			if fr == nil {
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				continue
			}
			if on {
				rep.On, rep.onRound = append(rep.On, fr), append(rep.onRound, i)
			} else {
				rep.Off, rep.offRound = append(rep.Off, fr), append(rep.offRound, i)
			}
		}
	}
	p99 := func(r *FanoutReport) float64 { return r.Latency.P99 }
	rate := func(r *FanoutReport) float64 { return r.DeliveredPerSecond }
	rep.OffP99, rep.OnP99 = median(each(rep.Off, p99)), median(each(rep.On, p99))
	rep.OffRate, rep.OnRate = median(each(rep.Off, rate)), median(each(rep.On, rate))
	if rep.OffP99 > 0 {
		rep.P99Ratio = rep.OnP99 / rep.OffP99
	}
	if rep.OffRate > 0 {
		rep.RateRatio = rep.OnRate / rep.OffRate
	}
	rep.P99PairRatio, rep.RatePairRatio = rep.pairRatio(p99), rep.pairRatio(rate)
	if len(rep.Off) == 0 || len(rep.On) == 0 {
		return rep, fmt.Errorf("bench: metrics cost: %d runs off and %d on completed", len(rep.Off), len(rep.On))
	}
	return rep, nil
}

func metricsCostRun(ctx context.Context, cfg MetricsCostConfig, on bool, every time.Duration, rep *MetricsCostReport) (*FanoutReport, error) {
	srv, err := cfg.Start(ctx, on)
	if err != nil {
		return nil, err
	}
	var stop func() (int, error)
	if on {
		if srv.MetricsAddr == "" {
			srv.Close()
			return nil, errors.New("bench: the server did not say where its metrics are")
		}
		stop = srv.ScrapeMetrics(every)
	}
	fr, err := RunFanout(ctx, &srv.Target, cfg.Fanout)
	if stop != nil {
		n, serr := stop()
		rep.Scrapes += n
		if err == nil && serr != nil {
			err = serr
		}
		if err == nil && n == 0 && fr != nil && fr.SendSeconds > every.Seconds() {
			err = errors.New("bench: no scrape of /metrics succeeded")
		}
	}
	if cerr := srv.Close(); err == nil {
		err = cerr
	}
	return fr, err
}

// pairRatio is the median of on/off of f over the rounds that have both.
func (r *MetricsCostReport) pairRatio(f func(*FanoutReport) float64) float64 {
	var ratios []float64
	for i, round := range r.offRound {
		for j, other := range r.onRound {
			if other == round && f(r.Off[i]) > 0 {
				ratios = append(ratios, f(r.On[j])/f(r.Off[i]))
			}
		}
	}
	return median(ratios)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// each is f of every report.
func each(rs []*FanoutReport, f func(*FanoutReport) float64) []float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return v
}

// median of v (which it sorts); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// WriteText prints every run, then the comparison.
func (r *MetricsCostReport) WriteText(w io.Writer) {
	for i := range max(len(r.Off), len(r.On)) {
		for _, x := range []struct {
			on bool
			rs []*FanoutReport
		}{{false, r.Off}, {true, r.On}} {
			if i < len(x.rs) {
				fmt.Fprintf(w, "== round %d, metrics %s\n", i+1, onOff(x.on))
				x.rs[i].WriteText(w)
			}
		}
	}
	fmt.Fprintf(w, "metrics cost, median of %d rounds (scraping every %.0f s, %d scrapes):\n", r.Rounds, r.ScrapeSeconds, r.Scrapes)
	fmt.Fprintf(w, "  p99 latency     off %8.1f ms   on %8.1f ms   on/off %.3f\n", r.OffP99, r.OnP99, r.P99Ratio)
	fmt.Fprintf(w, "  deliveries/s    off %8.0f      on %8.0f      on/off %.3f\n", r.OffRate, r.OnRate, r.RateRatio)
	fmt.Fprintf(w, "  median of each round's on/off: p99 %.3f, deliveries/s %.3f\n", r.P99PairRatio, r.RatePairRatio)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}
