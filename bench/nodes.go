package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"securechat/handshake"
	"securechat/transport"
)

// NodesConfig configures StartNodes.
type NodesConfig struct {
	// Command is the argv of "securechat serve"; each node gets --creds,
	// --transport, --listen, --state-dir and the flags that lift serve's
	// limits, then ServeArgs.
	Command   []string
	Transport transport.Transport
	Groups    []handshake.Group
	Nodes     int
	Accounts  int // benchmark accounts, in one creds file all nodes load
	// ServeArgs are given to every node after the others, with "{node}"
	// replaced by the node's number from 0: for --cluster URL --node n{node}
	// once the nodes share a cluster.
	ServeArgs []string
	Stderr    io.Writer // the nodes' standard error; nil discards
}

// Nodes are serve processes started for a run: the nodes of one server,
// with one host key and one creds file.
type Nodes struct {
	// Target names every node in Addrs (Addr is the first): client i of
	// a run dials node i mod len(Addrs).
	Target Target
	nodes  []*node
	dir    string
}

// StartNodes provisions cfg.Accounts benchmark accounts in a temporary
// directory and starts cfg.Nodes serve processes on loopback that load
// them; the first makes the host key and the others get a copy, as an
// operator copies it to every node.
func StartNodes(ctx context.Context, cfg NodesConfig) (*Nodes, error) {
	switch {
	case len(cfg.Command) == 0:
		return nil, errors.New("bench: no serve command for the nodes")
	case cfg.Nodes < 1 || cfg.Nodes > MaxNodes:
		return nil, fmt.Errorf("bench: %d nodes; want 1 to %d", cfg.Nodes, MaxNodes)
	case cfg.Accounts < 1 || cfg.Accounts > MaxAccounts:
		return nil, fmt.Errorf("bench: %d accounts; want 1 to %d", cfg.Accounts, MaxAccounts)
	}
	var stderr io.Writer = io.Discard
	if cfg.Stderr != nil {
		// Every node's output goes to one writer, from a goroutine each.
		stderr = &lockedWriter{w: cfg.Stderr}
	}
	dir, err := os.MkdirTemp("", "securechat-nodes-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	ns := &Nodes{dir: dir, Target: Target{Transport: cfg.Transport, Prefix: "bench", Accounts: cfg.Accounts,
		Password: RandomPassword(), Groups: cfg.Groups}}
	names := make([]string, cfg.Accounts)
	for i := range names {
		names[i] = AccountName(ns.Target.Prefix, i)
	}
	creds := filepath.Join(dir, "creds.txt")
	if err := provision(creds, ns.Target.Password, accountGroup{names, BenchParams}); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for i := range cfg.Nodes {
		state := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(state, 0o700); err != nil {
			ns.Close()
			return nil, fmt.Errorf("bench: %w", err)
		}
		if i > 0 {
			key, err := os.ReadFile(filepath.Join(ns.nodes[0].state, serveHostKeyFile))
			if err == nil {
				err = os.WriteFile(filepath.Join(state, serveHostKeyFile), key, 0o600)
			}
			if err != nil {
				ns.Close()
				return nil, fmt.Errorf("bench: copying the host key: %w", err)
			}
		}
		argv := append(slices.Clone(cfg.Command), "--creds", creds, "--transport", cfg.Transport.Name(), "--state-dir", state)
		argv = append(argv, serveLimitFlags...)
		if len(cfg.Groups) > 0 {
			gs := make([]string, len(cfg.Groups))
			for j, g := range cfg.Groups {
				gs[j] = g.String()
			}
			argv = append(argv, "--kex", strings.Join(gs, ","))
		}
		for _, a := range cfg.ServeArgs {
			argv = append(argv, strings.ReplaceAll(a, "{node}", strconv.Itoa(i)))
		}
		n := &node{num: i, argv: argv, state: state, stderr: stderr}
		fp, err := n.start(ctx, "127.0.0.1:0")
		if err != nil {
			ns.Close()
			return nil, err
		}
		ns.nodes = append(ns.nodes, n)
		if i == 0 {
			ns.Target.Fingerprint = fp
		} else if fp != ns.Target.Fingerprint {
			ns.Close()
			return nil, fmt.Errorf("bench: node %d serves host key %s, not the first node's %s", i, fp, ns.Target.Fingerprint)
		}
		ns.Target.Addrs = append(ns.Target.Addrs, n.addr)
	}
	ns.Target.Addr = ns.Target.Addrs[0]
	return ns, nil
}

// Close kills the nodes and removes their directory.
func (ns *Nodes) Close() error {
	for _, n := range ns.nodes {
		n.kill()
	}
	return os.RemoveAll(ns.dir)
}

// MaxNodes bounds the nodes of a run.
const MaxNodes = 16

// serveHostKeyFile is the host key's name in a serve state directory; the
// nodes of one server share it, so the operator copies it, as this
// benchmark does.
const serveHostKeyFile = "host_ed25519_key"

// node is one serve process of a run.
type node struct {
	num    int
	argv   []string // without --listen
	addr   string
	state  string
	stderr io.Writer
	cmd    *exec.Cmd
	done   chan struct{}
}

// start runs the node at listen and waits until it serves; it returns
// its fingerprint.
func (n *node) start(ctx context.Context, listen string) (string, error) {
	argv := append(slices.Clone(n.argv), "--listen", listen)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = n.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("bench: node %d: %w", n.num, err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	type ready struct{ addr, fp string }
	readyC := make(chan ready, 1)
	go func() {
		defer close(n.done)
		sc := bufio.NewScanner(out)
		var r ready
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "securechat: serving "); ok {
				_, r.addr, _ = strings.Cut(rest, " on ")
			} else if fp, ok := strings.CutPrefix(line, "securechat: host key fingerprint "); ok {
				r.fp = fp
				readyC <- r
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
	}()
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	select {
	case r := <-readyC:
		if r.addr == "" {
			n.kill()
			return "", fmt.Errorf("bench: node %d: no address in its startup lines", n.num)
		}
		n.addr = r.addr
		return r.fp, nil
	case <-n.done:
		return "", fmt.Errorf("bench: node %d exited before it was ready", n.num)
	case <-timeout.C:
	case <-ctx.Done():
	}
	n.kill()
	return "", fmt.Errorf("bench: node %d not ready", n.num)
}

// kill sends SIGKILL and waits for the process to end.
func (n *node) kill() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
	n.cmd = nil
}
