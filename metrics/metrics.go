// Package metrics exports a securechat server's counters to Prometheus and
// answers the health probes /healthz and /readyz.
//
// The server's own packages know nothing of Prometheus. The chat hub keeps
// plain counters (chat.Stats) that this package reads at scrape time, so
// the fan-out path pays nothing for them; the server reports logins,
// refusals, penalties, handshakes and rekeys through server.Hooks, which
// this package turns into counters. Every label value comes from a fixed
// set (a result, a reason, a group, a transport): user names and addresses
// never become labels, so the number of series stays bounded whatever the
// clients do. A hook value outside its set is counted as "other".
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"securechat/chat"
	"securechat/handshake"
	"securechat/server"
)

// Sources are what the metrics read at scrape time. Each may be nil.
type Sources struct {
	// Transport names the server's transport, the label of the sessions
	// gauge.
	Transport string
	// Sessions reports the logged-in sessions served now
	// (server.Server.Sessions).
	Sessions func() int
	// Stats reports the chat hub's counters (chat.Hub.Stats).
	Stats func() chat.Stats
	// Cluster reports the node's link to its cluster (serve --cluster);
	// nil for a server alone, which then has no cluster series.
	Cluster func() ClusterStats
}

// ClusterStats is a node's state in its cluster (chatcluster.Node.Stats).
type ClusterStats struct {
	Connected  bool   // the NATS link is up
	Reconnects uint64 // times the link came back
	Nodes      int    // nodes alive, this one included
	Applied    uint64 // the last log sequence the node applied
}

// other is the label value for a hook value outside its known set.
const other = "other"

// Label sets. A value not listed here is counted as "other".
var (
	loginResults = []string{server.LoginOK, server.LoginFailed, server.LoginRefused,
		server.LoginRejected, server.LoginUnchecked}
	refusalReasons = []string{server.RefusedPerSource, server.RefusedMaxStartups,
		server.RefusedPenalty, server.RefusedPendingPenalty, server.RefusedPressure, server.RefusedEvicted}
	penaltyEvents    = []server.PenaltyEvent{server.PenaltyAuthFail, server.PenaltyNoAuth, server.PenaltyGraceExceeded}
	handshakeResults = []string{server.HandshakeOK, server.HandshakeAuthFailed, server.HandshakeTimeout, server.HandshakeError}
	handshakeGroups  = []handshake.Group{handshake.GroupMLKEM768X25519, handshake.GroupX25519, handshake.GroupFFDHE3072}
	noGroup          = "none"
	handshakeBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120}
	rekeyDirections  = map[bool]string{true: "sent", false: "received"}
)

// Metrics holds a server's collectors and health checks. Create it with
// New; give Hooks to server.Config and serve Handler.
type Metrics struct {
	reg *prometheus.Registry

	// Counters resolved per label value at New, so that a hook is a map
	// lookup and an atomic add.
	logins     map[string]prometheus.Counter
	refusals   map[string]prometheus.Counter
	penalties  map[server.PenaltyEvent]prometheus.Counter
	rekeys     map[bool]prometheus.Counter
	handshakes map[handshakeKey]handshakeSeries

	mu     sync.Mutex
	checks []check
}

type handshakeKey struct {
	group  string
	result string
}

type handshakeSeries struct {
	count   prometheus.Counter
	seconds prometheus.Observer
}

type check struct {
	name string
	f    func() error
}

