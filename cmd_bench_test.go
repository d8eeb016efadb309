package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"securechat/bench"
	"securechat/bench/benchcmd"
	"securechat/credstore"
	"securechat/transport"
)

const benchHelperEnv = "SECURECHAT_TEST_BENCH_HELPER"

// TestBenchServerHelperProcess is not a test: re-executed by the tests
// below as the child server, it runs the securechat command line given
// after "--" until SIGTERM.
func TestBenchServerHelperProcess(t *testing.T) {
	if os.Getenv(benchHelperEnv) != "1" {
		t.Skip("helper process for the bench tests that start a child server")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, append([]string{"securechat"}, flag.Args()...), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// useHelperServer makes bench start its child server through the test
// binary.
func useHelperServer(t *testing.T) {
	t.Setenv(benchHelperEnv, "1")
	oldBench, oldServe, oldDialer := benchcmd.BenchServerArgv, benchcmd.ServeArgv, benchcmd.StormDialerArgv
	helper := []string{os.Args[0], "-test.run=^TestBenchServerHelperProcess$", "--"}
	benchcmd.BenchServerArgv = func(string) []string { return append(helper, "bench", "server") }
	benchcmd.ServeArgv = func(string) []string { return append(helper, "serve") }
	benchcmd.StormDialerArgv = func(string) []string { return append(helper, "bench", "storm-dialer") }
	t.Cleanup(func() {
		benchcmd.BenchServerArgv, benchcmd.ServeArgv, benchcmd.StormDialerArgv = oldBench, oldServe, oldDialer
	})
}

func runBench(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"securechat", "bench"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestBenchFlagValidation(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("bench-password\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"fanout", "--addr", "192.0.2.1:7777", "--fingerprint", "SHA256:x", "--password-file", pwFile}, "not a loopback address"},
		{[]string{"idle", "--addr", "[2001:db8::1]:7777", "--fingerprint", "SHA256:x", "--password-file", pwFile}, "--allow-remote"},
		{[]string{"fanout", "--addr", "192.0.2.1:7777", "--allow-remote", "--password-file", pwFile}, "needs --fingerprint"},
		{[]string{"fanout", "--addr", "127.0.0.1:7777", "--fingerprint", "SHA256:x"}, "needs --password-file"},
		{[]string{"fanout", "--addr", "127.0.0.1"}, "not HOST:PORT"},
		{[]string{"fanout", "--clients", "0"}, "--clients 0"},
		{[]string{"fanout", "--clients", "5", "--senders", "6"}, "--senders 6"},
		{[]string{"fanout", "--rate", "-1"}, "--rate -1"},
		{[]string{"fanout", "--duration", "1h"}, "--duration 1h0m0s"},
		{[]string{"fanout", "--server", "elsewhere", "--clients", "1", "--senders", "1"}, `--server "elsewhere"`},
		{[]string{"fanout", "--transport", "carrier-pigeon"}, "--transport"},
		{[]string{"idle", "--clients", "-3"}, "--clients -3"},
		{[]string{"idle", "--server", "inproc", "--server-cpuprofile", "x"}, "need --server child"},
		{[]string{"throughput", "--size", "0"}, "--size 0"},
		{[]string{"handshake", "--login", "cheap"}, `--login "cheap"`},
		{[]string{"handshake", "--kex", "rot13"}, "--kex"},
		{[]string{"handshake", "--concurrency", "0"}, "--concurrency 0"},
		{[]string{"server", "--creds", "x", "--listen", "0.0.0.0:0"}, "loopback"},
		{[]string{"server", "--creds", "x", "--listen", "192.0.2.1:7777"}, "--allow-remote"},
		{[]string{"throughput", "extra"}, "takes no arguments"},
		{[]string{"targets", "--scale", "2"}, "--scale 2"},
		{[]string{"targets", "--server", "elsewhere"}, `--server "elsewhere"`},
		{[]string{"throughput", "--rounds", "0"}, "--rounds 0"},
		{[]string{"handshake", "--rounds", "1000"}, "--rounds 1000"},
		{[]string{"storm", "--sources", "0"}, "--sources 0"},
		{[]string{"storm", "--sources", "251"}, "--sources 251"},
		{[]string{"storm", "--storm-rate", "0"}, "--storm-rate 0"},
		{[]string{"storm", "--wrong-passwords", "0"}, "--wrong-passwords 0"},
		{[]string{"storm", "--probes", "0"}, "--probes 0"},
		{[]string{"storm", "--probe-timeout", "2m"}, "--probe-timeout 2m0s"},
		{[]string{"storm", "--max-in-flight", "0"}, "--max-in-flight 0"},
		{[]string{"storm", "--quic-rate", "-1"}, "--quic-rate -1"},
		{[]string{"storm", "--quic-duration", "0s"}, "--quic-duration 0s"},
		{[]string{"storm", "--rate", "0"}, "--rate must be positive"},
		{[]string{"storm", "--clients", "2", "--senders", "3"}, "--senders 3"},
		{[]string{"storm", "--argon2-params", "m=1"}, "--argon2-params"},
		{[]string{"storm", "--serve-flag", "max-startups=1:1:1"}, "with its dashes"},
		{[]string{"storm", "--transport", "carrier-pigeon"}, "--transport"},
		{[]string{"fanout", "--store", "maybe"}, `--store "maybe"`},
		{[]string{"fanout", "--store", "on", "--server", "serve"}, "--store: the server this scenario starts"},
	} {
		code, _, stderr := runBench(t, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("bench %s: exit %d, stderr %q; want %d and %q", strings.Join(c.args, " "), code, stderr, exitUsage, c.want)
		}
	}
}

func TestBenchProvision(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("bench-password\n"), 0o600)
	creds := filepath.Join(dir, "bench-creds.txt")
	code, stdout, stderr := runBench(t, "provision", "--creds", creds, "--users", "4", "--prefix", "lt", "--password-file", pwFile)
	if code != 0 || !strings.Contains(stdout, "4 benchmark accounts lt0 … lt3") || !strings.Contains(stdout, "m=64,t=1,p=1") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	store, err := credstore.Load(creds, &credstore.Options{NoRehash: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Verify(context.Background(), "lt3", []byte("bench-password")); err != nil {
		t.Fatalf("lt3 with the file's password (newline removed): %v", err)
	}
	code, _, stderr = runBench(t, "provision", "--creds", creds, "--users", "1", "--password-file", pwFile)
	if code != exitError || !strings.Contains(stderr, "a file of their own") {
		t.Errorf("second provision: exit %d, stderr %q", code, stderr)
	}
	os.WriteFile(pwFile, []byte("short\n"), 0o600)
	code, _, stderr = runBench(t, "provision", "--creds", filepath.Join(dir, "other"), "--password-file", pwFile)
	if code != exitUsage || !strings.Contains(stderr, "at least") {
		t.Errorf("short password: exit %d, stderr %q", code, stderr)
	}
}

// benchJSON is the --json output, with the report left raw.
type benchJSON struct {
	Scenario string          `json:"scenario"`
	Machine  bench.Machine   `json:"machine"`
	Report   json.RawMessage `json:"report"`
}

func decodeBench(t *testing.T, stdout string, report any) benchJSON {
	t.Helper()
	var out benchJSON
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("--json output %q: %v", stdout, err)
	}
	if err := json.Unmarshal(out.Report, report); err != nil {
		t.Fatal(err)
	}
	if out.Machine.CPUs < 1 || out.Machine.FDLimit == 0 {
		t.Errorf("machine %+v", out.Machine)
	}
	return out
}

func TestBenchFanoutChildServer(t *testing.T) {
	useHelperServer(t)
	code, stdout, stderr := runBench(t, "fanout", "--clients", "5", "--senders", "2", "--rate", "10",
		"--duration", "1s", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rep bench.FanoutReport
	if out := decodeBench(t, stdout, &rep); out.Scenario != "fanout" {
		t.Errorf("scenario %q", out.Scenario)
	}
	if rep.Connected != 5 || rep.Sent == 0 || rep.Expected != rep.Sent*5 || rep.Delivered != rep.Expected || rep.Lost != 0 {
		t.Fatalf("report %+v", rep)
	}
	if !strings.HasPrefix(rep.Server, "process ") || rep.RSSScope != "server process" || rep.RSSBefore <= 0 || rep.RSSAfter <= 0 {
		t.Errorf("server %q, rss %q %d %d", rep.Server, rep.RSSScope, rep.RSSBefore, rep.RSSAfter)
	}
}

// --store compare runs fan-out without and with the chat database, each on
// a server of its own, and reports both with their ratios.
func TestBenchFanoutStoreCompare(t *testing.T) {
	code, stdout, stderr := runBench(t, "fanout", "--server", "inproc", "--clients", "4", "--senders", "2",
		"--rate", "10", "--duration", "1s", "--store", "compare", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var cmp bench.StoreComparison
	decodeBench(t, stdout, &cmp)
	if cmp.Off == nil || cmp.On == nil || cmp.Off.Store != "off" || cmp.On.Store != "on" {
		t.Fatalf("comparison %+v", cmp)
	}
	for _, rep := range []*bench.FanoutReport{cmp.Off, cmp.On} {
		if rep.Sent == 0 || rep.Lost != 0 || rep.Acked != rep.Sent {
			t.Errorf("store %s: sent %d, acked %d, lost %d", rep.Store, rep.Sent, rep.Acked, rep.Lost)
		}
	}
	if cmp.On.StoredPerSecond <= 0 || cmp.DeliveredRatio <= 0 || cmp.P99Ratio <= 0 {
		t.Errorf("stored/s %g, ratios %g %g", cmp.On.StoredPerSecond, cmp.DeliveredRatio, cmp.P99Ratio)
	}
}

func TestBenchIdleChildServer(t *testing.T) {
	useHelperServer(t)
	code, stdout, stderr := runBench(t, "idle", "--clients", "5", "--duration", "1s", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rep bench.IdleReport
	decodeBench(t, stdout, &rep)
	if rep.Connected != 5 || rep.ConnectErrors != 0 || rep.Disconnects != 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep.RSSAfter <= 0 || rep.HeapBefore == nil || rep.HeapAfter == nil {
		t.Fatalf("no server memory figures: %+v", rep)
	}
	// Each held session keeps at least its reader goroutine on the server.
	if rep.GoroutinesPerConn < 1 {
		t.Errorf("%.2f server goroutines per connection", rep.GoroutinesPerConn)
	}
}

// TestBenchRealServe runs the scenarios against the serve command itself,
// with the flags that lift its limits.
func TestBenchRealServe(t *testing.T) {
	useHelperServer(t)
	code, stdout, stderr := runBench(t, "idle", "--server", "serve", "--clients", "5", "--duration", "1s", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rep bench.IdleReport
	decodeBench(t, stdout, &rep)
	if rep.Connected != 5 || rep.Disconnects != 0 || rep.RSSScope != "server process" || rep.RSSAfter <= 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep.HeapAfter != nil {
		t.Error("serve reported heap statistics it has no way to send")
	}
	code, stdout, stderr = runBench(t, "fanout", "--server", "serve", "--clients", "4", "--senders", "2",
		"--rate", "20", "--duration", "1s", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("fanout: exit %d, stderr %q", code, stderr)
	}
	var frep bench.FanoutReport
	decodeBench(t, stdout, &frep)
	if frep.Connected != 4 || frep.Sent == 0 || frep.Lost != 0 || frep.Rejected != 0 {
		t.Fatalf("fanout report %+v", frep)
	}
}

// TestBenchExternalServer loads a server the bench did not start, as an
// operator would: accounts from a creds file, the password from a file,
// the host key by fingerprint. A wrong fingerprint must stop it cold.
func TestBenchExternalServer(t *testing.T) {
	srv, err := bench.StartServer(context.Background(), bench.ServerConfig{Transport: transport.TCP, Accounts: 3, Prefix: "ext"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, append(srv.Target.Password, '\n'), 0o600)
	args := []string{"fanout", "--addr", srv.Target.Addr, "--password-file", pwFile, "--prefix", "ext",
		"--accounts", "3", "--clients", "4", "--senders", "1", "--duration", "1s", "--quiet"}

	code, stdout, stderr := runBench(t, append(args, "--fingerprint", srv.Target.Fingerprint)...)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"fanout over tcp, server external", "4 connected of 4", " 0 lost", "latency", "machine: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = runBench(t, append(args, "--fingerprint", "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")...)
	if code != exitError || !strings.Contains(stderr, "no client connected") || !strings.Contains(stdout, "is not the expected") {
		t.Errorf("wrong fingerprint: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestBenchThroughputAndHandshakeCommands(t *testing.T) {
	code, stdout, stderr := runBench(t, "throughput", "--transport", "tcp", "--size", "1", "--primitive-time", "20ms", "--quiet")
	if code != 0 || !strings.Contains(stdout, bench.RowSecure("tcp")) || !strings.Contains(stdout, bench.RowPrimitive) {
		t.Fatalf("throughput: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runBench(t, "handshake", "--kex", "x25519", "--login", "", "--duration", "100ms",
		"--count", "20", "--concurrency", "2", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("handshake: exit %d, stderr %q", code, stderr)
	}
	var rep bench.HandshakeReport
	decodeBench(t, stdout, &rep)
	if len(rep.Rows) != 2 || rep.Rows[0].Name != bench.RowTLSX25519 || rep.Rows[1].Count == 0 || rep.Rows[1].Ratio <= 0 {
		t.Fatalf("rows %+v", rep.Rows)
	}
}

// TestBenchFanoutMetrics runs fanout --metrics against the child bench
// server and against serve: each round has a run with metrics off and one
// on, and the runs with them on were scraped.
func TestBenchFanoutMetrics(t *testing.T) {
	useHelperServer(t)
	for _, server := range []string{"child", "serve"} {
		t.Run(server, func(t *testing.T) {
			code, stdout, stderr := runBench(t, "fanout", "--metrics", "--metrics-rounds", "1", "--server", server,
				"--clients", "4", "--senders", "2", "--rate", "20", "--duration", "1500ms", "--json", "--quiet")
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			var rep bench.MetricsCostReport
			if out := decodeBench(t, stdout, &rep); out.Scenario != "fanout-metrics" {
				t.Errorf("scenario %q", out.Scenario)
			}
			if len(rep.Off) != 1 || len(rep.On) != 1 || len(rep.Errors) != 0 {
				t.Fatalf("%d runs off, %d on, errors %v", len(rep.Off), len(rep.On), rep.Errors)
			}
			for _, r := range append(rep.Off, rep.On...) {
				if r.Connected != 4 || r.Sent == 0 || r.Lost != 0 {
					t.Fatalf("run %+v", r)
				}
			}
			if rep.Scrapes < 1 || rep.P99Ratio <= 0 || rep.RateRatio <= 0 {
				t.Errorf("scrapes %d, p99 ratio %g, rate ratio %g", rep.Scrapes, rep.P99Ratio, rep.RateRatio)
			}
		})
	}
	if code, _, stderr := runBench(t, "fanout", "--metrics", "--addr", "127.0.0.1:1", "--fingerprint", "SHA256:x"); code == 0 || !strings.Contains(stderr, "--addr") {
		t.Errorf("--metrics with --addr: exit %d, %q", code, stderr)
	}
}

// TestBenchStormSmoke runs the storm scenario tiny against the serve
// command, so that every phase keeps working: fan-out without and with the
// storm, probes, server log counts, and the stream-less QUIC flood.
func TestBenchStormSmoke(t *testing.T) {
	useHelperServer(t)
	code, stdout, stderr := runBench(t, "storm", "--clients", "3", "--senders", "1", "--rate", "10", "--duration", "1s",
		"--sources", "2", "--storm-rate", "20", "--probes", "1", "--probe-timeout", "30s",
		"--quic-rate", "10", "--quic-duration", "1s", "--argon2-params", "m=64,t=1,p=1", "--json", "--quiet")
	// Whether the goals are met depends on the machine; the run itself
	// must work.
	if code != 0 && (code != exitError || !strings.Contains(stderr, "goals missed, 0 scenario errors")) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rep bench.StormReport
	if out := decodeBench(t, stdout, &rep); out.Scenario != "storm" {
		t.Errorf("scenario %q", out.Scenario)
	}
	if len(rep.Errors) != 0 || len(rep.Targets) != 4 {
		t.Fatalf("errors %q, %d verdicts", rep.Errors, len(rep.Targets))
	}
	for _, ph := range []*bench.StormPhase{rep.Baseline, rep.Storm} {
		if ph == nil || ph.Fanout == nil || ph.Fanout.Connected != 3 || ph.Fanout.Sent == 0 || ph.Fanout.Lost != 0 {
			t.Fatalf("phase %+v", ph)
		}
		for _, ps := range []*bench.ProbeStats{ph.Fresh, ph.Exempt} {
			if ps == nil || ps.Count != 1 || ps.Succeeded != 1 {
				t.Errorf("%s: probes %+v", ph.Name, ps)
			}
		}
		if ph.ServerLog["login"] < 2 {
			t.Errorf("%s: the server logged %d logins; the probes made 2", ph.Name, ph.ServerLog["login"])
		}
	}
	s := rep.Storm.Storm
	if rep.Baseline.Storm != nil || s == nil || s.Started == 0 || s.LoggedIn != 0 || s.AuthFailed == 0 ||
		s.Refused+s.AuthFailed+s.CutAtEnd != s.Started || s.PasswordsSent < s.AuthFailed {
		t.Fatalf("storm %+v", s)
	}
	if !s.OwnProcess || !s.ReusedKeyShares {
		t.Errorf("storm ran in its own process %v, with reused key shares %v; want both", s.OwnProcess, s.ReusedKeyShares)
	}
	if rep.Storm.ServerLog["login failed"] == 0 {
		t.Errorf("the server logged no failed login during the storm: %v", rep.Storm.ServerLog)
	}
	if rep.RSSBefore <= 0 || rep.RSSStormMax <= 0 {
		t.Errorf("rss %d before, %d during the storm", rep.RSSBefore, rep.RSSStormMax)
	}
	if rep.Streamless == nil || rep.Streamless.Established == 0 || rep.QUICFlood == nil || rep.QUICFlood.Fresh.Succeeded != 1 {
		t.Fatalf("stream-less phase: %+v, %+v", rep.Streamless, rep.QUICFlood)
	}
}

// TestBenchTargetsStorm checks that targets --storm adds the login-storm
// goals (9-12) and the storm report, here at a tiny scale.
func TestBenchTargetsStorm(t *testing.T) {
	useHelperServer(t)
	code, stdout, stderr := runBench(t, "targets", "--scale", "0.002", "--server", "inproc", "--storm", "--json", "--quiet")
	if code != 0 && (code != exitError || !strings.Contains(stderr, "targets missed, 0 scenario errors")) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rep bench.TargetsReport
	decodeBench(t, stdout, &rep)
	if rep.Storm == nil || rep.Storm.Baseline == nil || rep.Storm.Storm == nil || rep.Storm.Storm.Storm == nil {
		t.Fatalf("no storm report: %+v", rep.Storm)
	}
	ids := map[int]bool{}
	for _, tr := range rep.Targets {
		ids[tr.ID] = true
	}
	for id := 1; id <= 12; id++ {
		if !ids[id] {
			t.Errorf("target %d was not judged", id)
		}
	}
}

// --signed compare runs fan-out unsigned, then signed on a child server
// given the senders' keys, and reports both with their ratios.
func TestBenchFanoutSignedCompare(t *testing.T) {
	useHelperServer(t)
	code, stdout, stderr := runBench(t, "fanout", "--clients", "5", "--senders", "2", "--rate", "10",
		"--duration", "1s", "--signed", "compare", "--verify-sample", "2", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var cmp bench.SignedComparison
	decodeBench(t, stdout, &cmp)
	if cmp.Unsigned == nil || cmp.Signed == nil || cmp.Unsigned.Signed || !cmp.Signed.Signed {
		t.Fatalf("comparison %+v", cmp)
	}
	if s := cmp.Signed; s.Sent == 0 || s.Lost != 0 || s.Verified != s.Sent*2 || s.VerifyFailed != 0 {
		t.Errorf("signed run: sent %d, lost %d, verified %d, failed %d", s.Sent, s.Lost, s.Verified, s.VerifyFailed)
	}
	if cmp.P99Ratio <= 0 {
		t.Errorf("p99 ratio %g", cmp.P99Ratio)
	}
	// The CPU ratio is not checked: a run this small uses less CPU than
	// one tick of the process clock.
}

// --signed-rounds N runs N unsigned/signed pairs, the order alternating,
// and reports each pair and the median of their ratios.
func TestBenchFanoutSignedRounds(t *testing.T) {
	useHelperServer(t)
	code, stdout, stderr := runBench(t, "fanout", "--clients", "4", "--senders", "2", "--rate", "10",
		"--duration", "1s", "--signed", "compare", "--signed-rounds", "3", "--verify-sample", "1", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rounds bench.SignedRounds
	decodeBench(t, stdout, &rounds)
	if len(rounds.Pairs) != 3 {
		t.Fatalf("%d pairs, want 3", len(rounds.Pairs))
	}
	var ratios []float64
	for i, p := range rounds.Pairs {
		if p.Unsigned == nil || p.Signed == nil || p.Unsigned.Signed || !p.Signed.Signed {
			t.Fatalf("pair %d: %+v", i+1, p)
		}
		if s := p.Signed; s.Sent == 0 || s.Lost != 0 || s.Verified != s.Sent || s.VerifyFailed != 0 {
			t.Errorf("pair %d, signed run: sent %d, lost %d, verified %d, failed %d", i+1, s.Sent, s.Lost, s.Verified, s.VerifyFailed)
		}
		ratios = append(ratios, p.P99Ratio)
	}
	slices.Sort(ratios)
	if rounds.P99Ratio != ratios[1] {
		t.Errorf("median p99 ratio %g, want the middle of %v", rounds.P99Ratio, ratios)
	}
	if code, _, stderr := runBench(t, "fanout", "--signed", "on", "--signed-rounds", "2"); code != exitUsage || !strings.Contains(stderr, "--signed-rounds 2") {
		t.Errorf("--signed-rounds without --signed compare: exit %d, %q", code, stderr)
	}
}
