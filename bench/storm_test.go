package bench

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"securechat/transport"
)

func TestLoopbackSource(t *testing.T) {
	seen := map[string]bool{}
	for i := range 70000 {
		s := loopbackSource(blockStorm, i)
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() || !a.IsLoopback() {
			t.Fatalf("source %d: %q is not an IPv4 loopback address", i, s)
		}
		if b := a.As4(); b[1] != blockStorm || b[2] == 0 && b[3] == 0 {
			t.Fatalf("source %d: %s outside 127.%d.0.0/16 or its .0.0", i, s, blockStorm)
		}
		if i < 65535 && seen[s] {
			t.Fatalf("source %d: %s handed out twice", i, s)
		}
		seen[s] = true
	}
	if len(seen) != 65535 {
		t.Errorf("%d distinct sources, want 65535", len(seen))
	}
	if loopbackSource(blockFresh, 0) == loopbackSource(blockStorm, 0) || loopbackSource(blockFresh, 0) == stormExemptSource {
		t.Error("blocks overlap")
	}
}

func TestLogCounter(t *testing.T) {
	var passed bytes.Buffer
	l := newLogCounter(&passed)
	input := `{"time":"x","level":"INFO","msg":"connection refused: too many unauthenticated connections","unauthenticated":97}
{"level":"WARN","msg":"login failed","user":"storm0"}
{"level":"INFO","msg":"connection refused: too many unauthenticated connections","unauthenticated":100}
not json at all
{"level":"ERROR","msg":"accept failed; retrying"}
{"level":"INFO","msg":"connection refused","src":"127.2.0.1","reason":"source penalised"}
{"level":"INFO","msg":"connection refused","reason":"source penalised","count":41,"within":"1s"}

`
	// Written in pieces that cut lines anywhere, as a pipe delivers them.
	for len(input) > 0 {
		n := min(len(input), 7)
		l.Write([]byte(input[:n]))
		input = input[n:]
	}
	got := l.snapshot()
	want := map[string]int64{
		"connection refused: too many unauthenticated connections": 2,
		"login failed":            1,
		"accept failed; retrying": 1,
		"(not a JSON log line)":   1,
		// By message and by reason, a line with a count standing for
		// that many.
		"connection refused":                   42,
		"connection refused: source penalised": 42,
	}
	if len(got) != len(want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q counted %d, want %d", k, got[k], v)
		}
	}
	if p := passed.String(); !strings.Contains(p, "not json at all\n") || !strings.Contains(p, "accept failed") || strings.Contains(p, "login failed") {
		t.Errorf("passed on %q; want the error-level and the non-JSON lines only", p)
	}
	if n := l.takeUnauth(); n != 100 {
		t.Errorf("unauthenticated at most %d, want 100", n)
	}
	if n := l.takeUnauth(); n != 0 {
		t.Errorf("second take %d, want 0", n)
	}
	l.Write([]byte(`{"level":"WARN","msg":"login failed"}` + "\n"))
	d := diffCounts(l.snapshot(), got)
	if len(d) != 1 || d["login failed"] != 1 {
		t.Errorf("diff %v, want one more login failed", d)
	}
}

func TestProbeStats(t *testing.T) {
	ps := &ProbeStats{Count: 3}
	refused := errors.New("connection reset by peer")
	ps.record(300*time.Millisecond, 1, nil, nil)
	ps.record(1500*time.Millisecond, 4, refused, nil)
	ps.record(100*time.Millisecond, 1, nil, nil)
	ps.summarise()
	if ps.Succeeded != 3 || ps.FirstTry != 2 || ps.Attempts != 6 || ps.P50MS != 300 || ps.MaxMS != 1500 {
		t.Fatalf("stats %+v", ps)
	}
	if ps.FailedAttempt != refused.Error() || ps.FailedLogin != "" {
		t.Errorf("errors %q, %q", ps.FailedAttempt, ps.FailedLogin)
	}
	if !ps.allWithin(2*time.Second, false) || ps.allWithin(time.Second, false) || ps.allWithin(2*time.Second, true) {
		t.Error("allWithin misjudges")
	}
	ps.Count++
	ps.record(10*time.Second, 90, refused, errors.New("no login within 10s"))
	ps.summarise()
	if ps.Succeeded != 3 || ps.MaxMS != 10000 || ps.FailedLogin == "" || ps.allWithin(time.Minute, false) {
		t.Errorf("a failed probe was not counted as one: %+v", ps)
	}
	var none *ProbeStats
	if none.allWithin(time.Hour, false) {
		t.Error("no probes met a goal")
	}
}

