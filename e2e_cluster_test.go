package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

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
		if err := os.WriteFile(filepath.Join(dir, handshake.HostKeyFile), pem, 0o600); err != nil {
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
		"--node", fmt.Sprintf("node%d", i+1), "--metrics-listen", "127.0.0.1:0")
}

// failoverClient starts a held script client of user given every node's
// address, node1 first, and waits until it has logged in on node1.
func (c *e2eCluster) failoverClient(user string) *proc {
	c.env.t.Helper()
	var addrs []string
	for _, s := range c.servers {
		addrs = append(addrs, s.addr)
	}
	args := c.servers[0].connectArgs(user, "")
	args[len(args)-1] = strings.Join(addrs, ",")
	p := c.env.startHeld(user, args...)
	p.expect("[system] logged in as " + user)
	return p
}

// firstOfEach is lines without repeats, each where it first occurs: a
// client resends what was not acknowledged, and what the log stored just
// before a node died comes again.
func firstOfEach(lines []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range lines {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}

// historyPage returns the page of #general that "/history 200" gets a
// fresh client of s, as printed, without the messages replayed at join.
func historyPage(t *testing.T, s *e2eServer, user string) []string {
	t.Helper()
	p := s.client(user, []string{"/history 200"})
	if code := p.exit(); code != exitOK {
		t.Fatalf("%s's /history on %s: exit %d", user, s.addr, code)
	}
	lines := p.stdoutLines()
	for i, l := range lines {
		var n int
		if _, err := fmt.Sscanf(l, "[system] %d message(s) of #general", &n); err == nil {
			if n > i {
				t.Fatalf("/history on %s says %d messages but printed %d lines", s.addr, n, i)
			}
			return lines[i-n : i]
		}
	}
	t.Fatalf("/history on %s: no page in %q", s.addr, lines)
	return nil
}

// waitWho sends /who from p until its answer is want, for up to 10 s:
// presence changes reach other nodes within a heartbeat or three.
func waitWho(t *testing.T, p *proc, want string) {
	t.Helper()
	waitReply(t, p, "/who", want)
}

// waitReply sends command from p until a line of its output holds want,
// for up to 10 s.
func waitReply(t *testing.T, p *proc, command, want string) {
	t.Helper()
	for range 40 {
		p.send(command)
		if p.countLines(want) > 0 {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: %s did not answer %q within 10 s", p.name, command, want)
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
	// Joins on other nodes are seen as on one server.
	alice.waitAny("[#general] -- bob joined")
	alice.waitAny("[#general] -- carol joined")

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
	// Away messages and part reasons cross nodes too.
	carol.send("/away at lunch")
	waitReply(t, alice, "/whois carol", "away: at lunch")
	carol.send("/part #general back at two")
	alice.waitAny("[#general] -- carol left (back at two)")
	carol.send("/join #general")
	alice.waitAny("[#general] -- carol joined")

	// Each node's metrics show its link, the three nodes and the log it
	// applied: the three messages at least.
	for i, s := range c.servers {
		base := s.metricsURL()
		samples, _ := scrape(t, base)
		if samples["securechat_cluster_connected"] != 1 || samples["securechat_cluster_nodes"] != 3 ||
			samples["securechat_cluster_log_applied_sequence"] < 3 || samples["securechat_messages_stored_total"] < 1 {
			t.Errorf("node%d's cluster metrics: connected %v, nodes %v, applied %v, stored %v; want 1, 3, at least 3, at least 1",
				i+1, samples["securechat_cluster_connected"], samples["securechat_cluster_nodes"],
				samples["securechat_cluster_log_applied_sequence"], samples["securechat_messages_stored_total"])
		}
		if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
			t.Errorf("node%d /readyz: %d %q", i+1, code, body)
		}
	}

	// Every node has the same history of the room, in the same order.
	want := historyPage(t, s1, "alice")
	if len(want) != 3 {
		t.Fatalf("node1's history: %q, want the 3 messages", want)
	}
	for i, s := range []*e2eServer{s2, s3} {
		if got := historyPage(t, s, "carol"); !slices.Equal(got, want) {
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
	alice.waitAny("[#general] -- bob quit")
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

// TestE2EClusterFaults kills nodes during traffic. A securechat node dies
// (SIGKILL) while alice sends through it; she and carol, its users, were
// given every node's address and fail over to another node by themselves.
// No message is lost: her client resends what the dead node did not
// acknowledge, so every line she sent is in the history every live node
// serves, in order (a line whose ack died with the node may be there
// twice), and bob's sessions on the other nodes see all of them live. Then the
// NATS server leading the stream dies while bob sends: the chat goes on
// and carol gets all of his messages, none twice. Both come back, and the
// restarted node serves the history of what happened while it was down.
func TestE2EClusterFaults(t *testing.T) {
	t.Parallel()
	c := startE2ECluster(t, 3)
	s1, s2, s3 := c.servers[0], c.servers[1], c.servers[2]
	alice := c.failoverClient("alice")
	carol := c.failoverClient("carol")
	bob := s2.heldClient("bob")
	bob3 := s3.heldClient("bob")
	waitWho(t, bob, "#general (3): alice bob carol")

	sent := numbered("through node1", 80)
	alice.send(sent...)
	alice.waitAny("[#general] alice: " + sent[4])
	bob.waitAny("[#general] alice: " + sent[9])
	s1.signal(syscall.SIGKILL)
	s1.exit()
	died := time.Now()
	// Sent after the kill, so through whichever node alice reaches next,
	// after every line before it (her client keeps their order).
	const marker = "after node1 died"
	alice.send(marker)
	for i, p := range []*proc{bob, bob3, alice, carol} {
		who := []string{"bob on node2", "bob on node3", "alice (failed over)", "carol (failed over)"}[i]
		// Live, or in the history replayed when carol rejoins.
		p.waitOut(p.out, "alice's "+marker, func(lines []string) bool {
			return slices.ContainsFunc(lines, func(l string) bool {
				return l == "[#general] alice: "+marker || l == "[#general] (history) alice: "+marker
			})
		})
		// Not asserted (the machine is shared): the time to fail over.
		t.Logf("%s saw alice's message sent after the kill %v after node1 died", who, time.Since(died).Round(10*time.Millisecond))
	}
	for _, p := range []*proc{alice, carol} {
		p.waitStderr("connection lost")
	}

	// Every live node serves all of alice's lines, in order; the ones
	// resent after the failover may be there twice, and nothing else is.
	want := append(slices.Clone(sent), marker)
	for _, s := range []*e2eServer{s2, s3} {
		var stored []string
		for _, l := range historyPage(t, s, "carol") {
			if m, ok := strings.CutPrefix(l, "[#general] (history) alice: "); ok {
				stored = append(stored, m)
			}
		}
		got := firstOfEach(stored)
		checkSequence(t, "the history of "+s.addr, got, want)
		t.Logf("%s stores %d of alice's lines for %d sent (%d resent after the failover, stored twice)", s.addr, len(stored), len(want), len(stored)-len(got))
	}
	for _, p := range []*proc{bob, bob3} {
		checkSequence(t, p.name, firstOfEach(messagesFrom(p.stdoutLines(), "#general", "alice")), want)
	}

	// The NATS server leading the stream dies while bob sends.
	leader := c.nats.StreamLeader("SECURECHAT")
	if leader == nil {
		t.Fatal("no NATS server leads the stream")
	}
	during := numbered("while NATS fails", 60)
	bob.send(during...)
	carol.waitAny("[#general] bob: " + during[9])
	c.nats.Kill(leader)
	killed := time.Now()
	carol.waitAny("[#general] bob: " + during[len(during)-1])
	t.Logf("the NATS stream leader %s killed; carol had all of bob's messages %v later", leader.Name, time.Since(killed).Round(100*time.Millisecond))
	checkSequence(t, "carol", messagesFrom(carol.stdoutLines(), "#general", "bob"), during)
	alice.waitAny("[#general] bob: " + during[len(during)-1])

	// Both come back; node1 catches up on what it missed.
	c.nats.Restart(leader)
	c.nats.WaitHealthy(leader)
	restarted := time.Now()
	s1 = c.serve(0, "127.0.0.1:0")
	t.Logf("node1 restarted and caught up in %v", time.Since(restarted).Round(100*time.Millisecond))
	want = historyPage(t, s2, "carol")
	if got := historyPage(t, s1, "carol"); !slices.Equal(got, want) {
		t.Errorf("node1 after its restart serves\n%q\nnode2 serves\n%q", got, want)
	}
	if !slices.Contains(want, "[#general] (history) bob: "+during[len(during)-1]) {
		t.Errorf("the history lacks bob's last message: %q", want)
	}
	bob.send("after the restarts")
	alice3 := s1.heldClient("alice")
	waitWho(t, alice3, "#general (3): alice bob carol")

	for _, p := range []*proc{alice, alice3, bob, bob3, carol} {
		p.closeStdin()
		p.expectExit(exitOK)
	}
	for _, s := range []*e2eServer{s1, s2, s3} {
		s.stop()
	}
}
