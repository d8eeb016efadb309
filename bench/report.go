package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

func ratioText(ratio float64, baseline string) string {
	if baseline == "" || ratio == 0 {
		return ""
	}
	if ratio < 0.1 {
		return fmt.Sprintf("%.4f× %s", ratio, baseline)
	}
	return fmt.Sprintf("%.2f× %s", ratio, baseline)
}

// WriteText prints the machine as one header line.
func (m Machine) WriteText(w io.Writer) {
	load := make([]string, len(m.LoadAvg))
	for i, l := range m.LoadAvg {
		load[i] = fmt.Sprintf("%.2f", l)
	}
	fmt.Fprintf(w, "machine: %d CPUs (GOMAXPROCS %d), %s, %s, %s, load %s, fd limit %d\n",
		m.CPUs, m.GOMAXPROCS, m.CPUModel, m.GoVersion, m.OS, strings.Join(load, " "), m.FDLimit)
}

// WriteText prints the report as a table.
func (r *ThroughputReport) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "throughput\tMB/s\tMiB\tseconds\tallocs/record\tratio")
	for _, row := range r.Rows {
		allocs := ""
		if row.AllocsPerRecord != nil {
			allocs = fmt.Sprintf("%.4f", *row.AllocsPerRecord)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%d\t%.2f\t%s\t%s\n", row.Name, row.MBps, row.Bytes>>20, row.Seconds, allocs, ratioText(row.Ratio, row.Baseline))
	}
	tw.Flush()
}

// WriteText prints the report as a table.
func (r *HandshakeReport) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "handshakes over %s, concurrency %d, %d rounds\tper second\tcount\terrors\tmean ms\tratio\n", r.Transport, r.Concurrency, r.Rounds)
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%d\t%d\t%.2f\t%s\n", row.Name, row.PerSecond, row.Count, row.Errors, row.MeanMS, ratioText(row.Ratio, row.Baseline))
	}
	tw.Flush()
	for _, row := range r.Rows {
		if row.FirstError != "" {
			fmt.Fprintf(w, "first error of %s: %s\n", row.Name, row.FirstError)
		}
	}
}

func kib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// WriteText prints the report as aligned lines.
func (r *FanoutReport) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	rate := fmt.Sprintf("%g msg/s each", r.RatePerSender)
	if r.RatePerSender == 0 {
		rate = fmt.Sprintf("as fast as possible, window %d per sender", r.Window)
	}
	fmt.Fprintf(tw, "fanout over %s, server %s\t\n", r.Transport, r.Server)
	fmt.Fprintf(tw, "clients\t%d connected of %d, %d errors\n", r.Connected, r.Clients, r.ConnectErrors)
	fmt.Fprintf(tw, "connect time\t%.2f s for all, then %.2f s until every join was read\n", r.ConnectSeconds, r.SettleSeconds)
	fmt.Fprintf(tw, "senders\t%d, %s, for %.1f s\n", r.Senders, rate, r.SendSeconds)
	fmt.Fprintf(tw, "messages\t%d sent, %d rejected\n", r.Sent, r.Rejected)
	fmt.Fprintf(tw, "deliveries\t%d of %d expected, %d lost\n", r.Delivered, r.Expected, r.Lost)
	fmt.Fprintf(tw, "delivered/s\t%.0f\n", r.DeliveredPerSecond)
	fmt.Fprintf(tw, "latency\tp50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)
	fmt.Fprintf(tw, "disconnects\t%d\n", r.Disconnects)
	switch r.Store {
	case "on":
		fmt.Fprintf(tw, "store\ton, %.0f messages acknowledged (stored) per second\n", r.StoredPerSecond)
	case "off":
		fmt.Fprintf(tw, "store\toff\n")
	}
	if r.Signed {
		fmt.Fprintf(tw, "signed	every message; %d receivers verified %d, %d failed\n", r.Verifiers, r.Verified, r.VerifyFailed)
	}
	if r.ServerCPUCores > 0 {
		fmt.Fprintf(tw, "cpu while sending\tserver %.2f cores (%.1f µs per delivery), load generator %.2f cores\n", r.ServerCPUCores, r.ServerCPUPerDelivery, r.BenchCPUCores)
	} else {
		fmt.Fprintf(tw, "cpu while sending\t%.2f cores (server and load generator)\n", r.BenchCPUCores)
	}
	for _, g := range r.Groups {
		fmt.Fprintf(tw, "cpu while sending\t%s %.2f cores (%.1f µs per delivery)\n", g.Name, g.Cores, g.PerDelivery)
	}
	if r.RSSScope != "" {
		fmt.Fprintf(tw, "rss (%s)\t%s before, %s after\n", r.RSSScope, kib(r.RSSBefore), kib(r.RSSAfter))
	}
	tw.Flush()
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

// WriteText prints the report as aligned lines.
func (r *IdleReport) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "idle over %s, server %s\t\n", r.Transport, r.Server)
	fmt.Fprintf(tw, "clients\t%d connected of %d, %d errors\n", r.Connected, r.Clients, r.ConnectErrors)
	fmt.Fprintf(tw, "connect time\t%.2f s (%.0f connections/s)\n", r.ConnectSeconds, r.ConnectsPerSecond)
	fmt.Fprintf(tw, "held\t%.1f s, %d disconnects\n", r.HoldSeconds, r.Disconnects)
	if r.RSSScope != "" {
		fmt.Fprintf(tw, "rss (%s)\t%s before, %s after, %.1f KiB per connection\n", r.RSSScope, kib(r.RSSBefore), kib(r.RSSAfter), r.RSSPerConnKiB)
	}
	if r.HeapAfter != nil {
		fmt.Fprintf(tw, "go heap in use + stacks\t%.1f KiB per connection, %.2f goroutines per connection\n", r.HeapPerConnKiB, r.GoroutinesPerConn)
		fmt.Fprintf(tw, "go runtime after\theap in use %s, stacks %s, heap released %s, sys %s\n",
			kib(int64(r.HeapAfter.HeapInuse)), kib(int64(r.HeapAfter.StackInuse)), kib(int64(r.HeapAfter.HeapReleased)), kib(int64(r.HeapAfter.Sys)))
	}
	tw.Flush()
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}
