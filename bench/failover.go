package bench

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"securechat/client"
	"securechat/handshake"
	"securechat/transport"
)

// Bounds of a failover run.
const (
	MaxFailoverNodes = MaxNodes
	MaxFailoverKills = 1000
)

// FailoverConfig configures RunFailover.
type FailoverConfig struct {
	// Command is the argv of "securechat serve"; each node gets --creds,
	// --transport, --listen, --state-dir and the flags that lift serve's
	// limits, then ServeArgs.
	Command   []string
	Transport transport.Transport
	Groups    []handshake.Group
	Nodes     int // serve processes, 2 or more
	Clients   int // script clients, spread over the nodes
	Kills     int // kill -9 rounds, one node after another
	// ServeArgs are given to every node after the others, with "{node}"
	// replaced by the node's number from 0: for --cluster URL --node n{node}
	// once the nodes share a cluster.
	ServeArgs []string
	// Timeout bounds the wait for the clients of one killed node; 0 means
	// 60 s. A client not back by then counts as not recovered.
	Timeout time.Duration
	Stderr  io.Writer // the nodes' standard error; nil discards
	// Progress, if set, gets a line now and then.
	Progress func(string)
}

// FailoverRound is one kill.
type FailoverRound struct {
	Node      int `json:"node"`
	Affected  int `json:"affected"`  // clients whose connection the kill ended
	Recovered int `json:"recovered"` // of which chatted again before the timeout
	// P50MS and MaxMS are over the affected clients: from the kill to
	// their first message delivered to another client after it.
	P50MS float64 `json:"p50_ms"`
	MaxMS float64 `json:"max_ms"`
}

// FailoverReport is the outcome of RunFailover.
type FailoverReport struct {
	Transport string          `json:"transport"`
	Nodes     int             `json:"nodes"`
	Clients   int             `json:"clients"`
	ServeArgs []string        `json:"serve_args,omitempty"`
	Rounds    []FailoverRound `json:"rounds"`
	// Over the kills: the time until every client of the killed node
	// chatted again (each round's MaxMS).
	KillP50MS float64 `json:"kill_p50_ms"`
	KillMaxMS float64 `json:"kill_max_ms"`
	// Over every affected client of every kill.
	ClientP50MS float64  `json:"client_p50_ms"`
	ClientMaxMS float64  `json:"client_max_ms"`
	Lost        int      `json:"lost"` // affected clients not back before the timeout
	Errors      []string `json:"errors,omitempty"`
}

// Err reports a run in which some clients did not come back.
func (r *FailoverReport) Err() error {
	if r.Lost > 0 {
		return fmt.Errorf("bench: %d clients did not chat again within the timeout after a kill", r.Lost)
	}
	return nil
}

