// Package chatcluster lets several securechat servers serve one chat: it
// adapts a [cluster.Conn] (NATS with JetStream) to [chat.Relay]. The two
// packages do not import each other; this one, and the command that wires
// a server, sees both.
//
// A [Node] publishes what the hub's sessions send to the cluster's log and
// feeds the log back to the hub ([chat.Hub.ApplyLogged]), shares bans,
// mutes and the MOTD through the cluster's state bucket
// ([chat.Hub.ApplyState]), and announces which users and room members
// this server has, so that /who, /whois and direct messages reach users
// on every server.
package chatcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"securechat/chat"
	"securechat/cluster"
)

// Config configures [Join].
type Config struct {
	// Link is how this server reaches the NATS servers: its name, the
	// credentials and TLS files (see [cluster.Options]).
	Link cluster.Options

	// Replicas is how many NATS servers keep each message and each state
	// change: 1 for one NATS server, 3 for a three-server NATS cluster.
	Replicas int

	// Heartbeat is the presence interval: 1 s. A server that misses 3 in
	// a row is taken as dead, and its users as offline.
	Heartbeat time.Duration

	// CatchUp bounds how long [Node.Start] waits for this server to apply
	// the log and the shared state: 1 minute.
	CatchUp time.Duration
}

// Node is this server's membership of the cluster, a [chat.Relay]. It is
// safe for concurrent use; no method the hub calls waits for NATS.
type Node struct {
	conn     *cluster.Conn
	name     string
	log      *slog.Logger
	shared   *cluster.Shared
	presence *cluster.Presence
	catchUp  time.Duration

	// ctx ends the publishes and writes still running at Close.
	ctx    context.Context
	cancel context.CancelFunc
	work   sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	senders  map[string]*queue // publishes, in order per account
	state    queue             // state writes, in order
	joins    []string          // presence entries to announce
	leaves   []string          // presence entries to withdraw
	reasons  map[string]string // why entries of leaves left
	announce bool              // a presence worker is running
	// announced is done while no presence worker runs: Close waits for
	// it, so the quits of a hub that just stopped go out with their
	// reasons before the node's goodbye.
	announced sync.WaitGroup
	rooms     map[string][]string   // this server's users: their rooms
	away      map[string]string     // this server's users: their away messages
	follower  *cluster.Follower     // set by Start
	watcher   *cluster.StateWatcher // set by Start
	kicks     *cluster.KickServer   // set by Start

	hub atomic.Pointer[chat.Hub] // set by Start: told of other servers' joins and quits
}

var _ chat.Relay = (*Node)(nil)

// queue runs jobs one after another on a goroutine that exists while there
// are jobs.
type queue struct {
	jobs    []func(context.Context)
	running bool
}

// Join connects to the NATS servers at urls (comma-separated), makes sure
// the message stream and the state bucket exist, and starts announcing
// this server. Pass the Node as [chat.Config.Relay], start the hub, then
// call [Node.Start].
func Join(ctx context.Context, urls string, cfg Config) (*Node, error) {
	log := cfg.Link.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
		cfg.Link.Logger = log
	}
	conn, err := cluster.Connect(urls, &cfg.Link)
	if err != nil {
		return nil, err
	}
	n, err := start(ctx, conn, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return n, nil
}