// New returns the metrics of one server, registered in a registry of
// their own along with the Go runtime and process collectors.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	logins := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "securechat_logins_total",
		Help: "Password attempts, by result: ok, failed, refused (source penalised or busy, not checked), rejected (malformed, not checked), unchecked (grace time or shutdown).",
	}, []string{"result"})
	m.logins = resolve(logins, append(loginResults, other))

	refusals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "securechat_refusals_total",
		Help: "Connections refused before the handshake, by reason: per_source, max_startups, penalty, penalty_pending.",
	}, []string{"reason"})
	m.refusals = resolve(refusals, append(refusalReasons, other))

	penalties := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "securechat_penalties_total",
		Help: "Penalties charged to sources, by event: authfail, noauth, grace_exceeded.",
	}, []string{"event"})
	m.penalties = make(map[server.PenaltyEvent]prometheus.Counter)
	for _, ev := range penaltyEvents {
		m.penalties[ev] = penalties.WithLabelValues(ev.String())
	}

	rekeys := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "securechat_rekeys_total",
		Help: "Moves of a session's record layer to its next key generation, by direction: sent (KEY_UPDATE from the server) or received.",
	}, []string{"direction"})
	m.rekeys = make(map[bool]prometheus.Counter)
	for sent, dir := range rekeyDirections {
		m.rekeys[sent] = rekeys.WithLabelValues(dir)
	}

	handshakes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "securechat_handshakes_total",
		Help: "Handshakes with login ended, by key exchange group (none: not negotiated) and result: ok, auth_failed, timeout, error.",
	}, []string{"group", "result"})
	seconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "securechat_handshake_duration_seconds",
		Help:    "Time from accept to the end of the handshake and login, including any wait for a password check, by group and result.",
		Buckets: handshakeBuckets,
	}, []string{"group", "result"})
	m.handshakes = make(map[handshakeKey]handshakeSeries)
	groups := []string{noGroup, other}
	for _, g := range handshakeGroups {
		groups = append(groups, g.String())
	}
	for _, g := range groups {
		for _, r := range append(handshakeResults, other) {
			m.handshakes[handshakeKey{g, r}] = handshakeSeries{
				count:   handshakes.WithLabelValues(g, r),
				seconds: seconds.WithLabelValues(g, r),
			}
		}
	}

	reg.MustRegister(logins, refusals, penalties, rekeys, handshakes, seconds, &scrapeCollector{src: src})
	return m
}

// resolve creates the counter of each value.
func resolve(v *prometheus.CounterVec, values []string) map[string]prometheus.Counter {
	m := make(map[string]prometheus.Counter, len(values))
	for _, x := range values {
		m[x] = v.WithLabelValues(x)
	}
	return m
}

// counter returns the counter of value, or the one of "other".
func counter(m map[string]prometheus.Counter, value string) prometheus.Counter {
	if c, ok := m[value]; ok {
		return c
	}
	return m[other]
}

// Hooks returns the server hooks that feed these metrics.
func (m *Metrics) Hooks() server.Hooks {
	return server.Hooks{
		Refused: func(reason string) { counter(m.refusals, reason).Inc() },
		Penalty: func(ev server.PenaltyEvent) {
			if c, ok := m.penalties[ev]; ok {
				c.Inc()
			}
		},
		Login:     func(result string) { counter(m.logins, result).Inc() },
		Handshake: m.handshake,
		Rekey:     func(sent bool) { m.rekeys[sent].Inc() },
	}
}

func (m *Metrics) handshake(g handshake.Group, result string, took time.Duration) {
	group := noGroup
	if g != 0 {
		group = g.String()
	}
	if _, ok := m.handshakes[handshakeKey{group, server.HandshakeOK}]; !ok {
		group = other
	}
	s, ok := m.handshakes[handshakeKey{group, result}]
	if !ok {
		s = m.handshakes[handshakeKey{group, other}]
	}
	s.count.Inc()
	s.seconds.Observe(took.Seconds())
}

// Registry is where the metrics are registered, for tests and for
// collectors of the caller's own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// scrapeCollector reads the sources once per scrape.
type scrapeCollector struct{ src Sources }