func TestStormJudge(t *testing.T) {
	probes := func(maxMS float64, firstTry int) *ProbeStats {
		return &ProbeStats{Count: 2, Succeeded: 2, FirstTry: firstTry, P50MS: maxMS / 2, MaxMS: maxMS}
	}
	fan := func(p99 float64, lost int64) *FanoutReport {
		return &FanoutReport{Clients: 10, Connected: 10, Senders: 1, RatePerSender: 10, Expected: 100, Lost: lost,
			Latency: LatencySummary{P99: p99}}
	}
	for _, c := range []struct {
		name  string
		storm *StormPhase
		ratio float64
		want  [3]bool // fresh, exempt, fan-out
	}{
		{"all met", &StormPhase{Fresh: probes(1900, 0), Exempt: probes(900, 2), Fanout: fan(20, 0)}, 2, [3]bool{true, true, true}},
		{"slow fresh", &StormPhase{Fresh: probes(2100, 2), Exempt: probes(900, 2), Fanout: fan(20, 0)}, 2, [3]bool{false, true, true}},
		{"exempt retried", &StormPhase{Fresh: probes(100, 2), Exempt: probes(300, 1), Fanout: fan(21, 0)}, 2.1, [3]bool{true, false, false}},
		{"lost", &StormPhase{Fresh: probes(100, 2), Exempt: probes(100, 2), Fanout: fan(10, 1)}, 1, [3]bool{true, true, false}},
	} {
		r := &StormReport{Baseline: &StormPhase{Fresh: probes(100, 2), Exempt: probes(100, 2), Fanout: fan(10, 0)},
			Storm: c.storm, P99Ratio: c.ratio}
		r.judge(StormConfig{})
		if len(r.Targets) != 3 {
			t.Fatalf("%s: %d verdicts, want 3 (no QUIC phase)", c.name, len(r.Targets))
		}
		for i, want := range c.want {
			if r.Targets[i].Met != want {
				t.Errorf("%s: %s met = %v, want %v", c.name, r.Targets[i].Name, r.Targets[i].Met, want)
			}
		}
	}
	// The stream-less goal is the delay over the QUIC baseline's median.
	r := &StormReport{Baseline: &StormPhase{}, Storm: &StormPhase{},
		QUICBaseline: &StormPhase{Fresh: probes(200, 2)}, QUICFlood: &StormPhase{Fresh: probes(1050, 2)},
		Streamless: &StreamlessLoad{AchievedRate: 200}}
	r.judge(StormConfig{})
	if q := r.Targets[len(r.Targets)-1]; q.ID != 12 || !q.Met || !strings.Contains(q.Measured, "delay 950 ms") {
		t.Errorf("stream-less verdict %+v; want met with a delay of 950 ms", q)
	}
	r.QUICFlood.Fresh = probes(1200, 2)
	r.Targets = nil
	r.judge(StormConfig{})
	if q := r.Targets[len(r.Targets)-1]; q.Met {
		t.Errorf("delay of 1100 ms met the 1 s goal: %+v", q)
	}
}

func TestStormConfigBounds(t *testing.T) {
	good := StormConfig{Transport: transport.TCP, Command: []string{"securechat", "serve"},
		Fanout:  FanoutConfig{Clients: 2, Senders: 1, Rate: 1, Duration: time.Second},
		Sources: 2, Rate: 10, WrongPasswords: 3, Probes: 1}
	if err := good.check(); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	for name, mutate := range map[string]func(*StormConfig){
		"no command":      func(c *StormConfig) { c.Command = nil },
		"no sources":      func(c *StormConfig) { c.Sources = 0 },
		"too many":        func(c *StormConfig) { c.Sources = MaxStormSources + 1 },
		"zero rate":       func(c *StormConfig) { c.Rate = 0 },
		"no passwords":    func(c *StormConfig) { c.WrongPasswords = 0 },
		"no probes":       func(c *StormConfig) { c.Probes = 0 },
		"quic no time":    func(c *StormConfig) { c.QUICRate = 5 },
		"bad fan-out":     func(c *StormConfig) { c.Fanout.Senders = 3 },
		"negative bound":  func(c *StormConfig) { c.MaxInFlight = -1 },
		"no transport":    func(c *StormConfig) { c.Transport = nil },
		"negative q rate": func(c *StormConfig) { c.QUICRate = -1 },
	} {
		c := good
		mutate(&c)
		if err := c.check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
