package bench

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"securechat/chat"
	"securechat/chatstore"
	"securechat/credstore"
	"securechat/handshake"
	"securechat/metrics"
	"securechat/server"
	chatdb "securechat/store"
	"securechat/transport"
)

// ServeConfig configures Serve.
type ServeConfig struct {
	Transport transport.Transport
	Listen    string // HOST:PORT; empty means 127.0.0.1:0
	Creds     string // the creds file
	Groups    []handshake.Group
	Logger    *slog.Logger // nil discards
	// StoreDir, when set, keeps the chat state in chat.db there, as serve
	// does: messages are acknowledged once committed. Empty: no store.
	StoreDir string
	// MetricsListen, if set, serves the Prometheus metrics of serve
	// --metrics-listen there, to measure what they cost.
	MetricsListen string
	// Keys, when set, is an authorized keys file (as serve's --keys): its
	// accounts may log in by key, and their sessions then sign.
	Keys string
}

// Serve runs a chat server set up for load tests until ctx is done, then
// shuts it down gracefully. It is the server of the serve command with the
// limits a load test trips over lifted: creds are loaded without hash
// upgrades at login (so benchmark accounts stay cheap), the pre-login gate
// admits everyone, there are no per-source penalties and no flood limit.
// The host key is made fresh for the run. ready is called once the
// listener is up, with its address, the host key fingerprint and the
// metrics address (empty without MetricsListen).
func Serve(ctx context.Context, cfg ServeConfig, ready func(addr, fingerprint, metricsAddr string)) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	store, err := credstore.Load(cfg.Creds, &credstore.Options{NoRehash: true, Logger: log})
	if err != nil {
		return err
	}
	var verifier handshake.Verifier = store
	if cfg.Keys != "" {
		keys, err := credstore.LoadKeys(cfg.Keys)
		if err != nil {
			return err
		}
		verifier = keyVerifier{store, keys}
	}
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	// Benchmark accounts are shared by many clients: no per-account cap.
	hubCfg := &chat.Config{Logger: log, FloodRate: -1, MaxSessionsPerUser: -1}
	if cfg.StoreDir != "" {
		if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
			return err
		}
		st, err := chatdb.Open(filepath.Join(cfg.StoreDir, "chat.db"), &chatdb.Options{Logger: log})
		if err != nil {
			return err
		}
		// Closed after the hub (deferred first), so that every
		// acknowledged message is in.
		defer st.Close()
		hubCfg.Store = chatstore.New(st)
	}
	hub, err := chat.Start(hubCfg)
	if err != nil {
		return err
	}
	defer hub.Close()
	var mx *metrics.Metrics
	var hooks server.Hooks
	var mln net.Listener
	var sessions func() int // the server's, set before the metrics are served
	if cfg.MetricsListen != "" {
		if mln, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			return fmt.Errorf("bench: metrics: %w", err)
		}
		defer mln.Close()
		mx = metrics.New(metrics.Sources{Transport: cfg.Transport.Name(), Stats: hub.Stats,
			Sessions: func() int { return sessions() }})
		hooks = mx.Hooks()
	}
	srv := server.New(server.Config{
		Transport: cfg.Transport.Name(),
		HostKey:   hostKey,
		Groups:    cfg.Groups,
		Verifier:  verifier,
		Hub:       hub,
		Gate:      &server.StartupGate{},
		Penalties: &server.PenaltyBox{},
		Hooks:     hooks,
		Logger:    log,
	})
	metricsAddr := ""
	if mx != nil {
		sessions = srv.Sessions
		go mx.Serve(ctx, mln)
		metricsAddr = mln.Addr().String()
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := cfg.Transport.Listen(ctx, listen, &transport.Options{Logger: log})
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(context.WithoutCancel(ctx), ln) }()
	ready(ln.Addr().String(), handshake.Fingerprint(hostKey.Public().(ed25519.PublicKey)), metricsAddr)
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("bench: shutdown", "err", err)
	}
	if err := <-serveErr; !errors.Is(err, server.ErrServerClosed) {
		return err
	}
	return nil
}