var (
	descSessions = prometheus.NewDesc("securechat_sessions",
		"Logged-in sessions served now, by transport.", []string{"transport"}, nil)
	descUsers = prometheus.NewDesc("securechat_users",
		"Users with a logged-in session.", nil, nil)
	descRooms = prometheus.NewDesc("securechat_rooms",
		"Rooms.", nil, nil)
	descHistoryBytes = prometheus.NewDesc("securechat_history_bytes",
		"Memory charged to the rooms' history.", nil, nil)
	descMessagesIn = prometheus.NewDesc("securechat_messages_in_total",
		"Chat messages the hub ordered: to rooms, direct, and server notices.", nil, nil)
	descRequestsIn = prometheus.NewDesc("securechat_requests_in_total",
		"Requests read from clients and handled (messages, commands, pings).", nil, nil)
	descDeliveries = prometheus.NewDesc("securechat_deliveries_out_total",
		"Events queued to sessions.", nil, nil)
	descDropped = prometheus.NewDesc("securechat_events_dropped_total",
		"Events dropped because a session's send queue was full.", nil, nil)
	descSlow = prometheus.NewDesc("securechat_slow_consumer_disconnects_total",
		"Sessions ended because their send queue stayed full.", nil, nil)
	descQueued = prometheus.NewDesc("securechat_send_queue_events",
		"Events waiting in all sessions' send queues together.", nil, nil)
	descMaxQueued = prometheus.NewDesc("securechat_send_queue_max_events",
		"Events waiting in the longest send queue.", nil, nil)
	descStored = prometheus.NewDesc("securechat_messages_stored_total",
		"Messages the chat database (or the cluster's log) stored.", nil, nil)
	descNotStored = prometheus.NewDesc("securechat_messages_not_stored_total",
		"Messages and moderation changes the chat database (or the cluster) refused or failed to store; their senders were told.", nil, nil)

	descClusterConnected = prometheus.NewDesc("securechat_cluster_connected",
		"1 while the node's link to NATS is up, 0 while it is down.", nil, nil)
	descClusterReconnects = prometheus.NewDesc("securechat_cluster_reconnects_total",
		"Times the node's link to NATS came back after it was lost.", nil, nil)
	descClusterNodes = prometheus.NewDesc("securechat_cluster_nodes",
		"Nodes whose heartbeats arrive, this one included.", nil, nil)
	descClusterApplied = prometheus.NewDesc("securechat_cluster_log_applied_sequence",
		"The last sequence of the cluster's message log this node applied; compare nodes to see one fall behind.", nil, nil)
)

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.src.Sessions != nil {
		ch <- descSessions
	}
	if c.src.Stats != nil {
		for _, d := range []*prometheus.Desc{descUsers, descRooms, descHistoryBytes, descMessagesIn,
			descRequestsIn, descDeliveries, descDropped, descSlow, descQueued, descMaxQueued, descStored, descNotStored} {
			ch <- d
		}
	}
	if c.src.Cluster != nil {
		for _, d := range []*prometheus.Desc{descClusterConnected, descClusterReconnects, descClusterNodes, descClusterApplied} {
			ch <- d
		}
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Sessions != nil {
		ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(c.src.Sessions()), c.src.Transport)
	}
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	count := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	if c.src.Cluster != nil {
		cs := c.src.Cluster()
		connected := 0
		if cs.Connected {
			connected = 1
		}
		gauge(descClusterConnected, connected)
		count(descClusterReconnects, cs.Reconnects)
		gauge(descClusterNodes, cs.Nodes)
		ch <- prometheus.MustNewConstMetric(descClusterApplied, prometheus.GaugeValue, float64(cs.Applied))
	}
	if c.src.Stats == nil {
		return
	}
	st := c.src.Stats()
	gauge(descUsers, st.Users)
	gauge(descRooms, st.Rooms)
	gauge(descHistoryBytes, st.HistoryBytes)
	count(descMessagesIn, st.Messages)
	count(descRequestsIn, st.Requests)
	count(descDeliveries, st.Delivered)
	count(descDropped, st.Dropped)
	count(descSlow, st.SlowDisconnects)
	gauge(descQueued, st.Queued)
	gauge(descMaxQueued, st.MaxQueued)
	count(descStored, st.Stored)
	count(descNotStored, st.NotStored)
}

// AddCheck adds a readiness check: /readyz answers 503 while any check
// returns an error. Checks run at each request to /readyz, one after
// another, so each must be quick.
func (m *Metrics) AddCheck(name string, f func() error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checks = append(m.checks, check{name, f})
}

// Ready runs the checks and returns their failures, joined, or nil.
func (m *Metrics) Ready() error {
	m.mu.Lock()
	checks := append([]check(nil), m.checks...)
	m.mu.Unlock()
	var errs []error
	for _, c := range checks {
		if err := c.f(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

// Handler serves /metrics, /healthz (the process answers) and /readyz
// (every check passes).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A failing collector must not hide the others.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := m.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready\n%s\n", strings.TrimSpace(err.Error()))
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Serve answers the metrics and health endpoints on ln until ctx is done.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAddr resolves the --metrics-listen value: HOST:PORT as given, and
// a bare PORT or :PORT on loopback, so that metrics are never exposed on
// every interface by accident.
func ListenAddr(s string) (string, error) {
	if s == "" {
		return "", errors.New("metrics: empty listen address")
	}
	if !strings.Contains(s, ":") {
		s = ":" + s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("metrics: listen address %q: %w", s, err)
	}
	if port == "" {
		return "", fmt.Errorf("metrics: listen address %q has no port", s)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
