package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"securechat/chat"
	"securechat/msgsig"
)

// FanoutConfig configures RunFanout.
type FanoutConfig struct {
	Clients int     // sessions in #general, senders included
	Senders int     // the first Senders clients send
	Rate    float64 // messages per second per sender; 0: as fast as Window allows
	// Window bounds, when Rate is 0, how many of one sender's messages may
	// be on their way to some member. It keeps each member's server queue
	// (256 events) from overflowing, so saturation is measured without
	// loss. 0 means 128/Senders.
	Window   int
	Duration time.Duration // sending phase
	TextSize int           // pad texts to this many bytes; 0: no padding

	ConnectConcurrency int           // 0 means 64
	ConnectTimeout     time.Duration // per client; 0 means 60 s
	DrainTimeout       time.Duration // after sending, for the last deliveries; 0 means 10 s

	// BeforeSend, if set, runs once every member has settled, just before
	// the sending phase starts; AfterSend runs as soon as it ends, before
	// the last deliveries are awaited. The storm scenario runs its attack
	// between the two.
	BeforeSend, AfterSend func()

	// Processes are measured for their CPU during the sending phase,
	// group by group (the nodes of a cluster, its NATS servers).
	Processes []ProcessGroup

	// Signed makes every sender sign each message (PROTOCOL.md §13.16):
	// the senders must log in by key (Target.Keys). VerifySample receivers
	// (0 means 10) check every message as a client does, with a
	// msgsig.Verifier; the others only time them, so that the load
	// generator, sharing the machine, does not spend what the server is
	// measured on.
	Signed       bool
	VerifySample int

	Progress func(line string) // called about once a second; nil: quiet
}

// Bounds of one fan-out run.
const (
	MaxClients  = 100_000
	MaxDuration = 10 * time.Minute
	MaxRate     = 10_000.0
)

func (c *FanoutConfig) check() error {
	switch {
	case c.Clients < 1 || c.Clients > MaxClients:
		return fmt.Errorf("bench: %d clients; want 1 to %d", c.Clients, MaxClients)
	case c.Senders < 1 || c.Senders > c.Clients:
		return fmt.Errorf("bench: %d senders; want 1 to the number of clients (%d)", c.Senders, c.Clients)
	case c.Rate < 0 || c.Rate > MaxRate:
		return fmt.Errorf("bench: rate %g per sender; want 0 (as fast as possible) to %g", c.Rate, MaxRate)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("bench: duration %s; want up to %s", c.Duration, MaxDuration)
	case c.Window < 0 || c.TextSize < 0 || c.TextSize > chat.MaxText:
		return errors.New("bench: negative window, or text size beyond the chat limit")
	}
	return nil
}

