package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"securechat/handshake"
)

// serveNodes starts n independent servers on loopback that share the
// first one's host key and the environment's creds file, as the nodes of
// one server do.
func (e *e2eEnv) serveNodes(n int, extra ...string) []*e2eServer {
	e.t.Helper()
	var nodes []*e2eServer
	for i := range n {
		state := filepath.Join(e.dir, "node"+string(rune('a'+i)))
		if i > 0 {
			key, err := os.ReadFile(filepath.Join(nodes[0].stateDir, handshake.HostKeyFile))
			if err != nil {
				e.t.Fatal(err)
			}
			if err := os.MkdirAll(state, 0o700); err != nil {
				e.t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(state, handshake.HostKeyFile), key, 0o600); err != nil {
				e.t.Fatal(err)
			}
		}
		s := e.serve("tcp", "127.0.0.1:0", state, extra...)
		if i > 0 && s.fingerprint != nodes[0].fingerprint {
			e.t.Fatalf("node %d has host key %s, want the first node's %s", i, s.fingerprint, nodes[0].fingerprint)
		}
		nodes = append(nodes, s)
	}
	return nodes
}

// TestE2EFailover: a script client given two nodes' addresses, whose node
// is killed, reconnects to the other node and keeps chatting there. Its
// known_hosts lists only the first node (strict checking): the key it
// trusts there is trusted for the other address of the same connect, and
// recorded for it.
func TestE2EFailover(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	nodes := e.serveNodes(2, "--flood-rate", "-1")
	a, b := nodes[0], nodes[1]

	kh := e.knownHosts()
	connect := func(user, addrs string, extra ...string) []string {
		args := []string{"connect", "--transport", "tcp", "--user", user,
			"--password-file", e.passwordFile(user), "--known-hosts", kh}
		return append(append(args, extra...), addrs)
	}
	if _, stderr, code := e.run(connect("alice", a.addr, "--host-key-check", "accept-new")...); code != exitOK {
		t.Fatalf("first login at node a: exit %d\n%s", code, stderr)
	}

	alice := e.startHeld("alice", connect("alice", a.addr+","+b.addr, "--host-key-check", "strict")...)
	alice.expect("[system] logged in as alice")
	alice.send("at node a")
	alice.expect("[#general] alice: at node a")

	bob := b.heldClient("bob")
	bob.expect("[#general] -- bob joined")

	a.signal(syscall.SIGKILL)
	a.exit()
	killed := time.Now()
	// Sent at once: unacknowledged, it is sent again after the reconnect.
	alice.send("at node b")
	bob.expect("[#general] alice: at node b")
	// Not asserted (the machine may be busy): how long the failover took.
	t.Logf("from kill -9 to a message delivered through the other node: %s", time.Since(killed).Round(time.Millisecond))

	alice.waitStderr("Permanently added '" + b.addr + "'")
	khText, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(khText), b.addr+" ") {
		t.Errorf("known_hosts does not list node b after the failover:\n%s", khText)
	}

	alice.closeStdin()
	alice.expectExit(exitOK)
	bob.closeStdin()
	bob.expectExit(exitOK)
}
