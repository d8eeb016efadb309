package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// IdleConfig configures RunIdle.
type IdleConfig struct {
	Clients  int
	Duration time.Duration // how long the connections are held

	ConnectConcurrency int           // 0 means 64
	ConnectTimeout     time.Duration // per client; 0 means 60 s

	// HeapStats, if set, asks the server for its runtime statistics
	// (Server.HeapStats of a child server).
	HeapStats func(context.Context) (HeapStats, error)

	Progress func(line string)
}

// IdleReport is the outcome of RunIdle.
type IdleReport struct {
	Transport string `json:"transport"`
	Server    string `json:"server"`

	Clients           int      `json:"clients"`
	Connected         int      `json:"connected"`
	ConnectErrors     int      `json:"connect_errors"`
	ConnectSeconds    float64  `json:"connect_seconds"`
	ConnectsPerSecond float64  `json:"connects_per_second"`
	HoldSeconds       float64  `json:"hold_seconds"`
	Disconnects       int64    `json:"disconnects"` // sessions that ended while held
	Errors            []string `json:"errors,omitempty"`

	RSSScope      string  `json:"rss_scope,omitempty"`
	RSSBefore     int64   `json:"rss_before,omitempty"` // bytes
	RSSAfter      int64   `json:"rss_after,omitempty"`  // bytes, at the end of the hold
	RSSPerConnKiB float64 `json:"rss_per_conn_kib,omitempty"`

	HeapBefore        *HeapStats `json:"heap_before,omitempty"`
	HeapAfter         *HeapStats `json:"heap_after,omitempty"`
	HeapPerConnKiB    float64    `json:"heap_per_conn_kib,omitempty"`   // heap in use + stacks, per connection
	GoroutinesPerConn float64    `json:"goroutines_per_conn,omitempty"` // server goroutines per connection
}

// RunIdle connects cfg.Clients sessions to t, holds them for cfg.Duration
// answering the server's pings, and measures what they cost the server.
// The connect phase is also the connect storm: every client must get in.
func RunIdle(ctx context.Context, t *Target, cfg IdleConfig) (*IdleReport, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	if cfg.Clients < 1 || cfg.Clients > MaxClients {
		return nil, fmt.Errorf("bench: %d clients; want 1 to %d", cfg.Clients, MaxClients)
	}
	if cfg.Duration < 0 || cfg.Duration > MaxDuration {
		return nil, fmt.Errorf("bench: duration %s; want up to %s", cfg.Duration, MaxDuration)
	}
	if cfg.ConnectConcurrency <= 0 {
		cfg.ConnectConcurrency = 64
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 60 * time.Second
	}
	rep := &IdleReport{Transport: t.Transport.Name(), Server: serverDesc(t), Clients: cfg.Clients}
	if cfg.HeapStats != nil {
		if hs, err := cfg.HeapStats(ctx); err == nil {
			rep.HeapBefore = &hs
		}
	}
	rep.RSSScope, rep.RSSBefore = rss(t)

	var closing atomic.Bool
	var disconnects atomic.Int64
	var mu sync.Mutex
	var errs []string
	var receivers sync.WaitGroup
	progress := throttled(cfg.Progress)
	conn := connectAll(ctx, t, cfg.Clients, cfg.ConnectConcurrency, cfg.ConnectTimeout,
		func(c *chatClient) {
			receivers.Go(func() {
				err := c.receive(func(string, []byte) {})
				if !closing.Load() {
					disconnects.Add(1)
					mu.Lock()
					if len(errs) < 10 {
						errs = append(errs, fmt.Sprintf("client %d: session ended: %v", c.idx, err))
					}
					mu.Unlock()
				}
			})
		},
		func(done int) { progress(fmt.Sprintf("idle: connected %d/%d", done, cfg.Clients)) })
	defer func() {
		closing.Store(true)
		closeAll(conn.clients, 256)
		receivers.Wait()
	}()
	rep.Connected, rep.ConnectErrors = conn.ok, conn.failed
	rep.ConnectSeconds = conn.duration.Seconds()
	if rep.ConnectSeconds > 0 {
		rep.ConnectsPerSecond = float64(conn.ok) / rep.ConnectSeconds
	}
	rep.Errors = append(rep.Errors, conn.errors...)

	start := time.Now()
	tick := time.NewTicker(time.Second)
	hold := time.NewTimer(cfg.Duration)
	for waiting := true; waiting; {
		select {
		case <-hold.C:
			waiting = false
		case <-ctx.Done():
			waiting = false
		case now := <-tick.C:
			_, n := rss(t)
			progress(fmt.Sprintf("idle: holding %d connections %.0fs/%.0fs, server rss %.1f MiB",
				conn.ok-int(disconnects.Load()), now.Sub(start).Seconds(), cfg.Duration.Seconds(), float64(n)/(1<<20)))
		}
	}
	tick.Stop()
	hold.Stop()
	rep.HoldSeconds = time.Since(start).Seconds()
	_, rep.RSSAfter = rss(t)
	if rep.RSSAfter > 0 && conn.ok > 0 {
		rep.RSSPerConnKiB = float64(rep.RSSAfter-rep.RSSBefore) / float64(conn.ok) / 1024
	}
	if cfg.HeapStats != nil && rep.HeapBefore != nil {
		if hs, err := cfg.HeapStats(ctx); err == nil && conn.ok > 0 {
			rep.HeapAfter = &hs
			used := func(h *HeapStats) float64 { return float64(h.HeapInuse + h.StackInuse) }
			rep.HeapPerConnKiB = (used(&hs) - used(rep.HeapBefore)) / float64(conn.ok) / 1024
			rep.GoroutinesPerConn = float64(hs.Goroutines-rep.HeapBefore.Goroutines) / float64(conn.ok)
		}
	}
	rep.Disconnects = disconnects.Load()
	mu.Lock()
	rep.Errors = append(rep.Errors, errs...)
	mu.Unlock()
	progress("")
	return rep, ctx.Err()
}
