// Package natstest runs real nats-server processes for tests: a cluster
// of them with JetStream, routed to each other on loopback, which a test
// can kill (SIGKILL) and restart one by one.
//
// The binary is the nats-server version go.mod requires. The environment
// variable SECURECHAT_NATS_SERVER names one built beforehand (CI does);
// without it the first test that needs one builds it, and a test that
// cannot have one is skipped with the reason.
package natstest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Wait bounds every wait for a server; it only turns a hang into a failure.
const Wait = 30 * time.Second

var binary struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the path of a nats-server binary, or skips t.
func Binary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		if p := os.Getenv("SECURECHAT_NATS_SERVER"); p != "" {
			binary.path = p
			return
		}
		// Left in the temporary directory: a test package has no hook
		// after its last test but TestMain. Set SECURECHAT_NATS_SERVER
		// to build it once for all packages instead.
		dir, err := os.MkdirTemp("", "securechat-natstest-")
		if err != nil {
			binary.err = err
			return
		}
		path := filepath.Join(dir, "nats-server")
		cmd := exec.Command("go", "build", "-o", path, "github.com/nats-io/nats-server/v2")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("%v\n%s", err, out)
			return
		}
		binary.path = path
	})
	if binary.err != nil {
		t.Skipf("no nats-server to run: SECURECHAT_NATS_SERVER is unset and building it from the module failed: %v", binary.err)
	}
	out, err := exec.Command(binary.path, "--version").CombinedOutput()
	if err != nil {
		t.Skipf("no nats-server to run: %s --version: %v", binary.path, err)
	}
	if want := requiredVersion(); want != "" && !strings.Contains(string(out), want) {
		t.Fatalf("%s is %s, but go.mod requires nats-server %s", binary.path, strings.TrimSpace(string(out)), want)
	}
	return binary.path
}

func requiredVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/nats-io/nats-server/v2" {
				return d.Version
			}
		}
	}
	return ""
}

// Server is one nats-server process of a [Cluster].
type Server struct {
	Name                   string
	Client, route, monitor int
	conf, logPath          string
	cmd                    *exec.Cmd
	done                   chan struct{}
}

// URL is the server's client address.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.Client) }

// Cluster is a set of nats-server processes routed to each other.
type Cluster struct {
	t       testing.TB
	bin     string
	Servers []*Server
}

// Start starts n nats-server processes with JetStream (n = 1: a single
// server, no routes), waits until each is healthy, and kills them when
// the test ends, logging their output if it failed.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, bin: Binary(t)}
	dir := t.TempDir()
	ports := freePorts(t, 3*n)
	for i := range n {
		c.Servers = append(c.Servers, &Server{Name: fmt.Sprintf("nats%d", i+1),
			Client: ports[3*i], route: ports[3*i+1], monitor: ports[3*i+2]})
	}
	var routes []string
	for _, s := range c.Servers {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", s.route))
	}
	for _, s := range c.Servers {
		s.conf = filepath.Join(dir, s.Name+".conf")
		s.logPath = filepath.Join(dir, s.Name+".log")
		conf := fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n"+
			"jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 256MB }\n",
			s.Name, s.Client, s.monitor, filepath.Join(dir, s.Name))
		if n > 1 {
			conf += fmt.Sprintf("cluster {\n  name: securechat-test\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n",
				s.route, strings.Join(routes, ", "))
		}
		if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, s := range c.Servers {
			c.Kill(s)
		}
		if t.Failed() {
			for _, s := range c.Servers {
				if b, err := os.ReadFile(s.logPath); err == nil {
					t.Logf("%s log (tail):\n%s", s.Name, tail(string(b), 2000))
				}
			}
		}
	})
	for _, s := range c.Servers {
		c.Restart(s)
	}
	for _, s := range c.Servers {
		c.WaitHealthy(s)
	}
	return c
}

// URLs is every server's client address, comma-separated.
func (c *Cluster) URLs() string {
	var us []string
	for _, s := range c.Servers {
		us = append(us, s.URL())
	}
	return strings.Join(us, ",")
}

// Restart starts s's process (again, on its data); see WaitHealthy.
func (c *Cluster) Restart(s *Server) {
	c.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(c.bin, "-c", s.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", s.Name, err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.done)
}

// Kill sends SIGKILL to s's process, by its PID, and waits for it.
func (c *Cluster) Kill(s *Server) {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// WaitHealthy polls s's health endpoint, which answers 200 once the
// server is up and its JetStream assets are current.
func (c *Cluster) WaitHealthy(s *Server) {
	c.t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", s.monitor)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(Wait)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-s.done:
			c.t.Fatalf("%s exited while starting", s.Name)
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not become healthy (last: %v)", s.Name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StreamLeader returns the server leading stream's replicas, asking the
// monitoring endpoint of each running server until one knows; nil if none
// does within Wait.
func (c *Cluster) StreamLeader(stream string) *Server {
	c.t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(Wait)
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if s.cmd == nil {
				continue
			}
			if name := streamLeader(client, s, stream); name != "" {
				for _, l := range c.Servers {
					if l.Name == name {
						return l
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func streamLeader(client *http.Client, s *Server, stream string) string {
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz?accounts=true&streams=true", s.monitor))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name    string `json:"name"`
				Cluster struct {
					Leader string `json:"leader"`
				} `json:"cluster"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if json.NewDecoder(resp.Body).Decode(&jsz) != nil {
		return ""
	}
	for _, a := range jsz.Accounts {
		for _, st := range a.Streams {
			if st.Name == stream {
				return st.Cluster.Leader
			}
		}
	}
	return ""
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
