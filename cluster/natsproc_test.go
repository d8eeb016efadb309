package cluster

import (
	"context"
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

// The three-server tests run real nats-server processes, built from the
// module version go.mod names. SECURECHAT_NATS_SERVER names a binary built
// beforehand (CI does); without it the first test that needs one builds it.
var natsBinary struct {
	once sync.Once
	dir  string // a build of our own, removed by TestMain
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if natsBinary.dir != "" {
		os.RemoveAll(natsBinary.dir)
	}
	os.Exit(code)
}

// natsServerVersion is the nats-server version go.mod requires, as linked
// into this test binary.
func natsServerVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/nats-io/nats-server/v2" {
				return d.Version
			}
		}
	}
	return ""
}

func natsServerBinary(t *testing.T) string {
	t.Helper()
	natsBinary.once.Do(func() {
		if p := os.Getenv("SECURECHAT_NATS_SERVER"); p != "" {
			natsBinary.path = p
			return
		}
		dir, err := os.MkdirTemp("", "securechat-nats-")
		if err != nil {
			natsBinary.err = err
			return
		}
		natsBinary.dir = dir
		path := filepath.Join(dir, "nats-server")
		cmd := exec.Command("go", "build", "-o", path, "github.com/nats-io/nats-server/v2")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			natsBinary.err = fmt.Errorf("%v\n%s", err, out)
			return
		}
		natsBinary.path = path
	})
	if natsBinary.err != nil {
		t.Skipf("no nats-server to run: SECURECHAT_NATS_SERVER is unset and building it from the module failed: %v", natsBinary.err)
	}
	out, err := exec.Command(natsBinary.path, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v", natsBinary.path, err)
	}
	if want := natsServerVersion(); want != "" && !strings.Contains(string(out), want) {
		t.Fatalf("%s is %s, but go.mod requires nats-server %s", natsBinary.path, strings.TrimSpace(string(out)), want)
	}
	return natsBinary.path
}

// natsNode is one nats-server process of a test cluster.
type natsNode struct {
	name                   string
	client, route, monitor int
	conf, logPath          string
	cmd                    *exec.Cmd
	done                   chan struct{} // closed when cmd has been waited for
}

type natsCluster struct {
	t     *testing.T
	bin   string
	nodes []*natsNode
}

// startNATSCluster starts three nats-server processes with JetStream,
// routed to each other on loopback, and waits until all are healthy. The
// processes are killed when the test ends.
func startNATSCluster(t *testing.T) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t, bin: natsServerBinary(t)}
	dir := t.TempDir()
	ports := freePorts(t, 9)
	for i := range 3 {
		c.nodes = append(c.nodes, &natsNode{
			name:    fmt.Sprintf("nats%d", i+1),
			client:  ports[3*i],
			route:   ports[3*i+1],
			monitor: ports[3*i+2],
		})
	}
	var routes []string
	for _, n := range c.nodes {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", n.route))
	}
	for _, n := range c.nodes {
		store := filepath.Join(dir, n.name)
		n.conf = filepath.Join(dir, n.name+".conf")
		n.logPath = filepath.Join(dir, n.name+".log")
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 256MB }
cluster {
  name: securechat-test
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, n.name, n.client, n.monitor, store, n.route, strings.Join(routes, ", "))
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.kill(n)
		}
		if t.Failed() {
			for _, n := range c.nodes {
				if b, err := os.ReadFile(n.logPath); err == nil {
					t.Logf("%s log (tail):\n%s", n.name, tail(string(b), 3000))
				}
			}
		}
	})
	for _, n := range c.nodes {
		c.start(n)
	}
	for _, n := range c.nodes {
		c.waitHealthy(n)
	}
	return c
}

func (c *natsCluster) urls() string {
	var us []string
	for _, n := range c.nodes {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", n.client))
	}
	return strings.Join(us, ",")
}