// FanoutReport is the outcome of RunFanout. Counts are deliveries: one
// message reaching one session.
type FanoutReport struct {
	Transport string `json:"transport"`
	Server    string `json:"server"`

	Clients        int      `json:"clients"`
	Connected      int      `json:"connected"`
	ConnectErrors  int      `json:"connect_errors"`
	ConnectSeconds float64  `json:"connect_seconds"` // until all N were welcomed
	SettleSeconds  float64  `json:"settle_seconds"`  // until all had read every join
	Errors         []string `json:"errors,omitempty"`

	Senders       int     `json:"senders"`
	RatePerSender float64 `json:"rate_per_sender"` // 0: saturation
	Window        int     `json:"window,omitempty"`
	SendSeconds   float64 `json:"send_seconds"`

	Sent               int64          `json:"sent"`
	Rejected           int64          `json:"rejected"` // answered with an error event
	Acked              int64          `json:"acked"`    // answered with an ack
	Expected           int64          `json:"expected"` // (sent - rejected) × connected
	Delivered          int64          `json:"delivered"`
	Lost               int64          `json:"lost"` // expected - delivered
	DeliveredPerSecond float64        `json:"delivered_per_second"`
	Latency            LatencySummary `json:"latency"`
	Disconnects        int64          `json:"disconnects"` // sessions that ended before the run did

	// Signed runs: the messages the sample of receivers judged verified,
	// and those it judged anything else (a failure of the run).
	Signed       bool  `json:"signed,omitempty"`
	Verifiers    int   `json:"verifiers,omitempty"`
	Verified     int64 `json:"verified,omitempty"`
	VerifyFailed int64 `json:"verify_failed,omitempty"`

	RSSScope  string `json:"rss_scope,omitempty"`
	RSSBefore int64  `json:"rss_before,omitempty"` // bytes, before the clients connected
	RSSAfter  int64  `json:"rss_after,omitempty"`  // bytes, at the end of the sending phase

	// CPU used during the sending phase, in cores (CPU seconds per
	// second): the server process's when it has one of its own, and this
	// process's (the clients, and the server when it runs here).
	ServerCPUCores float64 `json:"server_cpu_cores,omitempty"`
	BenchCPUCores  float64 `json:"bench_cpu_cores"`
	// ServerCPUPerDelivery is the server's CPU time per delivery, in µs.
	ServerCPUPerDelivery float64 `json:"server_cpu_us_per_delivery,omitempty"`
	// Groups is the CPU of FanoutConfig.Processes.
	Groups []GroupCPU `json:"process_groups,omitempty"`

	// Store is "on" when the server kept its messages in a database (each
	// acknowledged after its commit), "off" when it kept none, "" when not
	// known. StoredPerSecond counts acknowledged messages per second of
	// sending: with the store on, messages committed to it.
	Store           string  `json:"store,omitempty"`
	StoredPerSecond float64 `json:"stored_per_second,omitempty"`
}

// SetStore records whether the server stored messages.
func (r *FanoutReport) SetStore(on bool) {
	r.Store = "off"
	if on {
		r.Store = "on"
		if r.SendSeconds > 0 {
			r.StoredPerSecond = float64(r.Acked) / r.SendSeconds
		}
	}
}

// StoreComparison is a fan-out run without a store and one with, in one
// invocation, and how they compare.
type StoreComparison struct {
	Off *FanoutReport `json:"store_off"`
	On  *FanoutReport `json:"store_on"`
	// P99Ratio is the on run's p99 latency over the off run's;
	// DeliveredRatio the on run's deliveries per second over the off run's.
	P99Ratio       float64 `json:"p99_ratio"`
	DeliveredRatio float64 `json:"delivered_ratio"`
}

// CompareStore puts an off and an on run side by side.
func CompareStore(off, on *FanoutReport) *StoreComparison {
	c := &StoreComparison{Off: off, On: on}
	if off.Latency.P99 > 0 {
		c.P99Ratio = on.Latency.P99 / off.Latency.P99
	}
	if off.DeliveredPerSecond > 0 {
		c.DeliveredRatio = on.DeliveredPerSecond / off.DeliveredPerSecond
	}
	return c
}

// WriteText prints both runs and the ratios.
func (c *StoreComparison) WriteText(w io.Writer) {
	fmt.Fprintln(w, "-- store off")
	c.Off.WriteText(w)
	fmt.Fprintln(w, "-- store on")
	c.On.WriteText(w)
	fmt.Fprintf(w, "store on/off: p99 %.2f ms / %.2f ms = %.2fx, delivered/s %.0f / %.0f = %.2f, stored %.0f msg/s\n",
		c.On.Latency.P99, c.Off.Latency.P99, c.P99Ratio, c.On.DeliveredPerSecond, c.Off.DeliveredPerSecond,
		c.DeliveredRatio, c.On.StoredPerSecond)
}

// SignedComparison is an unsigned fan-out run and a signed one, in one
// invocation, and how they compare.
type SignedComparison struct {
	Unsigned *FanoutReport `json:"unsigned"`
	Signed   *FanoutReport `json:"signed"`
	// P99Ratio is the signed run's p99 latency over the unsigned run's;
	// CPUPerDeliveryRatio the same for the server's CPU per delivery
	// (0 when the server's CPU could not be told apart).
	P99Ratio            float64 `json:"p99_ratio"`
	CPUPerDeliveryRatio float64 `json:"cpu_per_delivery_ratio,omitempty"`
}

