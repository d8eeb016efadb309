package main

import (
	"strings"
	"testing"

	"securechat/bench"
	"securechat/internal/natstest"
)

// TestBenchFailover kills each of two serve nodes once: every client of
// the killed node must chat again through the other node.
func TestBenchFailover(t *testing.T) {
	useHelperServer(t)
	code, stdout, stderr := runBench(t, "failover", "--nodes", "2", "--clients", "4", "--kills", "2", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rep bench.FailoverReport
	decodeBench(t, stdout, &rep)
	if len(rep.Rounds) != 2 || rep.Lost != 0 || rep.KillMaxMS <= 0 || len(rep.Errors) > 0 {
		t.Fatalf("report %+v", rep)
	}
	for i, r := range rep.Rounds {
		if r.Node != i || r.Affected == 0 || r.Recovered != r.Affected {
			t.Errorf("kill %d: %+v, want node %d with every affected client back", i+1, r, i)
		}
	}
	// The first kill ends the sessions of the clients that started on
	// node 0 (half of them); the second, those of every client, which all
	// moved to node 1.
	if rep.Rounds[0].Affected != 2 || rep.Rounds[1].Affected != 4 {
		t.Errorf("affected clients %d and %d, want 2 and 4", rep.Rounds[0].Affected, rep.Rounds[1].Affected)
	}
}

// TestBenchCluster runs the fan-out through the node harness, on one
// node: the nodes' plumbing (shared creds, spread clients) without the
// cluster the server side brings for more.
func TestBenchCluster(t *testing.T) {
	useHelperServer(t)
	code, stdout, stderr := runBench(t, "cluster", "--nodes", "1", "--clients", "4", "--senders", "2",
		"--rate", "20", "--duration", "1s", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rep bench.FanoutReport
	decodeBench(t, stdout, &rep)
	if rep.Connected != 4 || rep.Sent == 0 || rep.Lost != 0 || rep.Rejected != 0 {
		t.Fatalf("report %+v", rep)
	}
}

// TestBenchClusterStartsNATS: with --nats, bench cluster starts the NATS
// server its two nodes join, every member gets every message whichever
// node sent it, and the report has the CPU of the nodes and of NATS.
func TestBenchClusterStartsNATS(t *testing.T) {
	useHelperServer(t)
	bin := natstest.Binary(t)
	code, stdout, stderr := runBench(t, "cluster", "--nodes", "2", "--nats", "1", "--nats-server", bin,
		"--clients", "4", "--senders", "2", "--rate", "20", "--duration", "1s", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rep bench.FanoutReport
	decodeBench(t, stdout, &rep)
	if rep.Connected != 4 || rep.Sent == 0 || rep.Lost != 0 || rep.Rejected != 0 {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Groups) != 2 || !strings.Contains(rep.Groups[0].Name, "serve") || !strings.Contains(rep.Groups[1].Name, "NATS") {
		t.Errorf("process groups %+v, want the nodes and NATS", rep.Groups)
	}
}

func TestBenchNodesFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"failover", "--nodes", "1"}, "--nodes 1"},
		{[]string{"failover", "--clients", "1"}, "--clients 1"},
		{[]string{"failover", "--kills", "0"}, "--kills 0"},
		{[]string{"failover", "--timeout", "0s"}, "--timeout 0s"},
		{[]string{"failover", "--transport", "carrier-pigeon"}, "--transport"},
		{[]string{"cluster", "--nodes", "0"}, "--nodes 0"},
		{[]string{"cluster", "--nodes", "2"}, "--cluster"},
		{[]string{"cluster", "--clients", "2", "--senders", "3"}, "--senders 3"},
		{[]string{"cluster", "--nats", "9"}, "--nats 9"},
		{[]string{"failover", "--nats", "1", "--serve-arg", "--cluster", "--serve-arg", "nats://127.0.0.1:1"}, "drop --serve-arg --cluster"},
	} {
		code, _, stderr := runBench(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("bench %q: exit %d, stderr %q; want exit 2 naming %s", c.args, code, stderr, c.want)
		}
	}
}