// WriteText prints the rounds and the summary.
func (r *FailoverReport) WriteText(w io.Writer) {
	args := ""
	if len(r.ServeArgs) > 0 {
		args = ", serve " + strings.Join(r.ServeArgs, " ")
	}
	fmt.Fprintf(w, "failover over %s: %d nodes, %d clients%s\n", r.Transport, r.Nodes, r.Clients, args)
	for i, rd := range r.Rounds {
		fmt.Fprintf(w, "kill %2d: node %d, %d clients lost their node, %d chatting again: p50 %.0f ms, max %.0f ms\n",
			i+1, rd.Node, rd.Affected, rd.Recovered, rd.P50MS, rd.MaxMS)
	}
	fmt.Fprintf(w, "per kill (all its clients back): p50 %.0f ms, max %.0f ms over %d kills\n", r.KillP50MS, r.KillMaxMS, len(r.Rounds))
	fmt.Fprintf(w, "per client: p50 %.0f ms, max %.0f ms; not back in time: %d\n", r.ClientP50MS, r.ClientMaxMS, r.Lost)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

// lockedWriter serialises the writes of several goroutines to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// lineWriter calls line for each complete line written to it.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	line func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// failoverProbe is the text each client sends right after a kill.
const failoverProbe = "failover-probe"

type probeKey struct{ round, client int }

// RunFailover starts cfg.Nodes serve processes sharing one host key and
// one creds file, connects cfg.Clients script clients (the client package
// of "securechat connect", with its reconnect loop) each given every
// node's address, starting with a different node, and then cfg.Kills times
// kills one node with SIGKILL, the nodes in turn. Right after each kill
// every client sends a probe; a client on the killed node sends it again
// once it has reconnected, to the next address. The time of a client is
// from the kill until another client reads its probe. The killed node is
// restarted on its address before the next round.
func RunFailover(ctx context.Context, cfg FailoverConfig) (*FailoverReport, error) {
	switch {
	case len(cfg.Command) == 0:
		return nil, errors.New("bench: failover needs the serve command")
	case cfg.Nodes < 2 || cfg.Nodes > MaxFailoverNodes:
		return nil, fmt.Errorf("bench: %d nodes; want 2 to %d", cfg.Nodes, MaxFailoverNodes)
	case cfg.Clients < 2 || cfg.Clients > MaxAccounts:
		return nil, fmt.Errorf("bench: %d clients; want 2 to %d", cfg.Clients, MaxAccounts)
	case cfg.Kills < 1 || cfg.Kills > MaxFailoverKills:
		return nil, fmt.Errorf("bench: %d kills; want 1 to %d", cfg.Kills, MaxFailoverKills)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	var stderr io.Writer = io.Discard
	if cfg.Stderr != nil {
		// The nodes and the clients write to it at once.
		stderr = &lockedWriter{w: cfg.Stderr}
	}
	ns, err := StartNodes(ctx, NodesConfig{Command: cfg.Command, Transport: cfg.Transport, Groups: cfg.Groups,
		Nodes: cfg.Nodes, Accounts: cfg.Clients, ServeArgs: cfg.ServeArgs, Stderr: stderr})
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	nodes, addrs, fingerprint, password := ns.nodes, ns.Target.Addrs, ns.Target.Fingerprint, ns.Target.Password
	names := make([]string, cfg.Clients)
	for i := range names {
		names[i] = AccountName(ns.Target.Prefix, i)
	}
	progress(fmt.Sprintf("%d nodes up: %s", len(nodes), strings.Join(addrs, ",")))

	// The clients: client i lists the nodes from node i mod N on.
	var (
		mu       sync.Mutex
		seen     = map[probeKey]time.Time{}
		seenC    = make(chan struct{}, 1)
		lostConn = make([]atomic.Int32, cfg.Clients)
		loggedIn sync.WaitGroup
	)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stdins := make([]*io.PipeWriter, cfg.Clients)
	var clients sync.WaitGroup
	defer func() {
		for _, w := range stdins {
			if w != nil {
				w.Close()
			}
		}
		cancel()
		clients.Wait()
	}()
	hostKey := func(k ed25519.PublicKey) error {
		if fp := handshake.Fingerprint(k); fp != fingerprint {
			return fmt.Errorf("host key %s, want %s", fp, fingerprint)
		}
		return nil
	}
	pw := func(attempt int) ([]byte, error) {
		if attempt > 1 {
			return nil, handshake.ErrAuthFailed
		}
		return slices.Clone(password), nil
	}
	loggedIn.Add(cfg.Clients)
	for i := range cfg.Clients {
		var list []string
		for j := range addrs {
			list = append(list, addrs[(i+j)%len(addrs)])
		}
		ccfg := &client.Config{Addr: list[0], Addrs: list, Transport: cfg.Transport, User: names[i], Groups: cfg.Groups,
			HostKey: hostKey, Password: pw, Reconnect: true, ClientName: "securechat bench failover"}
		var once sync.Once
		out := &lineWriter{line: func(l string) {
			if strings.Contains(l, "[system] logged in as ") {
				once.Do(loggedIn.Done)
				return
			}
			_, rest, ok := strings.Cut(l, ": "+failoverProbe+" ")
			if !ok {
				return
			}
			var k probeKey
			if _, err := fmt.Sscanf(rest, "%d %d", &k.round, &k.client); err != nil || k.client == i {
				return
			}
			mu.Lock()
			if _, ok := seen[k]; !ok {
				seen[k] = time.Now()
				select {
				case seenC <- struct{}{}:
				default:
				}
			}
			mu.Unlock()
		}}
		errOut := &lineWriter{line: func(l string) {
			if strings.Contains(l, "connection lost") {
				lostConn[i].Add(1)
			}
		}}
		in, w := io.Pipe()
		stdins[i] = w
		clients.Add(1)
		go func() {
			defer clients.Done()
			err := client.RunScript(cctx, ccfg, in, out, errOut, false)
			in.CloseWithError(io.ErrClosedPipe)
			if err != nil && cctx.Err() == nil {
				fmt.Fprintf(stderr, "bench: client %s: %v\n", names[i], err)
			}
			once.Do(loggedIn.Done)
		}()
	}
	loggedIn.Wait()
	progress(fmt.Sprintf("%d clients logged in", cfg.Clients))

	rep := &FailoverReport{Transport: cfg.Transport.Name(), Nodes: cfg.Nodes, Clients: cfg.Clients, ServeArgs: cfg.ServeArgs}
	var perClient, perKill []time.Duration
	for round := range cfg.Kills {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		victim := nodes[round%len(nodes)]
		before := make([]int32, cfg.Clients)
		for i := range before {
			before[i] = lostConn[i].Load()
		}
		killed := time.Now()
		victim.kill()
		for i, w := range stdins {
			// A pipe write waits for the client to read it; clients
			// read their input at once, reconnecting or not.
			fmt.Fprintf(w, "%s %d %d\n", failoverProbe, round, i)
		}
		// Wait until every client's probe was read by another client,
		// or the timeout.
		deadline := time.NewTimer(cfg.Timeout)
		for {
			mu.Lock()
			n := 0
			for i := range cfg.Clients {
				if _, ok := seen[probeKey{round, i}]; ok {
					n++
				}
			}
			mu.Unlock()
			if n == cfg.Clients {
				break
			}
			select {
			case <-seenC:
				continue
			case <-deadline.C:
			case <-ctx.Done():
				deadline.Stop()
				return nil, ctx.Err()
			}
			break
		}
		deadline.Stop()
		rd := FailoverRound{Node: victim.num}
		var times []time.Duration
		mu.Lock()
		for i := range cfg.Clients {
			if lostConn[i].Load() == before[i] {
				continue
			}
			rd.Affected++
			if t, ok := seen[probeKey{round, i}]; ok {
				rd.Recovered++
				times = append(times, t.Sub(killed))
			}
		}
		mu.Unlock()
		rep.Lost += rd.Affected - rd.Recovered
		if rd.Affected == 0 {
			rep.Errors = append(rep.Errors, fmt.Sprintf("kill %d: no client was on node %d", round+1, victim.num))
		}
		if len(times) > 0 {
			slices.Sort(times)
			rd.P50MS, rd.MaxMS = ms(times[(len(times)-1)/2]), ms(times[len(times)-1])
			perClient = append(perClient, times...)
			if rd.Recovered == rd.Affected {
				perKill = append(perKill, times[len(times)-1])
			}
		}
		rep.Rounds = append(rep.Rounds, rd)
		progress(fmt.Sprintf("kill %d of %d: node %d, %d of %d clients back, max %.0f ms",
			round+1, cfg.Kills, victim.num, rd.Recovered, rd.Affected, rd.MaxMS))
		// Back on its address for the next rounds; a pause lets the
		// clients' acknowledgements settle first.
		if _, err := victim.start(ctx, victim.addr); err != nil {
			return nil, err
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if len(perKill) > 0 {
		slices.Sort(perKill)
		rep.KillP50MS, rep.KillMaxMS = ms(perKill[(len(perKill)-1)/2]), ms(perKill[len(perKill)-1])
	}
	if len(perClient) > 0 {
		slices.Sort(perClient)
		rep.ClientP50MS, rep.ClientMaxMS = ms(perClient[(len(perClient)-1)/2]), ms(perClient[len(perClient)-1])
	}
	return rep, nil
}