// CompareSigned puts an unsigned and a signed run side by side.
func CompareSigned(unsigned, signed *FanoutReport) *SignedComparison {
	c := &SignedComparison{Unsigned: unsigned, Signed: signed}
	if unsigned.Latency.P99 > 0 {
		c.P99Ratio = signed.Latency.P99 / unsigned.Latency.P99
	}
	if unsigned.ServerCPUPerDelivery > 0 {
		c.CPUPerDeliveryRatio = signed.ServerCPUPerDelivery / unsigned.ServerCPUPerDelivery
	}
	return c
}

// WriteText prints both runs and the ratios.
func (c *SignedComparison) WriteText(w io.Writer) {
	fmt.Fprintln(w, "-- unsigned")
	c.Unsigned.WriteText(w)
	fmt.Fprintln(w, "-- signed")
	c.Signed.WriteText(w)
	fmt.Fprintf(w, "signed/unsigned: p99 %.2f ms / %.2f ms = %.2fx, server cpu per delivery %.2f µs / %.2f µs = %.2fx\n",
		c.Signed.Latency.P99, c.Unsigned.Latency.P99, c.P99Ratio,
		c.Signed.ServerCPUPerDelivery, c.Unsigned.ServerCPUPerDelivery, c.CPUPerDeliveryRatio)
}

// SignedRounds is --signed compare over several pairs of runs.
type SignedRounds struct {
	Pairs []*SignedComparison `json:"pairs"`
	// The medians of the pairs' ratios.
	P99Ratio            float64 `json:"p99_ratio"`
	CPUPerDeliveryRatio float64 `json:"cpu_per_delivery_ratio"`
}

func (r *SignedRounds) summarize() {
	var p99, cpu []float64
	for _, p := range r.Pairs {
		p99 = append(p99, p.P99Ratio)
		cpu = append(cpu, p.CPUPerDeliveryRatio)
	}
	r.P99Ratio, r.CPUPerDeliveryRatio = median(p99), median(cpu)
}

// WriteText prints each pair, then the ratios of each and their medians.
func (r *SignedRounds) WriteText(w io.Writer) {
	var p99, cpu []string
	for i, p := range r.Pairs {
		first := "unsigned"
		if i%2 == 1 {
			first = "signed"
		}
		fmt.Fprintf(w, "== round %d (%s first)\n", i+1, first)
		p.WriteText(w)
		p99 = append(p99, fmt.Sprintf("%.2fx", p.P99Ratio))
		cpu = append(cpu, fmt.Sprintf("%.2fx", p.CPUPerDeliveryRatio))
	}
	fmt.Fprintf(w, "signed/unsigned over %d rounds, order alternating: p99 median %.2fx (%s), server cpu per delivery median %.2fx (%s)\n",
		len(r.Pairs), r.P99Ratio, strings.Join(p99, " "), r.CPUPerDeliveryRatio, strings.Join(cpu, " "))
}

type fanSender struct {
	idx    int
	client *chatClient
	name   string         // its account
	signer *msgsig.Sender // signed runs

	slots    []atomic.Int64 // deliveries seen per in-flight message, by seq % window
	notify   chan struct{}
	sent     atomic.Int64
	acked    atomic.Int64
	rejected atomic.Int64
}

type fanoutRun struct {
	cfg     FanoutConfig
	run     string
	marker  []byte // `"text":"bench RUN `
	senders []*fanSender
	target  atomic.Int64 // members each message must reach
	window  int
	hist    Histogram

	delivered   atomic.Int64
	lastNS      atomic.Int64
	syncSeen    atomic.Int64
	disconnects atomic.Int64
	closing     atomic.Bool

	// verifiers judge the messages of the sample of receivers, by
	// client index (signed runs).
	verifiers    map[int]*msgsig.Verifier
	verified     atomic.Int64
	verifyFailed atomic.Int64

	mu     sync.Mutex
	errors []string
}

func (r *fanoutRun) noteError(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errors) < 10 {
		r.errors = append(r.errors, fmt.Sprintf(format, args...))
	}
}

