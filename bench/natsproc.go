package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MaxNATSServers bounds the NATS servers a run starts.
const MaxNATSServers = 5

// NATSConfig configures StartNATS.
type NATSConfig struct {
	// Binary is the nats-server executable (the version go.mod requires;
	// see SECURECHAT_NATS_SERVER).
	Binary  string
	Servers int       // 1: one server; more: a routed cluster, JetStream replicated
	Stderr  io.Writer // the servers' output; nil discards
}

// NATS is nats-server processes started for a run, with JetStream, on
// loopback, routed to each other when there are several.
type NATS struct {
	procs []*exec.Cmd
	done  []chan struct{}
	urls  []string
	dir   string
}

// StartNATS starts cfg.Servers nats-server processes with JetStream on
// free loopback ports, and waits until each reports healthy.
func StartNATS(ctx context.Context, cfg NATSConfig) (*NATS, error) {
	if cfg.Binary == "" {
		return nil, errors.New("bench: no nats-server binary: set SECURECHAT_NATS_SERVER or --nats-server")
	}
	if cfg.Servers < 1 || cfg.Servers > MaxNATSServers {
		return nil, fmt.Errorf("bench: %d NATS servers; want 1 to %d", cfg.Servers, MaxNATSServers)
	}
	out := cfg.Stderr
	if out == nil {
		out = io.Discard
	}
	dir, err := os.MkdirTemp("", "securechat-nats-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	n := &NATS{dir: dir}
	ports, err := freePorts(3 * cfg.Servers)
	if err != nil {
		n.Close()
		return nil, err
	}
	var routes []string
	for i := range cfg.Servers {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3*i+1]))
	}
	var monitors []int
	for i := range cfg.Servers {
		name := "nats" + strconv.Itoa(i+1)
		client, route, monitor := ports[3*i], ports[3*i+1], ports[3*i+2]
		conf := fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n"+
			"jetstream { store_dir: %q }\n", name, client, monitor, filepath.Join(dir, name))
		if cfg.Servers > 1 {
			conf += fmt.Sprintf("cluster {\n  name: securechat-bench\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n",
				route, strings.Join(routes, ", "))
		}
		path := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			n.Close()
			return nil, fmt.Errorf("bench: %w", err)
		}
		cmd := exec.Command(cfg.Binary, "-c", path)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			n.Close()
			return nil, fmt.Errorf("bench: starting nats-server: %w", err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		n.procs, n.done = append(n.procs, cmd), append(n.done, done)
		n.urls = append(n.urls, fmt.Sprintf("nats://127.0.0.1:%d", client))
		monitors = append(monitors, monitor)
	}
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(time.Minute)
	for i, m := range monitors {
		for {
			resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", m))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-n.done[i]:
				n.Close()
				return nil, fmt.Errorf("bench: nats-server %d exited while starting", i+1)
			case <-ctx.Done():
				n.Close()
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				n.Close()
				return nil, fmt.Errorf("bench: nats-server %d not healthy within a minute", i+1)
			}
		}
	}
	return n, nil
}

// URLs is every server's client address, comma-separated, as serve
// --cluster takes them.
func (n *NATS) URLs() string { return strings.Join(n.urls, ",") }

// PIDs are the servers' process ids; none for a nil NATS.
func (n *NATS) PIDs() []int {
	if n == nil {
		return nil
	}
	var out []int
	for _, c := range n.procs {
		out = append(out, c.Process.Pid)
	}
	return out
}

// ServeArgs are the serve flags that put node {node} in this cluster,
// every message kept by every server.
func (n *NATS) ServeArgs() []string {
	return []string{"--cluster", n.URLs(), "--cluster-replicas", strconv.Itoa(len(n.urls)), "--node", "n{node}"}
}

// Close kills the servers and removes their data; a nil NATS is none.
func (n *NATS) Close() error {
	if n == nil {
		return nil
	}
	for i, c := range n.procs {
		c.Process.Signal(syscall.SIGKILL)
		<-n.done[i]
	}
	n.procs = nil
	return os.RemoveAll(n.dir)
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// PIDs are the nodes' process ids (of those running).
func (ns *Nodes) PIDs() []int {
	var out []int
	for _, n := range ns.nodes {
		if n.cmd != nil {
			out = append(out, n.cmd.Process.Pid)
		}
	}
	return out
}

// ProcessGroup is processes whose CPU a fan-out run measures together:
// the serve nodes, or the NATS servers.
type ProcessGroup struct {
	Name string
	PIDs []int
}

// GroupCPU is a group's CPU during the sending phase.
type GroupCPU struct {
	Name  string  `json:"name"`
	Cores float64 `json:"cpu_cores"`
	// PerDelivery is the group's CPU time per message delivered to a
	// client, in µs.
	PerDelivery float64 `json:"cpu_us_per_delivery"`
}

// groupsCPU sums the CPU time of each group's processes.
func groupsCPU(gs []ProcessGroup) []time.Duration {
	out := make([]time.Duration, len(gs))
	for i, g := range gs {
		for _, pid := range g.PIDs {
			if c, err := ProcessCPU(pid); err == nil {
				out[i] += c
			}
		}
	}
	return out
}
