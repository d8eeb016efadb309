package chatcluster

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"securechat/chat"
	"securechat/chat/chattest"
	"securechat/chatstore"
	"securechat/cluster"
	"securechat/msgsig"
	"securechat/store"
)

// testTimeout stops a test that hangs; nothing asserts how fast anything is.
const testTimeout = 20 * time.Second

// natsServer starts one in-process NATS server with JetStream on a random
// loopback port, stopped when the test ends.
func natsServer(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: "embedded", Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(testTimeout) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv.ClientURL()
}

// node is one securechat server of a test cluster: a hub on its own
// store, joined to the NATS server.
type node struct {
	t     *testing.T
	name  string
	hub   *chat.Hub
	relay *Node
	st    *store.Store
}

// startNode starts a server called name on the database at dbPath ("":
// in memory).
func startNode(t *testing.T, url, name, dbPath string) *node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	relay, err := Join(ctx, url, Config{Link: cluster.Options{Name: name, Timeout: testTimeout}, Heartbeat: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var st *store.Store
	if dbPath == "" {
		st = store.OpenMemory(nil)
	} else if st, err = store.Open(dbPath, nil); err != nil {
		t.Fatal(err)
	}
	hub, err := chat.Start(&chat.Config{
		Store: chatstore.New(st), Relay: relay, FloodRate: -1,
		IsAdmin:    func(u string) bool { return u == "admin" },
		UserExists: func(u string) bool { return u != "nobody" },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(ctx, hub); err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, name: name, hub: hub, relay: relay, st: st}
	t.Cleanup(n.stop)
	return n
}

// stop stops the server cleanly: hub, then relay, then store.
func (n *node) stop() {
	if n.hub == nil {
		return
	}
	n.hub.Close()
	n.relay.Close()
	n.st.Close()
	n.hub = nil
}

type client struct {
	t       *testing.T
	name    string
	conn    *chattest.Pipe
	done    chan error
	seq     int
	welcome *chat.Event // or the error that refused the login
	seen    []*chat.Event
}

func (n *node) login(name string, rooms ...string) *client {
	n.t.Helper()
	return n.loginAs(chat.Identity{User: name}, rooms...)
}

func (n *node) loginAs(id chat.Identity, rooms ...string) *client {
	n.t.Helper()
	name := id.User
	c := &client{t: n.t, name: name, done: make(chan error, 1),
		conn: chattest.NewPipe()}
	go func() { c.done <- n.hub.Serve(context.Background(), c.conn, id) }()
	c.send(&chat.Request{Type: chat.TypeHello, ID: "h", V: 1, Rooms: rooms})
	c.welcome = c.wait(func(e *chat.Event) bool { return e.Type == chat.TypeWelcome || e.Type == chat.TypeError })
	n.t.Cleanup(func() { c.conn.Close() })
	return c
}

func (c *client) send(r *chat.Request) {
	c.t.Helper()
	p, err := chat.EncodeRequest(r)
	if err != nil {
		c.t.Fatal(err)
	}
	c.conn.In <- p
}

// line sends a typed line and returns the events up to its answer, that
// one last.
func (c *client) line(text, room string) []*chat.Event {
	c.t.Helper()
	r, err := chat.ParseLine(text, room)
	if err != nil {
		c.t.Fatalf("%q: %v", text, err)
	}
	c.seq++
	r.ID = fmt.Sprintf("%s-%d", c.name, c.seq)
	c.send(r)
	return c.until(func(e *chat.Event) bool { return e.ID == r.ID && (e.Type == chat.TypeAck || e.Type == chat.TypeError) })
}

func (c *client) until(f func(*chat.Event) bool) []*chat.Event {
	c.t.Helper()
	var got []*chat.Event
	deadline := time.After(testTimeout)
	for {
		select {
		case e := <-c.conn.Events:
			got = append(got, e)
			c.seen = append(c.seen, e)
			if f(e) {
				return got
			}
		case <-deadline:
			c.t.Fatalf("%s: gave up waiting; got %s", c.name, dump(got))
		}
	}
}

func (c *client) wait(f func(*chat.Event) bool) *chat.Event {
	c.t.Helper()
	got := c.until(f)
	return got[len(got)-1]
}

func (c *client) waitMsg(kind, text string) *chat.Event {
	c.t.Helper()
	return c.wait(func(e *chat.Event) bool { return e.Type == chat.TypeMsg && e.Kind == kind && e.Text == text })
}

func dump(es []*chat.Event) string {
	var b strings.Builder
	for _, e := range es {
		p, _ := chat.EncodeEvent(e)
		b.Write(p)
		b.WriteByte('\n')
	}
	return b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTwoServersOneChat runs two hubs on one NATS server: a room message
// and a direct message sent on one reach the other, in one order, with
// the same mid, acked only after the log stored them; /who and /whois see
// users of both; a ban made on one refuses a login on the other.
func TestTwoServersOneChat(t *testing.T) {
	url := natsServer(t)
	n1 := startNode(t, url, "node1", "")
	n2 := startNode(t, url, "node2", "")

	alice := n1.login("alice", "#go")
	bob := n2.login("bob", "#go")
	// alice sees bob join on node2 as she would on her own server.
	alice.wait(func(e *chat.Event) bool { return e.Kind == chat.KindJoin && e.From == "bob" && e.Room == "#go" })
	if !slices.Contains(n1.relay.Members("#go"), "bob") {
		t.Errorf("node1's members of #go on other servers: %v", n1.relay.Members("#go"))
	}

	evs := alice.line("hello from node1", "#go")
	ack := evs[len(evs)-1]
	if ack.Type != chat.TypeAck || ack.MID != chat.LogID(1) {
		t.Fatalf("alice's answer: %s", dump(evs))
	}
	// The sender gets its own message before the ack.
	own := slices.IndexFunc(evs, func(e *chat.Event) bool { return e.Type == chat.TypeMsg && e.Text == "hello from node1" })
	if own < 0 || evs[own].MID != ack.MID {
		t.Errorf("alice did not get her message, with the ack's mid, before the ack: %s", dump(evs))
	}
	if got := bob.waitMsg(chat.KindMsg, "hello from node1"); got.MID != ack.MID || got.From != "alice" {
		t.Errorf("bob got %+v, want mid %d from alice", got, ack.MID)
	}
	bob.line("hi back", "#go")
	alice.waitMsg(chat.KindMsg, "hi back")

	// A direct message to a user on the other server.
	evs = alice.line("/msg bob psst", "#go")
	if last := evs[len(evs)-1]; last.Type != chat.TypeAck {
		t.Fatalf("/msg bob: %s", dump(evs))
	}
	if got := bob.waitMsg(chat.KindDM, "psst"); got.From != "alice" || got.Queued {
		t.Errorf("bob got the dm as %+v", got)
	}

	// /who on node1 lists bob, who is on node2; /whois says where.
	who := alice.line("/who", "#go")
	if r := who[slices.IndexFunc(who, func(e *chat.Event) bool { return e.Type == chat.TypeReply })]; !slices.Equal(r.Members, []string{"alice", "bob"}) {
		t.Errorf("/who #go on node1: %v", r.Members)
	}
	whois := alice.line("/whois bob", "#go")
	if r := whois[0]; r.Type != chat.TypeReply || !strings.Contains(r.Text, "node2") || !slices.Equal(r.Joined, []string{"#go"}) {
		t.Errorf("/whois bob on node1: %s", dump(whois))
	}

	// A topic set on node2 is the topic on node1.
	bob.line("/topic clusters", "#go")
	alice.waitMsg(chat.KindTopic, "clusters")

	admin := n1.login("admin", "#go")

	// A ban made on node1 ends bob's session on node2 and refuses his
	// next login there at once.
	evs = admin.line("/ban bob 1h spam", "#go")
	if last := evs[len(evs)-1]; last.Type != chat.TypeAck {
		t.Fatalf("/ban: %s", dump(evs))
	}
	bob.wait(func(e *chat.Event) bool { return e.Type == chat.TypeError && e.Code == chat.CodeBanned })
	alice.wait(func(e *chat.Event) bool { return e.Kind == chat.KindQuit && e.From == "bob" })
	if again := n2.login("bob"); again.welcome.Type != chat.TypeError || again.welcome.Code != chat.CodeBanned {
		t.Errorf("bob logged in on node2 after the ban: %+v", again.welcome)
	}
	evs = admin.line("/unban bob", "#go")
	if last := evs[len(evs)-1]; last.Type != chat.TypeAck {
		t.Fatalf("/unban: %s", dump(evs))
	}
	if again := n2.login("bob"); again.welcome.Type != chat.TypeWelcome {
		t.Errorf("bob could not log in on node2 after the unban: %+v", again.welcome)
	}

	// The MOTD set on node1 is the one a login on node2 gets.
	admin.line("/motd be nice", "#go")
	waitFor(t, "a login on node2 to get the new MOTD", func() bool {
		c := n2.login("carol")
		defer c.conn.Close()
		return c.welcome.MOTD == "be nice"
	})

	// Every event alice got, logged or made by node1 alone (joins,
	// notices), has a mid above the one before.
	alice.line("/who", "#go")
	var last uint64
	for _, e := range alice.seen {
		if e.Type != chat.TypeMsg || e.History {
			continue
		}
		if e.MID <= last {
			t.Errorf("alice got mid %d (%s %q) after %d", e.MID, e.Kind, e.Text, last)
		}
		last = e.MID
	}

	// Both stores hold the same history.
	h1, err := n1.st.History("#go", 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node2's store to hold what node1's does", func() bool {
		h2, err := n2.st.History("#go", 0, 50)
		return err == nil && len(h2) == len(h1) && len(h1) == 3
	})
	h2, _ := n2.st.History("#go", 0, 50)
	for i := range h1 {
		if h1[i].ID != h2[i].ID || h1[i].Text != h2[i].Text || !h1[i].Time.Equal(h2[i].Time) {
			t.Errorf("history %d: node1 %+v, node2 %+v", i, h1[i], h2[i])
		}
	}
}

// TestKickReachesEveryServer: an admin's /kick on node1 ends the user's
// sessions on node1 and node2, each told who kicked it, and the answer
// counts them all; the room sees the user quit once. A kick of a user
// online nowhere still says so.
func TestKickReachesEveryServer(t *testing.T) {
	url := natsServer(t)
	n1 := startNode(t, url, "node1", "")
	n2 := startNode(t, url, "node2", "")

	alice := n1.login("alice", "#go")
	bob1 := n1.login("bob", "#go")
	bob2 := n2.login("bob", "#go")
	admin := n1.login("admin", "#go")
	waitFor(t, "node1 to see bob on node2", func() bool { return slices.Equal(n1.relay.Where("bob"), []string{"node2"}) })

	evs := admin.line("/kick bob flooding", "#go")
	reply := evs[slices.IndexFunc(evs, func(e *chat.Event) bool { return e.Type == chat.TypeReply || e.Type == chat.TypeError })]
	if reply.Type != chat.TypeReply || reply.Sessions != 2 {
		t.Errorf("/kick bob on node1: %s", dump(evs))
	}
	if last := evs[len(evs)-1]; last.Type != chat.TypeAck {
		t.Errorf("/kick bob: no ack: %s", dump(evs))
	}
	for _, b := range []*client{bob1, bob2} {
		e := b.wait(func(e *chat.Event) bool { return e.Type == chat.TypeError && e.Code == chat.CodeKicked })
		if !strings.Contains(e.Text, "kicked by admin") || !strings.Contains(e.Text, "flooding") {
			t.Errorf("bob was told %q", e.Text)
		}
		select {
		case <-b.done:
		case <-time.After(testTimeout):
			t.Fatal("a kicked session of bob goes on")
		}
	}
	alice.wait(func(e *chat.Event) bool { return e.Kind == chat.KindQuit && e.From == "bob" })
	waitFor(t, "node1 to see bob gone from node2", func() bool { return len(n1.relay.Where("bob")) == 0 })
	evs = admin.line("/kick bob", "#go")
	if last := evs[len(evs)-1]; last.Code != chat.CodeOffline {
		t.Errorf("/kick of bob, online nowhere: %s", dump(evs))
	}
}

// TestQueuedDMDeliveredOnceInTheCluster: a direct message queued for carol
// while she is offline everywhere is delivered at her login on node1, and
// not again at her next login, on node2; one queued after that is.
func TestQueuedDMDeliveredOnceInTheCluster(t *testing.T) {
	url := natsServer(t)
	n1 := startNode(t, url, "node1", "")
	n2 := startNode(t, url, "node2", "")
	alice := n1.login("alice", "#go")

	if evs := alice.line("/msg carol first", "#go"); evs[len(evs)-1].Type != chat.TypeAck {
		t.Fatalf("/msg carol: %s", dump(evs))
	}
	// node2 has applied it too.
	waitFor(t, "node2 to store the queued message", func() bool {
		p, err := n2.st.Pending("carol", 10)
		return err == nil && len(p) == 1
	})
	c1 := n1.login("carol")
	if e := c1.waitMsg(chat.KindDM, "first"); !e.Queued {
		t.Errorf("carol got the queued message on node1 as %+v", e)
	}
	// The mark is shared after the delivery; a login reads what the
	// bucket holds.
	waitFor(t, "the bucket to hold carol's delivered mark", func() bool {
		through, err := n1.relay.DeliveredThrough("carol")
		return err == nil && through > 0
	})
	c1.conn.Close()
	<-c1.done
	waitFor(t, "carol to be offline on node2's view", func() bool { return len(n2.relay.Where("carol")) == 0 })

	if evs := alice.line("/msg carol second", "#go"); evs[len(evs)-1].Type != chat.TypeAck {
		t.Fatalf("/msg carol: %s", dump(evs))
	}
	waitFor(t, "node2 to store the second queued message", func() bool {
		p, err := n2.st.Pending("carol", 10)
		return err == nil && len(p) >= 1 && p[len(p)-1].Text == "second"
	})
	c2 := n2.login("carol")
	c2.waitMsg(chat.KindDM, "second")
	c2.line("/rooms", "")
	for _, e := range c2.seen {
		if e.Kind == chat.KindDM && e.Text == "first" {
			t.Errorf("node2 delivered again the message node1 delivered: %+v", e)
		}
	}
}

// TestRoomsRejoinedOnAnyServer: the rooms carol was in when she left
// node1 are those her next login rejoins on node2, and a part there holds
// at her next login on node1.
func TestRoomsRejoinedOnAnyServer(t *testing.T) {
	url := natsServer(t)
	n1 := startNode(t, url, "node1", "")
	n2 := startNode(t, url, "node2", "")
	roomsOf := func(c *client) []string {
		t.Helper()
		if c.welcome.Type != chat.TypeWelcome {
			t.Fatalf("%s's login: %+v", c.name, c.welcome)
		}
		var out []string
		for _, r := range c.welcome.Rooms {
			out = append(out, r.Room)
		}
		slices.Sort(out)
		return out
	}
	// A change of rooms is shared after its ack; the next login reads
	// what the bucket holds.
	leave := func(n *node, c *client, rooms ...string) {
		t.Helper()
		waitFor(t, "the bucket to hold "+c.name+"'s rooms", func() bool {
			got, _, err := n.relay.SavedRooms(c.name)
			return err == nil && slices.Equal(got, rooms)
		})
		c.conn.Close()
		<-c.done
		waitFor(t, c.name+" to be offline on "+n.name, func() bool {
			return !slices.Contains(n.relay.presence.Where(c.name), n.name)
		})
	}

	c := n1.login("carol", "#go")
	if evs := c.line("/join #rust", "#go"); evs[len(evs)-1].Type != chat.TypeAck {
		t.Fatalf("/join #rust: %s", dump(evs))
	}
	leave(n1, c, "#go", "#rust")
	c = n2.login("carol")
	if got := roomsOf(c); !slices.Equal(got, []string{"#go", "#rust"}) {
		t.Errorf("carol's login on node2 rejoined %v, want the rooms she was in on node1", got)
	}
	if evs := c.line("/part #go", "#rust"); evs[len(evs)-1].Type != chat.TypeAck {
		t.Fatalf("/part #go: %s", dump(evs))
	}
	leave(n2, c, "#rust")
	c = n1.login("carol")
	if got := roomsOf(c); !slices.Equal(got, []string{"#rust"}) {
		t.Errorf("carol's login on node1 rejoined %v, want #rust alone after her part on node2", got)
	}
}

// TestServerCatchesUpAfterRestart stops one server, sends while it is
// down, and starts it again on the same database: it follows the log from
// where its store stopped, and a join there replays what it missed.
func TestServerCatchesUpAfterRestart(t *testing.T) {
	url := natsServer(t)
	db := filepath.Join(t.TempDir(), "chat.db")
	n1 := startNode(t, url, "node1", "")
	n2 := startNode(t, url, "node2", db)

	alice := n1.login("alice", "#go")
	alice.line("before", "#go")
	waitFor(t, "node2 to store the first message", func() bool { return n2.st.LastID() >= chat.LogID(1) })
	n2.stop()

	for i := range 3 {
		alice.line(fmt.Sprintf("while down %d", i), "#go")
	}
	// A direct message to an account with no session anywhere is queued.
	evs := alice.line("/msg bob later", "#go")
	if last := evs[len(evs)-1]; last.Type != chat.TypeAck {
		t.Fatalf("/msg bob: %s", dump(evs))
	}

	n2 = startNode(t, url, "node2", db)
	if err := n2.st.Sync(); err != nil {
		t.Fatal(err)
	}
	msgs, err := n2.st.History("#go", 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.Text)
	}
	if want := []string{"before", "while down 0", "while down 1", "while down 2"}; !slices.Equal(got, want) {
		t.Errorf("node2's history after the restart: %q, want %q", got, want)
	}
	bob := n2.login("bob", "#go")
	bob.waitMsg(chat.KindMsg, "while down 2")
	if dm := bob.waitMsg(chat.KindDM, "later"); !dm.Queued {
		t.Errorf("the queued dm reached bob unmarked: %+v", dm)
	}
}

// TestSignedMessageThroughTheLog: a signed room message and a signed
// direct message reach a user on another server with the key, signature,
// counter and clock they were sent with, and verify there, live and from
// that server's store (PROTOCOL.md §13.16).
func TestSignedMessageThroughTheLog(t *testing.T) {
	url := natsServer(t)
	n1 := startNode(t, url, "node1", "")
	n2 := startNode(t, url, "node2", "")
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer := &msgsig.Sender{Signer: priv}
	alice := n1.loginAs(chat.Identity{User: "alice", SigningKey: pub}, "#go")
	bob := n2.login("bob", "#go")
	waitFor(t, "node1 to see bob", func() bool { return len(n1.relay.Where("bob")) > 0 })

	send := func(kind, target, text string) *chat.Request {
		t.Helper()
		sg, err := signer.Sign(kind, target, "alice", text)
		if err != nil {
			t.Fatal(err)
		}
		r := &chat.Request{Type: chat.TypeMsg, ID: "s-" + kind, Text: text, Sig: sg.Sig, Ctr: sg.Ctr, Cts: sg.Cts}
		if kind == msgsig.KindDM {
			r.To = target
		} else {
			r.Room, r.Kind = target, kind
		}
		alice.send(r)
		if a := alice.wait(func(e *chat.Event) bool { return e.ID == r.ID }); a.Type != chat.TypeAck {
			t.Fatalf("signed %s: %+v", kind, a)
		}
		return r
	}
	check := func(who string, e *chat.Event, r *chat.Request) {
		t.Helper()
		if e.Key != msgsig.EncodeKey(pub) || e.Sig != r.Sig || e.Ctr != r.Ctr || e.Cts != r.Cts {
			t.Errorf("%s got key=%q sig=%q ctr=%d cts=%d, want the request's", who, e.Key, e.Sig, e.Ctr, e.Cts)
			return
		}
		target := e.Room
		if e.Kind == chat.KindDM {
			target = e.To
		}
		sig, err := msgsig.DecodeSig(e.Sig)
		if err != nil || !msgsig.Verify(pub, &msgsig.Fields{Kind: e.Kind, Target: target, From: e.From,
			Counter: e.Ctr, Time: e.Cts, Text: e.Text}, sig) {
			t.Errorf("%s: %+v does not verify (%v)", who, e, err)
		}
	}
	room := send(msgsig.KindMsg, "#go", "signed hello")
	check("bob, live", bob.waitMsg(chat.KindMsg, "signed hello"), room)
	dm := send(msgsig.KindDM, "bob", "signed psst")
	check("bob, dm", bob.waitMsg(chat.KindDM, "signed psst"), dm)

	// carol joins #go on node2 later: the replay comes from node2's view.
	carol := n2.login("carol", "#go")
	check("carol, replayed", carol.wait(func(e *chat.Event) bool { return e.History && e.Text == "signed hello" }), room)
}

// TestStatsFollowTheLink: what a node reports for its metrics follows the
// NATS link down and back up, counts its own heartbeat and the log it
// applied.
func TestStatsFollowTheLink(t *testing.T) {
	storeDir := t.TempDir()
	start := func(port int) *server.Server {
		srv, err := server.NewServer(&server.Options{
			ServerName: "embedded", Host: "127.0.0.1", Port: port,
			JetStream: true, StoreDir: storeDir, NoLog: true, NoSigs: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		if !srv.ReadyForConnections(testTimeout) {
			t.Fatal("NATS server not ready")
		}
		return srv
	}
	srv := start(server.RANDOM_PORT)
	port := srv.Addr().(*net.TCPAddr).Port
	n1 := startNode(t, srv.ClientURL(), "node1", "")
	alice := n1.login("alice", "#go")
	alice.line("counted", "#go")
	waitFor(t, "node1 to see its link, itself and the message", func() bool {
		st := n1.relay.Stats()
		return st.Connected && st.Nodes == 1 && st.Applied >= 1
	})

	srv.Shutdown()
	srv.WaitForShutdown()
	waitFor(t, "node1 to see its link down", func() bool { return !n1.relay.Stats().Connected })

	srv = start(port)
	waitFor(t, "node1 to see its link back", func() bool {
		st := n1.relay.Stats()
		return st.Connected && st.Reconnects >= 1
	})
	// Stopped here, while NATS answers, so that leaving is quick.
	n1.stop()
	srv.Shutdown()
	srv.WaitForShutdown()
}

// TestNewsCountedOnAnyServer: where a user stopped reading a room on one
// server is where a login on another starts counting what is new, though
// that server never saw the user.
func TestNewsCountedOnAnyServer(t *testing.T) {
	url := natsServer(t)
	n1 := startNode(t, url, "node1", "")
	n2 := startNode(t, url, "node2", "")

	bob := n1.login("bob", "#go")
	alice := n1.login("alice", "#go")
	alice.line("seen by bob", "#go")
	bob.waitMsg(chat.KindMsg, "seen by bob")
	bob.conn.Close()
	<-bob.done
	waitFor(t, "the bucket to hold where bob stopped reading #go", func() bool {
		read, err := n2.relay.LastRead("bob")
		return err == nil && read["#go"] > 0
	})
	for i := range 3 {
		alice.line(fmt.Sprintf("missed %d", i), "#go")
	}
	waitFor(t, "node2 to store the messages", func() bool {
		msgs, err := n2.st.History("#go", 0, 10)
		return err == nil && len(msgs) == 4
	})

	bob = n2.login("bob")
	notice := bob.wait(func(e *chat.Event) bool { return e.Kind == chat.KindNotice && strings.Contains(e.Text, "new message") })
	if !strings.HasPrefix(notice.Text, "3 new message(s) in #go") {
		t.Errorf("bob's login on node2 said %q, want 3 new messages in #go", notice.Text)
	}
}

// TestAwayAcrossServers: an away message set on one server is seen from
// another: a direct message gets the away notice, /whois and /who show
// it, and /back takes it away everywhere.
func TestAwayAcrossServers(t *testing.T) {
	n1, _, alice, bob := aliceAndBobInGo(t)
	if evs := bob.line("/away at lunch", "#go"); evs[len(evs)-1].Type != chat.TypeAck {
		t.Fatalf("/away: %s", dump(evs))
	}
	waitFor(t, "node1 to see bob away", func() bool { return n1.relay.Away("bob") == "at lunch" })

	evs := alice.line("/msg bob are you there?", "#go")
	if !slices.ContainsFunc(evs, func(e *chat.Event) bool { return e.Kind == chat.KindAway && e.Away == "at lunch" }) {
		t.Errorf("a DM to bob, away on node2: %s; want the away notice", dump(evs))
	}
	evs = alice.line("/whois bob", "#go")
	if !slices.ContainsFunc(evs, func(e *chat.Event) bool { return e.Cmd == "whois" && e.Away == "at lunch" }) {
		t.Errorf("/whois bob: %s; want his away message", dump(evs))
	}
	evs = alice.line("/who #go", "#go")
	if !slices.ContainsFunc(evs, func(e *chat.Event) bool { return e.Cmd == "who" && slices.Equal(e.AwayMembers, []string{"bob"}) }) {
		t.Errorf("/who #go: %s; want bob away", dump(evs))
	}

	bob.line("/back", "#go")
	waitFor(t, "node1 to see bob back", func() bool { return n1.relay.Away("bob") == "" })
	evs = alice.line("/msg bob back?", "#go")
	if slices.ContainsFunc(evs, func(e *chat.Event) bool { return e.Kind == chat.KindAway }) {
		t.Errorf("a DM to bob after /back: %s; want no away notice", dump(evs))
	}
	// Away again, then gone: nothing of it stays on node1.
	bob.line("/away gone", "#go")
	waitFor(t, "node1 to see bob away again", func() bool { return n1.relay.Away("bob") == "gone" })
	bob.conn.Close()
	<-bob.done
	waitFor(t, "node1 to forget bob's away message", func() bool { return n1.relay.Away("bob") == "" })
}

// TestPartAndQuitReasonsAcrossServers: members on another server see the
// reason a user gave for leaving a room or quitting, as those on its own
// server do.
func TestPartAndQuitReasonsAcrossServers(t *testing.T) {
	_, _, alice, bob := aliceAndBobInGo(t)

	bob.line("/part #go see you later", "#go")
	part := alice.wait(func(e *chat.Event) bool { return e.Kind == chat.KindPart && e.From == "bob" })
	if part.Text != "see you later" {
		t.Errorf("bob's part on node2 seen on node1 with %q, want his reason", part.Text)
	}
	bob.line("/join #go", "#general")
	alice.wait(func(e *chat.Event) bool { return e.Kind == chat.KindJoin && e.From == "bob" })
	bob.send(&chat.Request{Type: chat.TypeCmd, ID: "q", Cmd: "quit", Args: []string{"going home"}})
	quit := alice.wait(func(e *chat.Event) bool { return e.Kind == chat.KindQuit && e.From == "bob" })
	if quit.Text != "going home" {
		t.Errorf("bob's quit on node2 seen on node1 with %q, want his message", quit.Text)
	}
}

// aliceAndBobInGo starts two servers, node1 and node2, and logs alice in
// on node1 and bob on node2, both in #go, once alice has seen bob join.
func aliceAndBobInGo(t *testing.T) (n1, n2 *node, alice, bob *client) {
	url := natsServer(t)
	n1 = startNode(t, url, "node1", "")
	n2 = startNode(t, url, "node2", "")
	alice = n1.login("alice", "#go")
	bob = n2.login("bob", "#go")
	alice.wait(func(e *chat.Event) bool { return e.Kind == chat.KindJoin && e.From == "bob" })
	return n1, n2, alice, bob
}

// TestShutdownQuitReasonAcrossServers: when a server stops cleanly, users
// on the other servers see its users quit because the server shut down,
// not with a plain quit: the quits go out, with their reason, before the
// server's goodbye.
func TestShutdownQuitReasonAcrossServers(t *testing.T) {
	_, n2, alice, _ := aliceAndBobInGo(t)
	n2.stop()
	quit := alice.wait(func(e *chat.Event) bool { return e.Kind == chat.KindQuit && e.From == "bob" })
	if quit.Text != "server shutting down" {
		t.Errorf("bob's node stopped; node1 showed his quit with %q, want \"server shutting down\"", quit.Text)
	}
}