// RunFanout connects cfg.Clients sessions to #general on t, lets the first
// cfg.Senders send for cfg.Duration, and measures every delivery: each
// message carries its send time, and each member records the latency when
// it reads it. Nothing is sent before every member has read a marker
// message, so the join storm of the connect phase is over.
func RunFanout(ctx context.Context, t *Target, cfg FanoutConfig) (*FanoutReport, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.ConnectConcurrency <= 0 {
		cfg.ConnectConcurrency = 64
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 60 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	id := make([]byte, 4)
	rand.Read(id)
	r := &fanoutRun{cfg: cfg, run: hex.EncodeToString(id)}
	r.marker = []byte(`"text":"bench ` + r.run + ` `)
	rep := &FanoutReport{Transport: t.Transport.Name(), Server: serverDesc(t), Clients: cfg.Clients,
		Senders: cfg.Senders, RatePerSender: cfg.Rate}
	rep.RSSScope, rep.RSSBefore = rss(t)

	r.window = cfg.Window
	if r.window == 0 {
		r.window = max(1, 128/cfg.Senders)
	}
	if cfg.Rate == 0 {
		rep.Window = r.window
	}
	// The senders' state exists before any receive loop runs, so that the
	// loops only ever read it.
	for i := range cfg.Senders {
		r.senders = append(r.senders, &fanSender{idx: i, name: AccountName(t.Prefix, i%t.Accounts),
			slots: make([]atomic.Int64, r.window), notify: make(chan struct{}, 1)})
	}
	if cfg.Signed {
		cleanup, err := r.setupSigning(t, rep)
		if err != nil {
			return rep, err
		}
		defer cleanup()
	}

	var receivers sync.WaitGroup
	progress := throttled(cfg.Progress)
	conn := connectAll(ctx, t, cfg.Clients, cfg.ConnectConcurrency, cfg.ConnectTimeout,
		func(c *chatClient) {
			receivers.Go(func() { r.receive(c) })
		},
		func(done int) { progress(fmt.Sprintf("fanout: connected %d/%d", done, cfg.Clients)) })
	defer func() {
		r.closing.Store(true)
		closeAll(conn.clients, 256)
		receivers.Wait()
	}()
	rep.Connected, rep.ConnectErrors, rep.ConnectSeconds = conn.ok, conn.failed, conn.duration.Seconds()
	rep.Errors = append(rep.Errors, conn.errors...)
	if conn.ok == 0 {
		return rep, fmt.Errorf("bench: no client connected: %s", errorText(conn.errors))
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	r.target.Store(int64(conn.ok))
	for i, s := range r.senders {
		if s.client = conn.clients[i]; s.client == nil {
			return rep, fmt.Errorf("bench: sender %d did not connect", i)
		}
	}

	// Settle: a marker through the room tells when every join is read.
	settleStart := time.Now()
	if err := r.senders[0].client.send(&chat.Request{Type: chat.TypeMsg, Room: "#general",
		Text: "bench " + r.run + " sync"}); err != nil {
		return rep, fmt.Errorf("bench: settle: %w", err)
	}
	if !waitUntil(ctx, time.Minute, func() bool { return r.syncSeen.Load() >= r.target.Load() }) {
		return rep, fmt.Errorf("bench: only %d of %d members saw the settle marker within a minute", r.syncSeen.Load(), r.target.Load())
	}
	rep.SettleSeconds = time.Since(settleStart).Seconds()

	if cfg.BeforeSend != nil {
		cfg.BeforeSend()
	}
	benchCPU0, _ := ProcessCPU(0)
	groups0 := groupsCPU(cfg.Processes)
	var serverCPU0 time.Duration
	if t.PID != 0 {
		serverCPU0, _ = ProcessCPU(t.PID)
	}
	start := time.Now()
	end := start.Add(cfg.Duration)
	stop := make(chan struct{})
	timer := time.AfterFunc(cfg.Duration, func() { close(stop) })
	defer timer.Stop()
	var senders sync.WaitGroup
	for _, s := range r.senders {
		senders.Go(func() { r.sendLoop(ctx, s, start, end, stop) })
	}
	tick := time.NewTicker(time.Second)
	for waiting := true; waiting; {
		select {
		case <-stop:
			waiting = false
		case <-ctx.Done():
			waiting = false
		case now := <-tick.C:
			progress(fmt.Sprintf("fanout: %.0fs/%.0fs sent %d delivered %d p99 %.1f ms",
				now.Sub(start).Seconds(), cfg.Duration.Seconds(), r.sent(), r.delivered.Load(),
				ms(r.hist.Quantile(0.99))))
		}
	}
	tick.Stop()
	senders.Wait()
	rep.SendSeconds = time.Since(start).Seconds()
	deliveredInPhase := r.delivered.Load()
	if c, err := ProcessCPU(0); err == nil {
		rep.BenchCPUCores = (c - benchCPU0).Seconds() / rep.SendSeconds
	}
	for i, c := range groupsCPU(cfg.Processes) {
		used := c - groups0[i]
		g := GroupCPU{Name: cfg.Processes[i].Name, Cores: used.Seconds() / rep.SendSeconds}
		if deliveredInPhase > 0 {
			g.PerDelivery = float64(used/time.Microsecond) / float64(deliveredInPhase)
		}
		rep.Groups = append(rep.Groups, g)
	}
	if t.PID != 0 {
		if c, err := ProcessCPU(t.PID); err == nil {
			rep.ServerCPUCores = (c - serverCPU0).Seconds() / rep.SendSeconds
			if deliveredInPhase > 0 {
				rep.ServerCPUPerDelivery = float64((c-serverCPU0)/time.Microsecond) / float64(deliveredInPhase)
			}
		}
	}
	_, rep.RSSAfter = rss(t)
	if cfg.AfterSend != nil {
		cfg.AfterSend()
	}

	waitUntil(ctx, cfg.DrainTimeout, func() bool {
		var answered, accepted int64
		for _, s := range r.senders {
			answered += s.acked.Load() + s.rejected.Load()
			accepted += s.sent.Load() - s.rejected.Load()
		}
		return answered >= r.sent() && r.delivered.Load() >= accepted*r.target.Load()
	})
	for _, s := range r.senders {
		rep.Sent += s.sent.Load()
		rep.Rejected += s.rejected.Load()
		rep.Acked += s.acked.Load()
	}
	rep.Expected = (rep.Sent - rep.Rejected) * r.target.Load()
	rep.Delivered = r.delivered.Load()
	rep.Lost = rep.Expected - rep.Delivered
	if last := r.lastNS.Load(); last > start.UnixNano() {
		rep.DeliveredPerSecond = float64(rep.Delivered) / (float64(last-start.UnixNano()) / 1e9)
	}
	rep.Latency = r.hist.Summary()
	rep.Disconnects = r.disconnects.Load()
	rep.Verified, rep.VerifyFailed = r.verified.Load(), r.verifyFailed.Load()
	r.mu.Lock()
	rep.Errors = append(rep.Errors, r.errors...)
	r.mu.Unlock()
	progress("")
	return rep, ctx.Err()
}

// setupSigning gives each sender its key and the sample of receivers
// their verifiers, each with a known_users file of its own in a temporary
// directory (which cleanup removes): first sight pins every sender.
func (r *fanoutRun) setupSigning(t *Target, rep *FanoutReport) (cleanup func(), err error) {
	rep.Signed = true
	for _, s := range r.senders {
		key := t.key(s.idx)
		if key == nil {
			return nil, fmt.Errorf("bench: signed run: sender %d has no login key (%d accounts with keys)", s.idx, len(t.Keys))
		}
		s.signer = &msgsig.Sender{Signer: key}
	}
	dir, err := os.MkdirTemp("", "securechat-bench-known-users-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	n := r.cfg.VerifySample
	if n == 0 {
		n = 10
	}
	// Receivers that do not send, as far as there are any.
	first := min(r.cfg.Senders, max(r.cfg.Clients-n, 0))
	r.verifiers = make(map[int]*msgsig.Verifier)
	for i := first; i < min(first+n, r.cfg.Clients); i++ {
		v, err := msgsig.NewVerifier(msgsig.Config{
			KnownUsers: filepath.Join(dir, "known_users"+strconv.Itoa(i)), HostPort: t.Addr,
			Self: AccountName(t.Prefix, i%t.Accounts), Policy: msgsig.PolicyAcceptNew,
		})
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: verifier: %w", err)
		}
		r.verifiers[i] = v
	}
	rep.Verifiers = len(r.verifiers)
	return func() { os.RemoveAll(dir) }, nil
}

// verify judges, for one of the sample of receivers, a msg event of this
// run that is not the settle marker.
func (r *fanoutRun) verify(v *msgsig.Verifier, c *chatClient, p []byte) {
	if !bytes.Contains(p, r.marker) || bytes.Contains(p, []byte(`"history":true`)) {
		return
	}
	ev, err := chat.DecodeEvent(p)
	if err != nil || strings.HasSuffix(ev.Text, " sync") {
		return
	}
	res := v.Check(&msgsig.Event{Kind: ev.Kind, Room: ev.Room, To: ev.To, From: ev.From, Text: ev.Text,
		History: ev.History, Key: ev.Key, Sig: ev.Sig, Ctr: ev.Ctr, Cts: ev.Cts})
	if res.Status == msgsig.Verified {
		r.verified.Add(1)
		return
	}
	if r.verifyFailed.Add(1) <= 3 {
		r.noteError("client %d: message from %s judged %s", c.idx, ev.From, res.Mark())
	}
}

func (r *fanoutRun) sent() int64 {
	var n int64
	for _, s := range r.senders {
		n += s.sent.Load()
	}
	return n
}

func (r *fanoutRun) sendLoop(ctx context.Context, s *fanSender, start, end time.Time, stop <-chan struct{}) {
	var pad string
	if r.cfg.TextSize > 0 {
		pad = " " + strings.Repeat("x", r.cfg.TextSize)
	}
	// Senders are spread evenly over one interval, not all on the tick.
	var interval time.Duration
	if r.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / r.cfg.Rate)
		start = start.Add(interval * time.Duration(s.idx) / time.Duration(len(r.senders)))
	}
	for seq := 0; ctx.Err() == nil; seq++ {
		if r.cfg.Rate > 0 {
			next := start.Add(time.Duration(seq) * interval)
			if !next.Before(end) {
				return
			}
			if d := time.Until(next); d > 0 {
				select {
				case <-time.After(d):
				case <-stop:
					return
				}
			}
		} else {
			slot := &s.slots[seq%r.window]
			if seq >= r.window {
				for slot.Load() < r.target.Load() {
					select {
					case <-s.notify:
					case <-stop:
						return
					}
				}
			}
			slot.Store(0)
		}
		select {
		case <-stop:
			return
		default:
		}
		text := "bench " + r.run + " " + strconv.Itoa(s.idx) + " " + strconv.Itoa(seq) + " " +
			strconv.FormatInt(time.Now().UnixNano(), 10)
		text = (text + pad)[:max(len(text), r.cfg.TextSize)]
		req := &chat.Request{Type: chat.TypeMsg, ID: "m" + strconv.Itoa(seq), Room: "#general", Text: text}
		if s.signer != nil {
			sg, err := s.signer.Sign(msgsig.KindMsg, req.Room, s.name, text)
			if err != nil {
				r.noteError("sender %d: sign: %v", s.idx, err)
				return
			}
			req.Sig, req.Ctr, req.Cts = sg.Sig, sg.Ctr, sg.Cts
		}
		err := s.client.send(req)
		if err != nil {
			r.noteError("sender %d: %v", s.idx, err)
			return
		}
		s.sent.Add(1)
	}
}