func (c *natsCluster) node(name string) *natsNode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no NATS node %q", name)
	return nil
}

func (c *natsCluster) start(n *natsNode) {
	c.t.Helper()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(c.bin, "-c", n.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", n.name, err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(n.done)
}

// kill sends SIGKILL to n's process, by its PID, and waits for it.
func (c *natsCluster) kill(n *natsNode) {
	if n.cmd == nil {
		return
	}
	_ = syscall.Kill(n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.done
	n.cmd = nil
}

// waitHealthy polls n's health endpoint, which answers 200 once the server
// is up and its JetStream assets are current with their leaders.
func (c *natsCluster) waitHealthy(n *natsNode) {
	c.t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", n.monitor)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(testTimeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-n.done:
			c.t.Fatalf("%s exited while starting", n.name)
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not become healthy (last: %v)", n.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePorts(t *testing.T, n int) []int {
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

// streamLeader is the NATS server leading the message stream's replicas.
func streamLeader(t *testing.T, ctx context.Context, c *Conn) string {
	t.Helper()
	s, err := c.js.Stream(ctx, StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatal("the message stream has no leader")
	}
	return info.Cluster.Leader
}

// TestClusterKillNATSNodeLosesNoAckedMessage publishes from four
// goroutines while the NATS server leading the R3 stream is killed with
// SIGKILL. Every publish must be acked, each once; a follower running all
// along must apply exactly the acked messages in sequence order. The killed
// server then restarts and catches up: once it is current, the other
// servers' loss of one more node still leaves every message readable, since
// the restarted one now holds them.
func TestClusterKillNATSNodeLosesNoAckedMessage(t *testing.T) {
	start := time.Now()
	nc := startNATSCluster(t)
	t.Logf("three NATS servers healthy after %v", time.Since(start).Round(time.Millisecond))
	// One deadline for the whole test, which goes through two failovers
	// and a restart; each wait below has its own.
	ctx, cancel := context.WithTimeout(context.Background(), 3*testTimeout)
	defer cancel()
	pub, err := Connect(nc.urls(), &Options{Name: "securechat1", Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.EnsureStream(ctx, StreamConfig{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	sub, err := Connect(nc.urls(), &Options{Name: "securechat2", Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// The state bucket, R3 too, watched from the other node.
	pubState, err := pub.Shared(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	subState, err := sub.Shared(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	var seen changes
	w, err := subState.Watch(ctx, seen.add)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	var live collector
	f, err := sub.Follow(ctx, 0, live.apply)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	// A second follower stands for a securechat node that is killed at
	// the same moment as the NATS server and restarts after the traffic:
	// it resumes from one past what it had applied.
	var restartedNode collector
	r1, err := sub.Follow(ctx, 0, restartedNode.apply)
	if err != nil {
		t.Fatal(err)
	}

	const writers, each = 4, 75
	var (
		mu    sync.Mutex
		acked = map[string]uint64{} // message ID → sequence
		wg    sync.WaitGroup
		errs  = make(chan error, writers)
	)
	killAt := make(chan struct{})
	var killOnce sync.Once
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				seq, err := pub.Publish(ctx, Message{ID: id, Kind: KindMsg, Room: fmt.Sprintf("#r%d", w), From: "alice", Text: id})
				if err != nil {
					errs <- fmt.Errorf("publish %s: %w", id, err)
					return
				}
				mu.Lock()
				acked[id] = seq
				if len(acked) == writers*each/4 {
					killOnce.Do(func() { close(killAt) })
				}
				mu.Unlock()
			}
		})
	}
	<-killAt
	victim := nc.node(streamLeader(t, ctx, pub))
	killed := time.Now()
	nc.kill(victim)
	if err := r1.Stop(); err != nil {
		t.Errorf("stopping a follower: %v", err)
	}
	wg.Wait()
	t.Logf("killed the stream leader %s with %d of %d acked; the rest acked %v later", victim.name, writers*each/4, writers*each, time.Since(killed).Round(time.Millisecond))
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Every ack is a distinct sequence.
	bySeq := map[uint64]string{}
	for id, seq := range acked {
		if other, dup := bySeq[seq]; dup {
			t.Fatalf("%s and %s were both acked with sequence %d", id, other, seq)
		}
		bySeq[seq] = id
	}
	checkLog := func(what string, got []Message) {
		t.Helper()
		if len(got) != len(acked) {
			t.Errorf("%s: %d messages in the log, %d acked", what, len(got), len(acked))
		}
		for i, m := range got {
			if i > 0 && m.Seq <= got[i-1].Seq {
				t.Errorf("%s: seq %d after %d", what, m.Seq, got[i-1].Seq)
			}
			if want, ok := acked[m.ID]; !ok || want != m.Seq {
				t.Errorf("%s: message %s at seq %d, acked at %d (acked: %v)", what, m.ID, m.Seq, want, ok)
			}
		}
	}
	var maxSeq uint64
	for seq := range bySeq {
		maxSeq = max(maxSeq, seq)
	}
	waitFor(t, "the live follower to apply every acked message", func() bool { return f.Applied() >= maxSeq })
	t.Logf("the live follower had applied all %d messages %v after the kill", len(acked), time.Since(killed).Round(time.Millisecond))
	checkLog("live follower", live.get())

	// With one NATS server still down, a ban made on one node holds on the
	// other: at once for a read, a moment later for its watcher.
	banned := time.Now()
	if err := pubState.Ban(ctx, Restriction{User: "mallory", By: "alice"}); err != nil {
		t.Fatalf("Ban with a NATS server down: %v", err)
	}
	if _, ok, err := subState.Banned(ctx, "mallory"); !ok || err != nil {
		t.Errorf("Banned on the other node = %v, %v", ok, err)
	}
	waitFor(t, "the other node's watcher to see the ban", func() bool {
		for _, ch := range seen.get() {
			if ch.Kind == StateBan && ch.Name == "mallory" && !ch.Removed {
				return true
			}
		}
		return false
	})
	t.Logf("the ban reached the other node's watcher %v after Ban was called", time.Since(banned).Round(time.Millisecond))
	r2, err := sub.Follow(ctx, r1.Applied()+1, restartedNode.apply)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Stop()
	select {
	case <-r2.CaughtUp():
	case <-ctx.Done():
		t.Fatal("the restarted follower never caught up")
	}
	checkLog("follower stopped and resumed", restartedNode.get())

	// The killed server comes back and catches up with its peers.
	restarted := time.Now()
	nc.start(victim)
	nc.waitHealthy(victim)
	waitFor(t, "the restarted server's replica to be current", func() bool {
		s, err := pub.js.Stream(ctx, StreamName)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil || info.Cluster == nil {
			return false
		}
		if info.Cluster.Leader == victim.name {
			return true
		}
		for _, r := range info.Cluster.Replicas {
			if r.Name == victim.name {
				return r.Current && r.Lag == 0
			}
		}
		return false
	})

	t.Logf("%s restarted and current after %v", victim.name, time.Since(restarted).Round(time.Millisecond))

	// Now lose another server: the restarted one and the third still hold
	// every message, and a node starting from scratch reads them all.
	for _, n := range nc.nodes {
		if n != victim {
			nc.kill(n)
			break
		}
	}
	fresh, err := Connect(nc.urls(), &Options{Name: "securechat3", Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	var replay collector
	g, err := fresh.Follow(ctx, 0, replay.apply)
	if err != nil {
		t.Fatalf("follow on the two remaining servers: %v", err)
	}
	defer g.Stop()
	select {
	case <-g.CaughtUp():
	case <-ctx.Done():
		t.Fatalf("the replay never caught up: %d of %d applied", replay.len(), len(acked))
	}
	checkLog("replay after restart", replay.get())
}