// provisionKeys writes a fresh Ed25519 key for each of names into the
// authorized keys file path and returns the private keys, in order.
func provisionKeys(path string, names []string) ([]ed25519.PrivateKey, error) {
	keys := make([]ed25519.PrivateKey, len(names))
	err := credstore.EditKeys(path, func(f *credstore.KeysFile) error {
		for i, name := range names {
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			keys[i] = priv
			if err := f.Add(credstore.AuthorizedKey{User: name, Key: pub, Comment: "bench"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: authorized keys: %w", err)
	}
	return keys, nil
}

// HeapStats is what the Go runtime says about a server's memory, to tell
// live data from what the garbage collector or the OS keeps around.
type HeapStats struct {
	HeapAlloc    uint64 `json:"heap_alloc"`
	HeapInuse    uint64 `json:"heap_inuse"`
	HeapSys      uint64 `json:"heap_sys"`
	HeapReleased uint64 `json:"heap_released"`
	StackInuse   uint64 `json:"stack_inuse"`
	Sys          uint64 `json:"sys"`
	NumGC        uint32 `json:"num_gc"`
	Goroutines   int    `json:"goroutines"`
}

// ReadHeapStats reads the statistics of this process without forcing a
// collection.
func ReadHeapStats() HeapStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return HeapStats{
		HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, HeapSys: ms.HeapSys,
		HeapReleased: ms.HeapReleased, StackInuse: ms.StackInuse, Sys: ms.Sys,
		NumGC: ms.NumGC, Goroutines: runtime.NumGoroutine(),
	}
}

// Lines the server process prints on its standard output for the parent.
const (
	readyPrefix = "securechat: bench server ready "
	heapPrefix  = "securechat: bench server heap "
)

// ProcessConfig adds what only a server process has to ServeConfig.
type ProcessConfig struct {
	ServeConfig
	CPUProfile string // write a CPU profile of the whole run here
	MemProfile string // write a heap profile here on each SIGUSR1 (sampling every 512 bytes)
}

// RunServerProcess is the body of "securechat bench server": Serve, with
// the ready line (address, fingerprint, PID) printed to stdout for the
// parent, and on SIGUSR1 a line of HeapStats (and a heap profile, if
// asked). It returns when ctx is done.
func RunServerProcess(ctx context.Context, cfg ProcessConfig, stdout io.Writer) error {
	if _, err := RaiseFileLimit(); err != nil {
		return err
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.MemProfile != "" {
		// Fine sampling, so that per-connection costs of a few hundred
		// bytes show up in the profile.
		runtime.MemProfileRate = 512
	}
	var mu sync.Mutex // one line at a time on stdout
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-usr1:
			}
			b, _ := json.Marshal(ReadHeapStats())
			if cfg.MemProfile != "" {
				if f, err := os.Create(cfg.MemProfile); err == nil {
					pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
			mu.Lock()
			fmt.Fprintf(stdout, "%s%s\n", heapPrefix, b)
			mu.Unlock()
		}
	}()
	return Serve(ctx, cfg.ServeConfig, func(addr, fp, metricsAddr string) {
		mu.Lock()
		defer mu.Unlock()
		extra := ""
		if metricsAddr != "" {
			extra = " metrics=" + metricsAddr
		}
		fmt.Fprintf(stdout, "%stransport=%s addr=%s fingerprint=%s pid=%d%s\n",
			readyPrefix, cfg.Transport.Name(), addr, fp, os.Getpid(), extra)
	})
}

// ServerConfig configures StartServer.
type ServerConfig struct {
	Transport transport.Transport
	Accounts  int    // benchmark accounts to provision
	Prefix    string // their names' prefix; empty means "bench"
	// StrongAccounts are more accounts, with the same password but hashed
	// at StrongParams (zero: credstore.DefaultParams), for scenarios that
	// need logins to cost what they cost on a real server.
	StrongAccounts []string
	StrongParams   credstore.Params
	Groups         []handshake.Group
	Store          bool // keep the chat state in a database (ServeConfig.StoreDir)
	// KeyedAccounts: the first this many benchmark accounts get a fresh
	// Ed25519 key each, authorized on the server (Target.Keys), so that
	// they log in by key and can sign their messages.
	KeyedAccounts int

	// Command, when set, runs the server as a child process: the argv of
	// "securechat bench server", to which StartServer appends --creds,
	// --transport and --listen, then Args. The child's RSS is the server's
	// alone. Without Command the server runs in this process.
	Command []string
	// RealServe says Command is "securechat serve" instead: StartServer
	// then also gives it a state directory and the flags that lift the
	// limits a load test trips over, and reads its startup lines. Such a
	// child cannot report heap statistics or write profiles.
	RealServe bool
	// ServeFlags, when not nil, replace the flags that lift serve's limits
	// (serveLimitFlags), so that the limits can be measured.
	ServeFlags []string
	Args       []string
	Stderr     io.Writer // the child's standard error; nil discards
	// Metrics turns the server's Prometheus metrics on, on a loopback
	// port of its own (Server.MetricsAddr).
	Metrics bool
}

// serveLimitFlags lift the limits of "securechat serve" that a load test
// from one address trips over, and keep benchmark accounts cheap.
var serveLimitFlags = []string{
	"--max-startups", "0:0:0", "--per-source-max-startups", "0", "--no-penalties",
	"--flood-rate", "-1", "--max-sessions", "0", "--no-rehash", "--log-level", "error", "--log-format", "text",
}

// Server is a chat server started for a run, with its accounts.
type Server struct {
	Target    Target
	InProcess bool
	// MetricsAddr is where the server serves /metrics, if ServerConfig.Metrics.
	MetricsAddr string

	dir string

	cancel context.CancelFunc // in process
	done   chan error

	cmd       *exec.Cmd // child
	realServe bool
	heap      chan HeapStats
	exited    chan struct{}
}

// StartServer provisions cfg.Accounts benchmark accounts with a random
// shared password in a temporary directory and starts a server on
// loopback, in this process or as a child.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "bench"
	}
	if cfg.Accounts < 1 {
		cfg.Accounts = 1
	}
	dir, err := os.MkdirTemp("", "securechat-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	s := &Server{dir: dir, Target: Target{
		Transport: cfg.Transport, Prefix: cfg.Prefix, Accounts: cfg.Accounts,
		Password: RandomPassword(), Groups: cfg.Groups,
	}}
	creds := filepath.Join(dir, "creds.txt")
	names := make([]string, cfg.Accounts)
	for i := range names {
		names[i] = AccountName(cfg.Prefix, i)
	}
	groups := []accountGroup{{names, BenchParams}}
	if len(cfg.StrongAccounts) > 0 {
		p := cfg.StrongParams
		if p == (credstore.Params{}) {
			p = credstore.DefaultParams
		}
		groups = append(groups, accountGroup{cfg.StrongAccounts, p})
	}
	if err := provision(creds, s.Target.Password, groups...); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var keysFile string
	if cfg.KeyedAccounts > 0 {
		keysFile = filepath.Join(dir, "creds.keys")
		if s.Target.Keys, err = provisionKeys(keysFile, names[:min(cfg.KeyedAccounts, len(names))]); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if len(cfg.Command) == 0 {
		sc := ServeConfig{Transport: cfg.Transport, Creds: creds, Groups: cfg.Groups, Keys: keysFile}
		if cfg.Store {
			sc.StoreDir = filepath.Join(dir, "store")
		}
		if cfg.Metrics {
			sc.MetricsListen = "127.0.0.1:0"
		}
		err = s.startInProcess(sc)
	} else {
		err = s.startChild(ctx, cfg, creds, keysFile)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) startInProcess(cfg ServeConfig) error {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done, s.InProcess = cancel, make(chan error, 1), true
	s.Target.InProcess = true
	ready := make(chan struct{})
	go func() {
		s.done <- Serve(ctx, cfg, func(addr, fp, metricsAddr string) {
			s.Target.Addr, s.Target.Fingerprint, s.MetricsAddr = addr, fp, metricsAddr
			close(ready)
		})
	}()
	select {
	case <-ready:
		return nil
	case err := <-s.done:
		cancel()
		if err == nil {
			err = errors.New("bench: server ended before it was ready")
		}
		return err
	}
}

func (s *Server) startChild(ctx context.Context, cfg ServerConfig, creds, keys string) error {
	argv := append(append([]string{}, cfg.Command...),
		"--creds", creds, "--transport", cfg.Transport.Name(), "--listen", "127.0.0.1:0")
	if keys != "" {
		argv = append(argv, "--keys", keys)
	}
	if cfg.RealServe {
		argv = append(argv, "--state-dir", filepath.Join(s.dir, "state"))
		if cfg.ServeFlags != nil {
			argv = append(argv, cfg.ServeFlags...)
		} else {
			argv = append(argv, serveLimitFlags...)
		}
	} else if cfg.Store {
		argv = append(argv, "--store-dir", filepath.Join(s.dir, "store"))
	}
	if cfg.Metrics {
		argv = append(argv, "--metrics-listen", "127.0.0.1:0")
	}
	if len(cfg.Groups) > 0 {
		names := make([]string, len(cfg.Groups))
		for i, g := range cfg.Groups {
			names[i] = g.String()
		}
		argv = append(argv, "--kex", strings.Join(names, ","))
	}
	argv = append(argv, cfg.Args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = cfg.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("bench: server process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("bench: server process: %w", err)
	}
	s.cmd, s.heap, s.exited, s.realServe = cmd, make(chan HeapStats, 1), make(chan struct{}), cfg.RealServe
	ready := make(chan map[string]string, 1)
	go func() {
		defer close(s.exited)
		sc := bufio.NewScanner(out)
		serveKV := map[string]string{}
		for sc.Scan() {
			line := sc.Text()
			if cfg.RealServe {
				// "securechat: serving tcp on ADDR", then
				// "securechat: host key fingerprint SHA256:...".
				if rest, ok := strings.CutPrefix(line, "securechat: serving "); ok {
					if _, addr, ok := strings.Cut(rest, " on "); ok {
						serveKV["addr"] = addr
					}
				} else if rest, ok := strings.CutPrefix(line, "securechat: metrics on http://"); ok {
					serveKV["metrics"] = strings.TrimSuffix(rest, "/metrics")
				} else if fp, ok := strings.CutPrefix(line, "securechat: host key fingerprint "); ok {
					serveKV["fingerprint"] = fp
				}
				// The metrics line, if asked for, follows the fingerprint.
				if serveKV["fingerprint"] != "" && (!cfg.Metrics || serveKV["metrics"] != "") {
					select {
					case ready <- serveKV:
					default:
					}
				}
				continue
			}
			if rest, ok := strings.CutPrefix(line, readyPrefix); ok {
				kv := map[string]string{}
				for _, f := range strings.Fields(rest) {
					if k, v, ok := strings.Cut(f, "="); ok {
						kv[k] = v
					}
				}
				select {
				case ready <- kv:
				default:
				}
			} else if rest, ok := strings.CutPrefix(line, heapPrefix); ok {
				var hs HeapStats
				if json.Unmarshal([]byte(rest), &hs) == nil {
					select {
					case s.heap <- hs:
					default:
					}
				}
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
	}()
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	select {
	case kv := <-ready:
		s.Target.Addr, s.Target.Fingerprint = kv["addr"], kv["fingerprint"]
		s.Target.PID = cmd.Process.Pid
		s.MetricsAddr = kv["metrics"]
		if s.Target.Addr == "" || s.Target.Fingerprint == "" || cfg.Metrics && s.MetricsAddr == "" {
			s.Close()
			return errors.New("bench: server process: malformed ready line")
		}
		return nil
	case <-s.exited:
		return fmt.Errorf("bench: server process %s exited before it was ready", argv[0])
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	case <-timeout.C:
		s.Close()
		return errors.New("bench: server process not ready after 60 s")
	}
}

// HeapStats asks a child server for its runtime memory statistics. It
// returns an error for an in-process server, whose heap holds the clients
// too.
func (s *Server) HeapStats(ctx context.Context) (HeapStats, error) {
	if s.cmd == nil || s.realServe {
		return HeapStats{}, errors.New("bench: heap statistics need a \"securechat bench server\" process")
	}
	if err := s.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return HeapStats{}, fmt.Errorf("bench: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	select {
	case hs := <-s.heap:
		return hs, nil
	case <-s.exited:
		return HeapStats{}, errors.New("bench: server process exited")
	case <-ctx.Done():
		return HeapStats{}, fmt.Errorf("bench: heap statistics: %w", ctx.Err())
	}
}

// Close stops the server (gracefully, then by force after 15 s) and
// removes its files.
func (s *Server) Close() error {
	defer os.RemoveAll(s.dir)
	if s.cancel != nil {
		s.cancel()
		select {
		case err := <-s.done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("bench: in-process server did not stop within 15 s")
		}
	}
	if s.cmd == nil {
		return nil
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		return errors.New("bench: server process killed after 15 s")
	}
	if st := s.cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("bench: server process: %s", st)
	}
	return nil
}

// ScrapeMetrics fetches the server's /metrics every period until stop is
// called, as Prometheus would (more often than its usual 15 s, so that
// what collection costs shows), and returns how many scrapes succeeded.
// The first failure is returned by stop.
func (s *Server) ScrapeMetrics(period time.Duration) (stop func() (scrapes int, err error)) {
	done := make(chan struct{})
	result := make(chan struct {
		n   int
		err error
	}, 1)
	url := "http://" + s.MetricsAddr + "/metrics"
	go func() {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		tick := time.NewTicker(period)
		defer tick.Stop()
		n := 0
		var first error
		for {
			select {
			case <-done:
				result <- struct {
					n   int
					err error
				}{n, first}
				return
			case <-tick.C:
			}
			resp, err := client.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("bench: GET %s: %s", url, resp.Status)
				}
			}
			if err != nil && first == nil {
				first = err
			}
			if err == nil {
				n++
			}
		}
	}()
	return func() (int, error) {
		close(done)
		r := <-result
		return r.n, r.err
	}
}