func (r *fanoutRun) receive(c *chatClient) {
	var s *fanSender
	v := r.verifiers[c.idx]
	err := c.receive(func(kind string, p []byte) {
		switch kind {
		case chat.TypeMsg:
			r.onMessage(p)
			if v != nil {
				r.verify(v, c, p)
			}
		case chat.TypeAck, chat.TypeError:
			if c.idx < len(r.senders) {
				s = r.senders[c.idx]
			}
			r.onAnswer(c, s, kind, p)
		}
	})
	if !r.closing.Load() {
		r.disconnects.Add(1)
		r.noteError("client %d: session ended: %v", c.idx, err)
	}
}

// onMessage handles a msg event without decoding JSON unless it is ours:
// the text is "bench RUN SENDER SEQ UNIXNANO [padding]", ASCII only.
func (r *fanoutRun) onMessage(p []byte) {
	i := bytes.Index(p, r.marker)
	if i < 0 || bytes.Contains(p, []byte(`"history":true`)) {
		return
	}
	rest := p[i+len(r.marker):]
	if end := bytes.IndexByte(rest, '"'); end >= 0 {
		rest = rest[:end]
	}
	if bytes.Equal(rest, []byte("sync")) {
		r.syncSeen.Add(1)
		return
	}
	var f [3]int64
	for i := range f {
		var ok bool
		if f[i], rest, ok = leadingInt(rest); !ok {
			return
		}
	}
	sender, seq, sentNS := int(f[0]), int(f[1]), f[2]
	if sender >= len(r.senders) {
		return
	}
	now := time.Now().UnixNano()
	r.hist.Record(time.Duration(now - sentNS))
	r.delivered.Add(1)
	for {
		last := r.lastNS.Load()
		if now <= last || r.lastNS.CompareAndSwap(last, now) {
			break
		}
	}
	if r.cfg.Rate == 0 {
		s := r.senders[sender]
		if s.slots[seq%r.window].Add(1) == r.target.Load() {
			select {
			case s.notify <- struct{}{}:
			default:
			}
		}
	}
}

