package bench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"securechat/credstore"
	"securechat/handshake"
	"securechat/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Count() != 0 {
		t.Fatal("empty histogram is not zero")
	}
	// 1..1000 ms: the q-quantile is q×1000 ms, within the bucket width.
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	h.Record(-time.Second) // clamps to zero
	if h.Count() != 1001 {
		t.Fatalf("count %d, want 1001", h.Count())
	}
	if h.Max() != time.Second {
		t.Fatalf("max %s, want 1s", h.Max())
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.Quantile(c.q)
		if got > c.want || float64(c.want-got) > float64(c.want)/histSub*1.01 {
			t.Errorf("q%.2f = %s, want %s within 1/%d below", c.q, got, c.want, histSub)
		}
	}
	s := h.Summary()
	if s.Count != 1001 || s.Max != 1000 || s.P50 > s.P90 || s.P90 > s.P99 || s.P99 > s.Max {
		t.Errorf("summary %+v not ordered", s)
	}
}

func TestHistogramBucketsAreMonotonic(t *testing.T) {
	prev := -1
	for _, us := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 1<<40 + 12345, 1<<63 + 1} {
		i := histIndex(us)
		if i < prev || i >= histBuckets {
			t.Fatalf("index of %d is %d after %d (of %d)", us, i, prev, histBuckets)
		}
		if low := histLow(i); low > us || us-low > us/histSub {
			t.Fatalf("bucket %d starts at %d, too far from %d", i, low, us)
		}
		prev = i
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS([]byte("Name:\tx\nVmPeak:\t  999 kB\nVmRSS:\t   1234 kB\n"))
	if err != nil || got != 1234*1024 {
		t.Fatalf("got %d, %v", got, err)
	}
	for _, bad := range []string{"VmRSS: 12 MB\n", "Name: x\n", "VmRSS: -1 kB\n"} {
		if _, err := parseVmRSS([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	self, err := ProcessRSS(0)
	if err != nil || self <= 0 {
		t.Fatalf("own RSS %d, %v", self, err)
	}
}

func TestRaiseFileLimit(t *testing.T) {
	n, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if n < 64 {
		t.Fatalf("file limit %d", n)
	}
	if m := DescribeMachine(n); m.CPUs < 1 || m.GoVersion == "" || m.FDLimit != n {
		t.Fatalf("machine %+v", m)
	}
}

func TestProvision(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.txt")
	pw := []byte("shared-bench-password")
	if err := Provision(path, "load", 3, pw, BenchParams); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	text, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(text), "# securechat benchmark accounts") || !strings.Contains(string(text), "never let a production server load this file") {
		t.Errorf("file is not labelled:\n%s", text)
	}
	store, err := credstore.Load(path, &credstore.Options{Params: BenchParams, NoRehash: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(store.Users(), ","); got != "load0,load1,load2" {
		t.Fatalf("users %s", got)
	}
	if err := store.Verify(context.Background(), "load2", pw); err != nil {
		t.Errorf("load2 does not log in: %v", err)
	}
	if err := store.Verify(context.Background(), "load1", []byte("wrong")); !errors.Is(err, credstore.ErrAuthFailed) {
		t.Errorf("wrong password: %v", err)
	}
	if err := Provision(path, "load", 1, pw, BenchParams); !errors.Is(err, os.ErrExist) {
		t.Errorf("second provision into the same file: %v, want ErrExist", err)
	}
	for _, c := range []struct {
		prefix string
		n      int
	}{{"Bad", 1}, {"ok", 0}, {strings.Repeat("x", 32), 1}} {
		if err := Provision(filepath.Join(t.TempDir(), "c"), c.prefix, c.n, pw, BenchParams); err == nil {
			t.Errorf("prefix %q, %d accounts: accepted", c.prefix, c.n)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	ctx := context.Background()
	for _, ok := range []string{"127.0.0.1:7777", "[::1]:7777", "127.3.2.1:1", "localhost:7777"} {
		if err := CheckLoopback(ctx, ok, false); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"192.0.2.1:7777", "[2001:db8::1]:7777", ":7777", "0.0.0.0:7777", "nonsense"} {
		err := CheckLoopback(ctx, bad, false)
		if err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := CheckLoopback(ctx, "192.0.2.1:7777", true); err != nil {
		t.Errorf("--allow-remote refused: %v", err)
	}
	if err := CheckLoopback(ctx, "192.0.2.1", true); err == nil {
		t.Error("an address without a port was accepted")
	}
}

// startTestServer runs an in-process server with n accounts over tr.
func startTestServer(t *testing.T, tr transport.Transport, n int) *Server {
	t.Helper()
	srv, err := StartServer(context.Background(), ServerConfig{Transport: tr, Accounts: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server close: %v", err)
		}
	})
	if !srv.InProcess || !srv.Target.InProcess || srv.Target.Addr == "" || !strings.HasPrefix(srv.Target.Fingerprint, "SHA256:") {
		t.Fatalf("server target %+v", srv.Target)
	}
	return srv
}

func checkFanout(t *testing.T, rep *FanoutReport, clients int) {
	t.Helper()
	if rep.Connected != clients || rep.ConnectErrors != 0 || rep.Disconnects != 0 {
		t.Fatalf("connected %d of %d, %d errors, %d disconnects: %v", rep.Connected, clients, rep.ConnectErrors, rep.Disconnects, rep.Errors)
	}
	if rep.Sent == 0 || rep.Rejected != 0 {
		t.Fatalf("sent %d, rejected %d", rep.Sent, rep.Rejected)
	}
	if rep.Expected != rep.Sent*int64(clients) || rep.Delivered != rep.Expected || rep.Lost != 0 {
		t.Fatalf("sent %d to %d: expected %d, delivered %d, lost %d", rep.Sent, clients, rep.Expected, rep.Delivered, rep.Lost)
	}
	if rep.Latency.Count != uint64(rep.Delivered) || rep.Latency.P50 <= 0 || rep.Latency.P50 > rep.Latency.P99 || rep.Latency.P99 > rep.Latency.Max {
		t.Fatalf("latency %+v for %d deliveries", rep.Latency, rep.Delivered)
	}
	if rep.DeliveredPerSecond <= 0 || len(rep.Errors) != 0 {
		t.Fatalf("delivered/s %g, errors %v", rep.DeliveredPerSecond, rep.Errors)
	}
}

func TestFanoutSmoke(t *testing.T) {
	for _, tr := range []transport.Transport{transport.TCP, transport.QUIC} {
		t.Run(tr.Name(), func(t *testing.T) {
			srv := startTestServer(t, tr, 5)
			var lines []string
			rep, err := RunFanout(context.Background(), &srv.Target, FanoutConfig{
				Clients: 5, Senders: 2, Rate: 20, Duration: time.Second, TextSize: 100,
				Progress: func(l string) { lines = append(lines, l) },
			})
			if err != nil {
				t.Fatal(err)
			}
			checkFanout(t, rep, 5)
			// 2 senders × 20/s × 1 s, give or take the edges.
			if rep.Sent < 30 || rep.Sent > 42 {
				t.Errorf("sent %d at 2 × 20/s for 1 s", rep.Sent)
			}
			if rep.Server != "in process" || rep.RSSScope == "" || rep.RSSBefore <= 0 {
				t.Errorf("server %q, rss %q %d", rep.Server, rep.RSSScope, rep.RSSBefore)
			}
			if len(lines) == 0 || lines[len(lines)-1] != "" {
				t.Errorf("progress lines %q do not end with a clear", lines)
			}
		})
	}
}

func TestFanoutSaturationSmoke(t *testing.T) {
	srv := startTestServer(t, transport.TCP, 3) // 5 clients share 3 accounts
	rep, err := RunFanout(context.Background(), &srv.Target, FanoutConfig{
		Clients: 5, Senders: 2, Rate: 0, Window: 4, Duration: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFanout(t, rep, 5)
	if rep.Window != 4 {
		t.Errorf("window %d", rep.Window)
	}
}

func TestFanoutConfigBounds(t *testing.T) {
	srv := startTestServer(t, transport.TCP, 1)
	for _, cfg := range []FanoutConfig{
		{Clients: 0, Senders: 1, Duration: time.Second},
		{Clients: 2, Senders: 3, Duration: time.Second},
		{Clients: 2, Senders: 1, Duration: 0},
		{Clients: 2, Senders: 1, Duration: time.Hour},
		{Clients: 2, Senders: 1, Duration: time.Second, Rate: -1},
		{Clients: MaxClients + 1, Senders: 1, Duration: time.Second},
	} {
		if _, err := RunFanout(context.Background(), &srv.Target, cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	bad := srv.Target
	bad.Fingerprint = ""
	if _, err := RunFanout(context.Background(), &bad, FanoutConfig{Clients: 1, Senders: 1, Duration: time.Second}); err == nil {
		t.Error("a target without a fingerprint was accepted")
	}
}

func TestFanoutWrongHostKeyFails(t *testing.T) {
	srv := startTestServer(t, transport.TCP, 2)
	bad := srv.Target
	bad.Fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	rep, err := RunFanout(context.Background(), &bad, FanoutConfig{Clients: 2, Senders: 1, Rate: 1, Duration: time.Second})
	if err == nil || rep == nil || rep.ConnectErrors != 2 || !strings.Contains(errorText(rep.Errors), "is not the expected") {
		t.Fatalf("err %v, report %+v", err, rep)
	}
}

func TestIdleSmoke(t *testing.T) {
	srv := startTestServer(t, transport.TCP, 2)
	rep, err := RunIdle(context.Background(), &srv.Target, IdleConfig{Clients: 5, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Connected != 5 || rep.ConnectErrors != 0 || rep.Disconnects != 0 || len(rep.Errors) != 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep.HoldSeconds < 1 || rep.ConnectsPerSecond <= 0 || rep.RSSBefore <= 0 || rep.RSSAfter <= 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep.HeapAfter != nil {
		t.Error("an in-process server reported heap statistics of its own")
	}
	if _, err := srv.HeapStats(context.Background()); err == nil {
		t.Error("HeapStats of an in-process server did not fail")
	}
}

func TestThroughputSmoke(t *testing.T) {
	const size = 1 << 20
	rep, err := RunThroughput(context.Background(), ThroughputConfig{Size: size, PrimitiveTime: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{RowPrimitive, RowRecordLayer, RowRaw("tcp"), RowSecure("tcp"), RowRaw("quic"), RowSecure("quic")}
	if len(rep.Rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rep.Rows), len(want))
	}
	for i, r := range rep.Rows {
		if r.Name != want[i] || r.MBps <= 0 || r.Seconds <= 0 {
			t.Errorf("row %d: %+v, want %s", i, r, want[i])
		}
		if i >= 2 && r.Bytes != size {
			t.Errorf("%s moved %d bytes, want %d", r.Name, r.Bytes, size)
		}
		if (r.Baseline != "") != (r.Ratio > 0) {
			t.Errorf("%s: baseline %q, ratio %g", r.Name, r.Baseline, r.Ratio)
		}
	}
	if _, err := RunThroughput(context.Background(), ThroughputConfig{Size: -1}); err == nil {
		t.Error("negative size accepted")
	}
}

func TestHandshakeSmoke(t *testing.T) {
	rep, err := RunHandshake(context.Background(), HandshakeConfig{
		Concurrency: 2, Duration: 200 * time.Millisecond, MaxCount: 50,
		Groups: []handshake.Group{handshake.GroupX25519, handshake.GroupMLKEM768X25519},
		Logins: []string{LoginBench},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{RowTLSX25519, RowHandshake(handshake.GroupX25519), RowTLSHybrid,
		RowHandshake(handshake.GroupMLKEM768X25519), RowLogin(handshake.GroupX25519, LoginBench, BenchParams)}
	if len(rep.Rows) != len(want) {
		t.Fatalf("rows %+v", rep.Rows)
	}
	for i, r := range rep.Rows {
		if r.Name != want[i] || r.Count == 0 || r.Count > 50 || r.Errors != 0 || r.PerSecond <= 0 || r.MeanMS <= 0 {
			t.Errorf("row %d: %+v, want %s", i, r, want[i])
		}
	}
	if rep.Rows[1].Baseline != RowTLSX25519 || rep.Rows[1].Ratio <= 0 || rep.Rows[3].Baseline != RowTLSHybrid {
		t.Errorf("baselines: %+v", rep.Rows)
	}
	if _, err := RunHandshake(context.Background(), HandshakeConfig{Logins: []string{"cheap"}, Groups: []handshake.Group{}}); err == nil {
		t.Error("unknown login cost accepted")
	}
}

// TestHandshakeKeyLoginRow: the key login row logs in by key against an
// authorized keys file, and is compared with the handshake without login
// when the default-cost password row does not run.
func TestHandshakeKeyLoginRow(t *testing.T) {
	rep, err := RunHandshake(context.Background(), HandshakeConfig{
		Concurrency: 2, Duration: 200 * time.Millisecond, MaxCount: 50,
		Groups: []handshake.Group{handshake.GroupX25519},
		Logins: []string{LoginKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	last := rep.Rows[len(rep.Rows)-1]
	if last.Name != RowKeyLogin(handshake.GroupX25519) || last.Count == 0 || last.Errors != 0 {
		t.Fatalf("key login row: %+v (first error %q)", last, last.FirstError)
	}
	if last.Baseline != RowHandshake(handshake.GroupX25519) || last.Ratio <= 0 {
		t.Errorf("key login baseline %q, ratio %g", last.Baseline, last.Ratio)
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a parenthesis, then fields 3 to 17.
	stat := "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil || got != 4*time.Second {
		t.Fatalf("got %s, %v; want 4s (400 ticks)", got, err)
	}
	for _, bad := range []string{"42 x S 1", "42 (x) S 1 2 3", "42 (x) S 1 2 3 4 5 6 7 8 9 10 -1 0 0"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, err := ProcessCPU(0); err != nil {
		t.Fatal(err)
	}
}

func TestTargetsSmoke(t *testing.T) {
	rep, err := RunTargets(context.Background(), TargetsConfig{Scale: 0.001, Metrics: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) != 0 {
		t.Fatalf("scenario errors: %v", rep.Errors)
	}
	ids := map[int]int{}
	for _, tr := range rep.Targets {
		ids[tr.ID]++
		if tr.Measured == "" || tr.Goal == "" {
			t.Errorf("target %+v", tr)
		}
	}
	for _, id := range []int{1, 2, 3, 4, 5, 6, 7, 8, 13} {
		if ids[id] == 0 {
			t.Errorf("target %d was not judged", id)
		}
	}
	if ids[13] != 2 || len(rep.MetricsCost) != 2 {
		t.Errorf("metrics cost: %d rows, %d comparisons", ids[13], len(rep.MetricsCost))
	}
	// In process, the memory target cannot be met: the RSS is not the
	// server's alone.
	for _, tr := range rep.Targets {
		if tr.ID == 7 && tr.Met {
			t.Errorf("idle memory judged met with an in-process server: %+v", tr)
		}
		if (tr.ID == 5 || tr.ID == 8) && !tr.Met {
			t.Errorf("target %d missed at a tiny scale: %+v", tr.ID, tr)
		}
	}
	if len(rep.Fanout) != 3 || rep.Fanout[2].RatePerSender != 0 || rep.Idle == nil || rep.Handshake == nil || rep.Throughput == nil {
		t.Fatalf("reports missing: %+v", rep)
	}
	var sb strings.Builder
	rep.WriteText(&sb)
	if !strings.Contains(sb.String(), "verdict") || !strings.Contains(sb.String(), "crypto/tls") {
		t.Errorf("text report:\n%s", sb.String())
	}
}

func TestLeadingIntAndEventKind(t *testing.T) {
	rest := []byte("12 0 1700000000123456789 xxxx")
	var got []int64
	for range 3 {
		n, r, ok := leadingInt(rest)
		if !ok {
			t.Fatalf("no number at %q", rest)
		}
		got = append(got, n)
		rest = r
	}
	if got[0] != 12 || got[1] != 0 || got[2] != 1700000000123456789 || string(rest) != "xxxx" {
		t.Fatalf("got %v, rest %q", got, rest)
	}
	for _, bad := range []string{"", "x1", " 1", "99999999999999999999"} {
		if _, _, ok := leadingInt([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	for p, want := range map[string]string{
		`{"t":"msg","mid":1}`: "msg", `{"t":"ping","id":"s1"}`: "ping", `{"t":"room"}`: "other",
		`{"t":"ack"`: "ack", `{"x":1}`: "", `{"t":"err`: "",
	} {
		if got := eventKind([]byte(p)); got != want {
			t.Errorf("eventKind(%s) = %q, want %q", p, got, want)
		}
	}
	if a := testing.AllocsPerRun(100, func() {
		leadingInt([]byte("123 4"))
		eventKind([]byte(`{"t":"msg"}`))
	}); a != 0 {
		t.Errorf("%v allocations per parse", a)
	}
}

// An in-process server with metrics serves them while a fan-out runs, and
// RunMetricsCost compares runs with them off and on.
func TestMetricsCostSmoke(t *testing.T) {
	var started []bool
	rep, err := RunMetricsCost(context.Background(), MetricsCostConfig{
		Fanout:      FanoutConfig{Clients: 3, Senders: 1, Rate: 20, Duration: 600 * time.Millisecond},
		Rounds:      2,
		ScrapeEvery: 100 * time.Millisecond,
		Start: func(ctx context.Context, on bool) (*Server, error) {
			started = append(started, on)
			srv, err := StartServer(ctx, ServerConfig{Transport: transport.TCP, Accounts: 3, Metrics: on})
			if err == nil && on != (srv.MetricsAddr != "") {
				t.Errorf("metrics %v, metrics address %q", on, srv.MetricsAddr)
			}
			return srv, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, true, true, false}; !slices.Equal(started, want) {
		t.Errorf("servers started with metrics %v, want %v (alternating pairs)", started, want)
	}
	if len(rep.Off) != 2 || len(rep.On) != 2 || rep.Scrapes < 2 {
		t.Fatalf("%d off, %d on, %d scrapes", len(rep.Off), len(rep.On), rep.Scrapes)
	}
	for _, r := range append(rep.Off, rep.On...) {
		checkFanout(t, r, 3)
	}
	if rep.P99Ratio <= 0 || rep.RateRatio <= 0 {
		t.Errorf("ratios %g %g", rep.P99Ratio, rep.RateRatio)
	}
}

// Each round's runs are compared with each other before the median.
func TestMetricsCostPairRatio(t *testing.T) {
	run := func(rate float64) *FanoutReport { return &FanoutReport{DeliveredPerSecond: rate} }
	r := &MetricsCostReport{
		Off: []*FanoutReport{run(100), run(200), run(400)}, offRound: []int{0, 1, 2},
		On: []*FanoutReport{run(440), run(110), run(180)}, onRound: []int{2, 0, 1},
	}
	got := r.pairRatio(func(r *FanoutReport) float64 { return r.DeliveredPerSecond })
	if got != 1.1 { // 1.1, 0.9, 1.1
		t.Errorf("pair ratio %g, want 1.1", got)
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median %g, want 2.5", m)
	}
}

// A signed run: the senders log in by key and sign, the server checks and
// relays the signatures, and the sample of receivers verifies every
// message; without the senders' keys the run is refused.
func TestFanoutSigned(t *testing.T) {
	srv, err := StartServer(context.Background(), ServerConfig{Transport: transport.TCP, Accounts: 6, KeyedAccounts: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if len(srv.Target.Keys) != 2 {
		t.Fatalf("%d keys for 2 keyed accounts", len(srv.Target.Keys))
	}
	rep, err := RunFanout(context.Background(), &srv.Target, FanoutConfig{
		Clients: 6, Senders: 2, Rate: 20, Duration: time.Second, Signed: true, VerifySample: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFanout(t, rep, 6)
	if !rep.Signed || rep.Verifiers != 3 || rep.VerifyFailed != 0 || rep.Verified != rep.Sent*3 {
		t.Errorf("signed %v: %d verifiers verified %d of %d sent, %d failed", rep.Signed, rep.Verifiers, rep.Verified, rep.Sent, rep.VerifyFailed)
	}

	plain := startTestServer(t, transport.TCP, 3)
	_, err = RunFanout(context.Background(), &plain.Target, FanoutConfig{
		Clients: 3, Senders: 1, Rate: 10, Duration: time.Second, Signed: true,
	})
	if err == nil || !strings.Contains(err.Error(), "no login key") {
		t.Errorf("a signed run with password logins: err %v, want no login key", err)
	}
}

// Benchmark accounts are shared by many clients: the server a run starts
// must not cap sessions per account (serve's default is 10), or the
// connect storm and idle targets refuse most of their clients.
func TestBenchServerLiftsSessionCap(t *testing.T) {
	srv := startTestServer(t, transport.TCP, 1)
	rep, err := RunFanout(context.Background(), &srv.Target, FanoutConfig{
		Clients: 12, Senders: 1, Rate: 20, Duration: 300 * time.Millisecond, ConnectConcurrency: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFanout(t, rep, 12)
	if !slices.Contains(serveLimitFlags, "--max-sessions") {
		t.Errorf("serveLimitFlags %q do not lift serve's --max-sessions", serveLimitFlags)
	}
}
