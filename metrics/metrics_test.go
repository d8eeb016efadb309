package metrics

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"securechat/chat"
	"securechat/handshake"
	"securechat/server"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, err := io.ReadAll(rec.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Code, string(b)
}

func TestReadyzFollowsChecks(t *testing.T) {
	m := New(Sources{})
	h := m.Handler()
	if code, body := get(t, h, "/readyz"); code != http.StatusOK {
		t.Fatalf("no checks: %d %q, want 200", code, body)
	}
	var storeErr error
	m.AddCheck("listener", func() error { return nil })
	m.AddCheck("store", func() error { return storeErr })
	if code, _ := get(t, h, "/readyz"); code != http.StatusOK {
		t.Fatalf("passing checks: %d, want 200", code)
	}
	storeErr = errors.New("read-only file system")
	code, body := get(t, h, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "store: read-only file system") {
		t.Fatalf("failing check: %d %q, want 503 naming the check", code, body)
	}
	if strings.Contains(body, "listener") {
		t.Errorf("a passing check is listed as failing: %q", body)
	}
	// Alive all the same.
	if code, _ := get(t, h, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d while unready, want 200", code)
	}
	storeErr = nil
	if code, _ := get(t, h, "/readyz"); code != http.StatusOK {
		t.Fatalf("recovered check: %d, want 200", code)
	}
}

func TestHooksCountWithBoundedLabels(t *testing.T) {
	stats := chat.Stats{Users: 2, Messages: 5, Delivered: 9, Requests: 7, Queued: 3, MaxQueued: 2, Stored: 4, NotStored: 1}
	m := New(Sources{Transport: "tcp", Sessions: func() int { return 4 }, Stats: func() chat.Stats { return stats }})
	hk := m.Hooks()
	hk.Login(server.LoginOK)
	hk.Login(server.LoginFailed)
	hk.Login("alice") // not a result: must not become a label
	hk.Refused(server.RefusedPenalty)
	hk.Refused("too many connections from 192.0.2.1")
	hk.Penalty(server.PenaltyNoAuth)
	hk.Handshake(handshake.GroupX25519, server.HandshakeOK, 3*time.Millisecond)
	hk.Handshake(0, server.HandshakeError, time.Millisecond)
	hk.Handshake(handshake.Group(0x4242), "weird", time.Millisecond)
	hk.Rekey(true)
	hk.Rekey(false)
	hk.Rekey(false)

	_, text := get(t, m.Handler(), "/metrics")
	for _, want := range []string{
		`securechat_logins_total{result="ok"} 1`,
		`securechat_logins_total{result="failed"} 1`,
		`securechat_logins_total{result="other"} 1`,
		`securechat_logins_total{result="refused"} 0`,
		`securechat_refusals_total{reason="penalty"} 1`,
		`securechat_refusals_total{reason="other"} 1`,
		`securechat_penalties_total{event="noauth"} 1`,
		`securechat_handshakes_total{group="x25519",result="ok"} 1`,
		`securechat_handshakes_total{group="none",result="error"} 1`,
		`securechat_handshakes_total{group="other",result="other"} 1`,
		`securechat_handshake_duration_seconds_count{group="x25519",result="ok"} 1`,
		`securechat_rekeys_total{direction="sent"} 1`,
		`securechat_rekeys_total{direction="received"} 2`,
		`securechat_sessions{transport="tcp"} 4`,
		`securechat_users 2`,
		`securechat_messages_in_total 5`,
		`securechat_requests_in_total 7`,
		`securechat_deliveries_out_total 9`,
		`securechat_send_queue_events 3`,
		`securechat_send_queue_max_events 2`,
		`securechat_messages_stored_total 4`,
		`securechat_messages_not_stored_total 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(text, want+"\n") && !strings.Contains(text, "\n"+want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, bad := range []string{"alice", "192.0.2.1", "weird", "0x4242"} {
		if strings.Contains(text, bad) {
			t.Errorf("/metrics shows %q, a value that is not in a label set", bad)
		}
	}
	if n, err := testutil.GatherAndCount(m.Registry()); err != nil || n == 0 {
		t.Errorf("gather: %d metrics, %v", n, err)
	}
	if strings.Contains(text, "securechat_cluster_") {
		t.Error("a server without a cluster exports cluster series")
	}
}

func TestClusterSeries(t *testing.T) {
	cs := ClusterStats{Connected: true, Reconnects: 2, Nodes: 3, Applied: 41}
	m := New(Sources{Cluster: func() ClusterStats { return cs }})
	for _, tc := range []struct {
		stats ClusterStats
		want  []string
	}{
		{cs, []string{"securechat_cluster_connected 1", "securechat_cluster_reconnects_total 2",
			"securechat_cluster_nodes 3", "securechat_cluster_log_applied_sequence 41"}},
		{ClusterStats{Nodes: 1, Applied: 41, Reconnects: 2}, []string{"securechat_cluster_connected 0", "securechat_cluster_nodes 1"}},
	} {
		cs = tc.stats
		_, text := get(t, m.Handler(), "/metrics")
		for _, want := range tc.want {
			if !strings.Contains(text, "\n"+want+"\n") {
				t.Errorf("%+v: /metrics lacks %q", tc.stats, want)
			}
		}
	}
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{
		"9464":           "127.0.0.1:9464",
		":9464":          "127.0.0.1:9464",
		"0.0.0.0:9464":   "0.0.0.0:9464",
		"[::1]:0":        "[::1]:0",
		"localhost:9000": "localhost:9000",
	} {
		if got, err := ListenAddr(in); err != nil || got != want {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "host:", "a:b:c"} {
		if got, err := ListenAddr(in); err == nil {
			t.Errorf("ListenAddr(%q) = %q, want an error", in, got)
		}
	}
}

// The Grafana dashboard in contrib/ asks only for metrics the server
// exports.
func TestDashboardNamesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("../contrib/grafana/securechat.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	m := New(Sources{Transport: "tcp", Sessions: func() int { return 0 }, Stats: func() chat.Stats { return chat.Stats{} },
		Cluster: func() ClusterStats { return ClusterStats{} }})
	m.Hooks().Handshake(handshake.GroupX25519, server.HandshakeOK, time.Millisecond)
	_, text := get(t, m.Handler(), "/metrics")
	name := regexp.MustCompile(`\b(?:securechat|go|process)_[a-z_]+`)
	seen := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				seen++
				if !strings.Contains(text, "\n"+n+" ") && !strings.Contains(text, "\n"+n+"{") {
					t.Errorf("panel %q: %s is not exported", p.Title, n)
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("no metric names found in the dashboard")
	}
}