func (r *fanoutRun) onAnswer(c *chatClient, s *fanSender, kind string, p []byte) {
	ev, err := chat.DecodeEvent(p)
	if err != nil {
		r.noteError("client %d: undecodable event: %v", c.idx, err)
		return
	}
	seq := -1
	if s != nil && strings.HasPrefix(ev.ID, "m") {
		if n, err := strconv.Atoi(ev.ID[1:]); err == nil {
			seq = n
		}
	}
	switch {
	case seq >= 0 && kind == chat.TypeAck:
		s.acked.Add(1)
	case seq >= 0:
		s.rejected.Add(1)
		r.noteError("sender %d: message %d rejected: %s: %s", s.idx, seq, ev.Code, ev.Text)
		if r.cfg.Rate == 0 {
			// Nobody will see it: free its window slot.
			s.slots[seq%r.window].Store(r.target.Load())
			select {
			case s.notify <- struct{}{}:
			default:
			}
		}
	case kind == chat.TypeError:
		r.noteError("client %d: error event: %s: %s", c.idx, ev.Code, ev.Text)
	}
}

// leadingInt parses the decimal number at the start of b and skips one
// space after it, without allocating: receivers parse every delivery.
func leadingInt(b []byte) (int64, []byte, bool) {
	var n int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if n > (1<<63-1)/10-1 {
			return 0, nil, false
		}
		n = n*10 + int64(b[i]-'0')
	}
	if i == 0 {
		return 0, nil, false
	}
	if i < len(b) && b[i] == ' ' {
		i++
	}
	return n, b[i:], true
}

// waitUntil polls cond every 10 ms until it holds, ctx ends or timeout
// passes, and reports whether it held.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// serverDesc says where the server of t runs, for reports.
func serverDesc(t *Target) string {
	switch {
	case t.InProcess:
		return "in process"
	case t.PID != 0:
		return "process " + strconv.Itoa(t.PID)
	}
	return "external"
}

// rss measures the server's resident memory when it can be told apart:
// the child or external process named by t.PID, or this whole process
// (server and clients) when the server runs here.
func rss(t *Target) (scope string, bytes int64) {
	switch {
	case t.PID != 0:
		n, err := ProcessRSS(t.PID)
		if err != nil {
			return "", 0
		}
		return "server process", n
	case t.InProcess:
		n, err := ProcessRSS(0)
		if err != nil {
			return "", 0
		}
		return "bench process (server and clients)", n
	}
	return "", 0
}

// throttled wraps a progress callback so that it runs at most once a
// second; an empty line always passes (it ends the progress display).
func throttled(f func(string)) func(string) {
	if f == nil {
		return func(string) {}
	}
	var mu sync.Mutex
	var last time.Time
	return func(line string) {
		mu.Lock()
		defer mu.Unlock()
		if line != "" && time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		f(line)
	}
}