func start(ctx context.Context, conn *cluster.Conn, cfg Config) (*Node, error) {
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.CatchUp)
	defer cancel()
	log := cfg.Link.Logger
	err := persist(ctx, log, "the message stream", func(ctx context.Context) error {
		return conn.EnsureStream(ctx, cluster.StreamConfig{Replicas: cfg.Replicas})
	})
	if err != nil {
		return nil, err
	}
	var shared *cluster.Shared
	err = persist(ctx, log, "the state bucket", func(ctx context.Context) (err error) {
		shared, err = conn.Shared(ctx, cfg.Replicas)
		return err
	})
	if err != nil {
		return nil, err
	}
	n := &Node{
		conn: conn, name: conn.Name(), log: cfg.Link.Logger, shared: shared,
		catchUp: cfg.CatchUp, senders: map[string]*queue{}, rooms: map[string][]string{}, away: map[string]string{},
	}
	n.presence, err = conn.Presence(cluster.PresenceOptions{Every: cfg.Heartbeat, OnChange: n.presenceChanged})
	if err != nil {
		return nil, err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

// persist runs op until it succeeds or ctx ends, each attempt bounded to
// 5 s. A server that starts while the NATS servers elect a leader (one of
// them has just failed or restarted) gets errors, or no answer, for a few
// seconds, and should wait them out rather than exit.
func persist(ctx context.Context, log *slog.Logger, what string, op func(context.Context) error) error {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := op(attempt)
		cancel()
		if err == nil {
			return nil
		}
		log.Warn("cluster: setting up "+what+" failed; trying again", "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// Name is this server's name in the cluster.
func (n *Node) Name() string { return n.name }

// Stats is what a node reports about its place in the cluster, for
// metrics and health checks.
type Stats struct {
	Connected  bool   // the NATS link is up
	Reconnects uint64 // times the link came back after it was lost
	Nodes      int    // nodes whose heartbeats arrive, this one included
	Applied    uint64 // the last log sequence this server applied
}

// Stats reports the node's state now.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	f := n.follower
	n.mu.Unlock()
	st := Stats{
		Connected:  n.conn.Connected(),
		Reconnects: n.conn.Reconnects(),
		Nodes:      len(n.presence.Nodes()),
	}
	if f != nil {
		st.Applied = f.Applied()
	}
	return st
}

// Start follows the log from where hub's store stops and watches the
// shared state, feeding both to hub, and returns once hub has applied
// what the cluster held: a server that was down has caught up, and knows
// every ban, before it lets anyone in.
func (n *Node) Start(ctx context.Context, hub *chat.Hub) error {
	ctx, cancel := context.WithTimeout(ctx, n.catchUp)
	defer cancel()
	from := hub.NextLogSeq()
	// What the log holds now is what this server must have applied before
	// it serves; the follower's own report of being caught up is not
	// enough right after a NATS failover, when the count of pending
	// messages it relies on can be low for a moment.
	var last uint64
	err := persist(ctx, n.log, "the log's end", func(ctx context.Context) (err error) {
		last, err = n.conn.LastSeq(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if from > last+1 {
		n.log.Warn("cluster: this server's store holds messages past the end of the log; was the stream recreated? Messages up to the store's last are skipped",
			"store_next", from, "log_last", last)
	}
	f, err := n.conn.Follow(ctx, from, func(m cluster.Message) { hub.ApplyLogged(storedOf(m)) })
	if err != nil {
		return err
	}
	var w *cluster.StateWatcher
	err = persist(ctx, n.log, "the state watcher", func(context.Context) (err error) {
		// n.ctx, not the attempt's: the watcher lives as long as the Node.
		w, err = n.shared.Watch(n.ctx, func(c cluster.Change) {
			if sc, ok := stateOf(c); ok {
				hub.ApplyState(sc)
			}
		})
		return err
	})
	if err != nil {
		f.Stop()
		return err
	}
	var ks *cluster.KickServer
	err = persist(ctx, n.log, "the kick subscription", func(context.Context) (err error) {
		ks, err = n.conn.ServeKicks(func(k cluster.Kick) int { return hub.KickHere(k.User, k.By, k.Reason) })
		return err
	})
	if err != nil {
		f.Stop()
		w.Stop()
		return err
	}
	n.mu.Lock()
	n.follower, n.watcher, n.kicks = f, w, ks
	n.mu.Unlock()
	n.hub.Store(hub)
	select {
	case <-w.Synced():
	case <-ctx.Done():
		return fmt.Errorf("cluster: reading the shared state: %w", ctx.Err())
	}
	for f.Applied() < last {
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: catching up with the message log: %w (applied %d of %d)", ctx.Err(), f.Applied(), last)
		case <-time.After(10 * time.Millisecond):
		}
	}
	hub.Flush()
	n.log.Info("cluster: caught up", "node", n.name, "from", from, "applied", f.Applied())
	return nil
}

// Close says goodbye to the other servers (this server's users go offline
// there at once), stops following the log and the state, ends the
// publishes still running and closes the link. Call it after the hub has
// stopped.
func (n *Node) Close() {
	n.mu.Lock()
	n.closed = true
	f, w, ks := n.follower, n.watcher, n.kicks
	n.mu.Unlock()
	n.announced.Wait()
	n.presence.Stop()
	if ks != nil {
		ks.Stop()
	}
	if f != nil {
		if err := f.Stop(); err != nil {
			n.log.Warn("cluster: the log follower had stopped", "err", err)
		}
	}
	if w != nil {
		w.Stop()
	}
	n.cancel()
	n.work.Wait()
	n.conn.Close()
}

// storedOf is a logged message as the hub takes it: its ID is the log
// sequence.
func storedOf(m cluster.Message) chat.StoredMessage {
	return chat.StoredMessage{ID: m.Seq, Time: m.Time, Kind: m.Kind, Room: m.Room, From: m.From, To: m.To,
		Text: m.Text, Queued: m.Queued, Key: m.Key, Sig: m.Sig, Ctr: m.Ctr, Cts: m.Cts}
}

func stateOf(c cluster.Change) (chat.StateChange, bool) {
	r := chat.StoredRestriction{User: c.Restriction.User, Until: c.Restriction.Until, By: c.Restriction.By, Reason: c.Restriction.Reason}
	switch c.Kind {
	case cluster.StateBan:
		return chat.StateChange{Kind: chat.StateBan, Restriction: r, Removed: c.Removed}, true
	case cluster.StateMute:
		return chat.StateChange{Kind: chat.StateMute, Restriction: r, Removed: c.Removed}, true
	case cluster.StateMOTD:
		return chat.StateChange{Kind: chat.StateMOTD, Text: c.Text}, true
	case cluster.StateDelivered:
		if c.Removed {
			return chat.StateChange{}, false
		}
		return chat.StateChange{Kind: chat.StateDelivered, Restriction: chat.StoredRestriction{User: c.Name}, Through: c.Through}, true
	}
	// Topics travel in the log, in order with the room's messages.
	return chat.StateChange{}, false
}

// errClosed answers work handed to a Node that is closing.
var errClosed = errors.New("chatcluster: the server is leaving the cluster")

// enqueue adds job to q and starts q's goroutine if it is idle. It
// returns false once the Node is closed. n.mu is held.
func (n *Node) enqueueLocked(q *queue, job func(context.Context), idle func()) bool {
	if n.closed {
		return false
	}
	q.jobs = append(q.jobs, job)
	if !q.running {
		q.running = true
		n.work.Add(1)
		go n.drain(q, idle)
	}
	return true
}

func (n *Node) drain(q *queue, idle func()) {
	defer n.work.Done()
	for {
		n.mu.Lock()
		if len(q.jobs) == 0 {
			q.running = false
			if idle != nil {
				idle()
			}
			n.mu.Unlock()
			return
		}
		job := q.jobs[0]
		q.jobs[0] = nil
		q.jobs = q.jobs[1:]
		n.mu.Unlock()
		job(n.ctx)
	}
}

// Publish appends m to the log on a goroutine of m's sender, so that one
// account's messages keep their order and no account waits for another's.
func (n *Node) Publish(m chat.StoredMessage, done func(uint64, error)) {
	cm := cluster.Message{Time: m.Time, Kind: m.Kind, Room: m.Room, From: m.From, To: m.To, Text: m.Text,
		Queued: m.Queued, Key: m.Key, Sig: m.Sig, Ctr: m.Ctr, Cts: m.Cts}
	job := func(ctx context.Context) { done(n.conn.Publish(ctx, cm)) }
	n.mu.Lock()
	defer n.mu.Unlock()
	q := n.senders[m.From]
	if q == nil {
		q = &queue{}
		n.senders[m.From] = q
	}
	if !n.enqueueLocked(q, job, func() { delete(n.senders, m.From) }) {
		go done(0, errClosed)
	}
}

// SetState writes c to the state bucket; writes keep the order they were
// made in.
func (n *Node) SetState(c chat.StateChange, done func(error)) {
	r := cluster.Restriction{User: c.Restriction.User, Until: c.Restriction.Until, By: c.Restriction.By, Reason: c.Restriction.Reason}
	job := func(ctx context.Context) {
		var err error
		switch {
		case c.Kind == chat.StateBan && c.Removed:
			err = n.shared.Unban(ctx, r.User)
		case c.Kind == chat.StateBan:
			err = n.shared.Ban(ctx, r)
		case c.Kind == chat.StateMute && c.Removed:
			err = n.shared.Unmute(ctx, r.User)
		case c.Kind == chat.StateMute:
			err = n.shared.Mute(ctx, r)
		case c.Kind == chat.StateMOTD:
			err = n.shared.SetMOTD(ctx, c.Text)
		case c.Kind == chat.StateDelivered:
			err = n.shared.SetDelivered(ctx, r.User, c.Through)
		case c.Kind == chat.StateRooms:
			err = n.shared.SetRooms(ctx, r.User, c.Rooms)
		case c.Kind == chat.StateRead:
			err = n.shared.SetLastRead(ctx, r.User, c.Room, c.Through)
		default:
			err = fmt.Errorf("chatcluster: unknown state change %d", c.Kind)
		}
		done(err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.enqueueLocked(&n.state, job, nil) {
		go done(errClosed)
	}
}

// Kick asks every other server where user has a session to end them, one
// after another, each bounded to 3 s, and reports the sum of their counts.
func (n *Node) Kick(user, by, reason string, done func(int, error)) {
	nodes := n.Where(user)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		go done(0, errClosed)
		return
	}
	n.work.Add(1)
	go func() {
		defer n.work.Done()
		total := 0
		var errs []error
		for _, node := range nodes {
			ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
			k, err := n.conn.Kick(ctx, node, cluster.Kick{User: user, By: by, Reason: reason})
			cancel()
			total += k
			if err != nil {
				errs = append(errs, err)
			}
		}
		done(total, errors.Join(errs...))
	}()
}

// Banned reads user's ban from the state bucket's leader.
func (n *Node) Banned(user string) (chat.StoredRestriction, bool, error) {
	ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
	defer cancel()
	r, ok, err := n.shared.Banned(ctx, user)
	if err != nil || !ok {
		return chat.StoredRestriction{}, false, err
	}
	return chat.StoredRestriction{User: r.User, Until: r.Until, By: r.By, Reason: r.Reason}, true, nil
}

// DeliveredThrough reads user's delivered mark from the state bucket's
// leader.
func (n *Node) DeliveredThrough(user string) (uint64, error) {
	ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
	defer cancel()
	return n.shared.Delivered(ctx, user)
}

// SavedRooms reads the rooms user was last in from the state bucket's
// leader.
func (n *Node) SavedRooms(user string) ([]string, bool, error) {
	ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
	defer cancel()
	return n.shared.SavedRooms(ctx, user)
}

// LastRead reads where user stopped reading each room from the state
// bucket's leader.
func (n *Node) LastRead(user string) (map[string]uint64, error) {
	ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
	defer cancel()
	return n.shared.LastRead(ctx, user)
}

// Presence entries: a user's name says the user has a session here; the
// room's name, a space and the user's say the user is in that room here.
// Room names start with '#' and no name has a space, so the two kinds
// cannot be confused.
func memberEntry(room, user string) string { return room + " " + user }

// Arrived announces user on this server.
func (n *Node) Arrived(user string) { n.change([]string{user}, nil, nil) }

// Left withdraws user and every room it was in here; reason is its quit
// message, which the other servers show.
func (n *Node) Left(user, reason string) {
	n.mu.Lock()
	rooms := n.rooms[user]
	delete(n.rooms, user)
	away := n.away[user]
	delete(n.away, user)
	n.mu.Unlock()
	leaves := []string{user}
	for _, r := range rooms {
		leaves = append(leaves, memberEntry(r, user))
	}
	if away != "" {
		leaves = append(leaves, awayEntry(user, away))
	}
	n.changeWith(nil, leaves, map[string]string{user: reason}, nil)
}

// Joined announces that user is in room here.
func (n *Node) Joined(user, room string) {
	n.change([]string{memberEntry(room, user)}, nil, func() {
		if !slices.Contains(n.rooms[user], room) {
			n.rooms[user] = append(n.rooms[user], room)
		}
	})
}

// Parted withdraws user from room here, for reason.
func (n *Node) Parted(user, room, reason string) {
	entry := memberEntry(room, user)
	n.changeWith(nil, []string{entry}, map[string]string{entry: reason}, func() {
		n.rooms[user] = slices.DeleteFunc(n.rooms[user], func(r string) bool { return r == room })
	})
}

// awayPrefix starts the presence entry of an away message,
// "away:USER TEXT"; user names hold no colon, room entries start with '#'.
const awayPrefix = "away:"

func awayEntry(user, text string) string { return awayPrefix + user + " " + text }

// SetAway announces user's away message here; an empty text withdraws it.
func (n *Node) SetAway(user, text string) {
	n.mu.Lock()
	old := n.away[user]
	if text == "" {
		delete(n.away, user)
	} else {
		n.away[user] = text
	}
	n.mu.Unlock()
	if old == text {
		return
	}
	var joins, leaves []string
	if text != "" {
		joins = []string{awayEntry(user, text)}
	}
	if old != "" {
		leaves = []string{awayEntry(user, old)}
	}
	n.change(joins, leaves, nil)
}

// Away returns user's away message as a server announces it, or "". The
// hub asks only about users with no session of its own.
func (n *Node) Away(user string) string {
	prefix := awayPrefix + user + " "
	if entries := n.presence.WithPrefix(prefix); len(entries) > 0 {
		return strings.TrimPrefix(entries[0], prefix)
	}
	return ""
}

// change queues presence changes; one goroutine announces whatever has
// queued up, in one heartbeat.
func (n *Node) change(joins, leaves []string, locked func()) {
	n.changeWith(joins, leaves, nil, locked)
}

// changeWith is change with the reasons entries of leaves give.
func (n *Node) changeWith(joins, leaves []string, reasons map[string]string, locked func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if locked != nil {
		locked()
	}
	n.joins = append(n.joins, joins...)
	n.leaves = append(n.leaves, leaves...)
	for e, r := range reasons {
		if r == "" {
			continue
		}
		if n.reasons == nil {
			n.reasons = map[string]string{}
		}
		n.reasons[e] = r
	}
	if n.announce {
		return
	}
	n.announce = true
	n.work.Add(1)
	n.announced.Add(1)
	go func() {
		defer n.work.Done()
		defer n.announced.Done()
		for {
			n.mu.Lock()
			j, l, r := n.joins, n.leaves, n.reasons
			n.joins, n.leaves, n.reasons = nil, nil, nil
			if len(j) == 0 && len(l) == 0 {
				n.announce = false
				n.mu.Unlock()
				return
			}
			n.mu.Unlock()
			n.presence.UpdateWith(j, l, r)
		}
	}()
}

// splitMember reads a membership entry.
func splitMember(entry string) (room, user string, ok bool) {
	room, user, ok = strings.Cut(entry, " ")
	return room, user, ok && strings.HasPrefix(room, "#")
}

// presenceChanged tells the hub of users who entered or left rooms on
// another server, once for the cluster: a user in a room on two servers
// joined it when the first had it, and left it when the last no longer
// does.
func (n *Node) presenceChanged(ev cluster.PresenceEvent) {
	hub := n.hub.Load()
	if hub == nil || ev.Node == n.name {
		return
	}
	for _, e := range ev.Online {
		if room, user, ok := splitMember(e); ok && len(n.Where(e)) == 1 {
			hub.RemoteMember(room, user, chat.RemoteJoined, "")
		}
	}
	quit := "quit"
	if ev.Expired {
		quit = "connection lost"
	}
	for _, e := range ev.Offline {
		room, user, ok := splitMember(e)
		if !ok || len(n.Where(e)) > 0 {
			continue
		}
		if len(n.Where(user)) > 0 {
			hub.RemoteMember(room, user, chat.RemoteParted, ev.Reasons[e])
		} else if r := ev.Reasons[user]; r != "" {
			hub.RemoteMember(room, user, chat.RemoteQuit, r)
		} else {
			hub.RemoteMember(room, user, chat.RemoteQuit, quit)
		}
	}
}

// others drops this server from nodes.
func (n *Node) others(nodes []string) []string {
	return slices.DeleteFunc(nodes, func(x string) bool { return x == n.name })
}

// Where returns the other servers where user has a session.
func (n *Node) Where(user string) []string { return n.others(n.presence.Where(user)) }

// Rooms returns the rooms user is in on other servers.
func (n *Node) Rooms(user string) []string {
	var out []string
	suffix := " " + user
	for _, e := range n.presence.Online() {
		if room, ok := strings.CutSuffix(e, suffix); ok && strings.HasPrefix(room, "#") && len(n.Where(e)) > 0 {
			out = append(out, room)
		}
	}
	return out
}

// Members returns the users in room on other servers.
func (n *Node) Members(room string) []string {
	var out []string
	prefix := room + " "
	for _, e := range n.presence.Online() {
		if user, ok := strings.CutPrefix(e, prefix); ok && len(n.Where(e)) > 0 {
			out = append(out, user)
		}
	}
	return out
}
