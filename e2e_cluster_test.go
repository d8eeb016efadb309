package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"securechat/handshake"
	"securechat/internal/natstest"
)

// e2eCluster is securechat servers joined through NATS servers, all on
// loopback, serving one chat with one host key.
type e2eCluster struct {
	env     *e2eEnv
	nats    *natstest.Cluster
	servers []*e2eServer
	dirs    []string
}

// startE2ECluster starts n NATS servers (one stream, n replicas) and n
// securechat servers, node1 to noden, each with its own database.
func startE2ECluster(t *testing.T, n int) *e2eCluster {
	t.Helper()
	nc := natstest.Start(t, n)
	e := newE2EEnv(t)
	c := &e2eCluster{env: e, nats: nc}
	// Every server presents the same host key: clients see one server.
	key := filepath.Join(e.dir, "host_ed25519_key")
	if _, _, err := handshake.LoadOrCreateHostKey(key); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		dir := filepath.Join(e.dir, fmt.Sprintf("state%d", i+1))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, hostKeyFile), pem, 0o600); err != nil {
			t.Fatal(err)
		}
		c.dirs = append(c.dirs, dir)
		c.servers = append(c.servers, c.serve(i, "127.0.0.1:0"))
	}
	return c
}

// serve starts securechat server i (0-based) on listen.
func (c *e2eCluster) serve(i int, listen string) *e2eServer {
	return c.env.serve("tcp", listen, c.dirs[i], "--flood-rate", "-1",
		"--cluster", c.nats.URLs(), "--cluster-replicas", fmt.Sprint(len(c.nats.Servers)),
		"--node", fmt.Sprintf("node%d", i+1))
}

// history returns the room messages a fresh client of s gets: those
// replayed when it joins #general, then those /history pages back, as
// printed.
func history(t *testing.T, s *e2eServer, user string) []string {
	t.Helper()
	p := s.client(user, []string{"/history 200"})
	if code := p.exit(); code != exitOK {
		t.Fatalf("%s's /history on %s: exit %d", user, s.addr, code)
	}
	var out []string
	for _, l := range p.stdoutLines() {
		if strings.Contains(l, "(history)") && !strings.Contains(l, "--") {
			out = append(out, l)
		}
	}
	return out
}

// TestE2EClusterThreeNodes runs three securechat servers on three NATS
// servers: alice on node1, bob on node2 and carol on node3 chat in a room
// and in direct messages as on one server; /who lists everyone wherever it
// is asked; every node serves the same history; a ban made on node1 ends
// bob's session on node2 and refuses his login on node3.
func TestE2EClusterThreeNodes(t *testing.T) {
	t.Parallel()
	c := startE2ECluster(t, 3)
	s1, s2, s3 := c.servers[0], c.servers[1], c.servers[2]
	if s1.fingerprint != s2.fingerprint || s2.fingerprint != s3.fingerprint {
		t.Fatalf("the nodes present different host keys: %s %s %s", s1.fingerprint, s2.fingerprint, s3.fingerprint)
	}

	alice := s1.heldClient("alice")
	bob := s2.heldClient("bob", "--no-reconnect")
	carol := s3.heldClient("carol")

	alice.send("hello from node1")
	for _, p := range []*proc{alice, bob, carol} {
		p.expect("[#general] alice: hello from node1")
	}
	bob.send("hello from node2")
	for _, p := range []*proc{alice, bob, carol} {
		p.expect("[#general] bob: hello from node2")
	}
	carol.send("hello from node3")
	for _, p := range []*proc{alice, bob, carol} {
		p.expect("[#general] carol: hello from node3")
	}

	// Direct messages cross nodes, and reach nobody else.
	alice.send("/msg bob psst from node1")
	bob.expect("[dm] alice -> bob: psst from node1")
	alice.expect("[dm] alice -> bob: psst from node1")
	bob.send("/msg carol psst from node2")
	carol.expect("[dm] bob -> carol: psst from node2")
	if carol.countLines("psst from node1") != 0 || alice.countLines("psst from node2") != 0 {
		t.Error("a direct message reached someone it was not for")
	}

	// /who on any node lists the users of all three.
	for _, p := range []*proc{alice, bob, carol} {
		p.send("/who")
		p.waitAny("#general (3): alice bob carol")
	}
	alice.send("/whois carol")
	alice.waitAny("carol is online on node3")

	// Every node has the same history of the room, in the same order.
	want := history(t, s1, "alice")
	if len(want) != 6 {
		t.Fatalf("node1's history: %q, want the 3 messages twice (replay, /history)", want)
	}
	for i, s := range []*e2eServer{s2, s3} {
		if got := history(t, s, "carol"); !slices.Equal(got, want) {
			t.Errorf("node%d's history %q, node1's %q", i+2, got, want)
		}
	}

	// carol, an admin, bans bob from node1: his session on node2 ends,
	// and his login on node3 is refused.
	admin := s1.heldClient("carol")
	admin.send("/ban bob 1h spamming")
	bob.expect("[error] you were banned by carol")
	bob.expectExit(exitAuthFailed)
	admin.waitAny("banned bob")
	again := s3.client("bob", nil)
	again.expectExit(exitAuthFailed)
	if again.countLines("logged in") != 0 {
		t.Error("bob logged in on node3 after the ban on node1")
	}

	for _, p := range []*proc{alice, carol, admin} {
		p.closeStdin()
		p.expectExit(exitOK)
	}
	for _, s := range c.servers {
		s.stop()
	}
}
