package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// presenceSubject carries heartbeats: core NATS, not JetStream, since a
// heartbeat is worth nothing once the next one is out.
const presenceSubject = "securechat.presence"

// heartbeat is what a node announces: every user with a session on it.
type heartbeat struct {
	Node  string   `json:"node"`
	Users []string `json:"users"`
	// Every is the node's heartbeat interval in milliseconds, so that
	// watchers judge each node by its own pace.
	Every int64 `json:"every"`
	// Bye says the node is stopping: its users are offline now.
	Bye bool `json:"bye,omitempty"`
	// Reasons are why entries that left since the last heartbeat left
	// (a user's quit message, a part's reason); sent once.
	Reasons map[string]string `json:"reasons,omitempty"`
}

// PresenceOptions configure [Conn.Presence]. The zero value sends a
// heartbeat every second and expires a node after 3 missed ones.
type PresenceOptions struct {
	Every  time.Duration
	Missed int
	// OnChange is called, on the presence goroutine and one call at a time,
	// whenever users come online or go offline anywhere, including on this
	// node. It must not block for long. Nil: nothing is called.
	OnChange func(PresenceEvent)
}

// PresenceEvent says which users came online on, or went offline from,
// one node.
type PresenceEvent struct {
	Node    string
	Online  []string // users who now have a session on Node
	Offline []string // users who no longer do (Node expired or said bye)
	Expired bool     // Node missed its heartbeats: it is presumed dead
	// Reasons are the reasons Node gave for entries of Offline
	// ([Presence.UpdateWith]); an entry without one left for no reason
	// given, or its node died.
	Reasons map[string]string
}

// Presence announces this node's users and tracks every node's. A node
// that misses PresenceOptions.Missed heartbeats in a row is taken as dead
// and its users as offline; a node that stops cleanly says so at once.
// Presence is safe for concurrent use.
type Presence struct {
	c      *Conn
	every  time.Duration
	missed int
	onChg  func(PresenceEvent)
	sub    *nats.Subscription

	mu      sync.Mutex
	stopped bool              // Stop began: no more heartbeats but the goodbye
	local   map[string]int    // this node's users: sessions per user
	reasons map[string]string // why entries left, for the next heartbeat
	nodes   map[string]*nodeState

	// pending holds events in the order the state changed, for deliver;
	// a queue rather than a channel so that making an event never waits
	// for OnChange (which may call back into Where) while mu is held.
	pending []PresenceEvent
	wake    chan struct{}
	stop    chan struct{}
	done    sync.WaitGroup
	once    sync.Once
}

type nodeState struct {
	users    []string // sorted
	every    time.Duration
	lastSeen time.Time
}

// Presence starts announcing this node ([Options.Name]) and watching the
// others. Stop it with [Presence.Stop].
func (c *Conn) Presence(opts PresenceOptions) (*Presence, error) {
	if opts.Every <= 0 {
		opts.Every = time.Second
	}
	if opts.Missed <= 0 {
		opts.Missed = 3
	}
	p := &Presence{
		c: c, every: opts.Every, missed: opts.Missed, onChg: opts.OnChange,
		local: map[string]int{},
		nodes: map[string]*nodeState{},
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
	}
	sub, err := c.nc.Subscribe(presenceSubject, p.receive)
	if err != nil {
		return nil, fmt.Errorf("cluster: presence: %w", err)
	}
	p.sub = sub
	p.done.Add(2)
	go p.beat()
	go p.deliver()
	return p, nil
}

// Join records one more session of user on this node; Leave records that
// one ended. A user is online here from the first Join until as many
// Leaves. The change is announced at once, not at the next heartbeat.
func (p *Presence) Join(user string) {
	p.mu.Lock()
	p.local[user]++
	first := p.local[user] == 1
	p.mu.Unlock()
	if first {
		p.announce(false)
	}
}

func (p *Presence) Leave(user string) {
	p.mu.Lock()
	n, ok := p.local[user]
	if ok && n <= 1 {
		delete(p.local, user)
	} else if ok {
		p.local[user] = n - 1
	}
	last := ok && n <= 1
	p.mu.Unlock()
	if last {
		p.announce(false)
	}
}

// Update is Join for each of joined, then Leave for each of left, with
// one announcement for them all: a login that enters several rooms sends
// one heartbeat, not one per room.
func (p *Presence) Update(joined, left []string) { p.UpdateWith(joined, left, nil) }

// UpdateWith is Update with the reasons entries of left give for leaving
// (by entry), which the next heartbeat carries to the other nodes once.
func (p *Presence) UpdateWith(joined, left []string, reasons map[string]string) {
	p.mu.Lock()
	changed := false
	for _, u := range joined {
		p.local[u]++
		changed = changed || p.local[u] == 1
	}
	for _, u := range left {
		n, ok := p.local[u]
		switch {
		case ok && n <= 1:
			delete(p.local, u)
			changed = true
			if r := reasons[u]; r != "" {
				if p.reasons == nil {
					p.reasons = map[string]string{}
				}
				p.reasons[u] = r
			}
		case ok:
			p.local[u] = n - 1
		}
	}
	p.mu.Unlock()
	if changed {
		p.announce(false)
	}
}

// Where returns the nodes user has a session on, sorted; none if offline.
func (p *Presence) Where(user string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for name, n := range p.nodes {
		if _, ok := slices.BinarySearch(n.users, user); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// WithPrefix returns the entries of every node that start with prefix,
// sorted, without repeats: a lookup in each node's sorted list, for a
// caller that keeps structured entries (such as a user's away message).
func (p *Presence) WithPrefix(prefix string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, n := range p.nodes {
		i, _ := slices.BinarySearch(n.users, prefix)
		for ; i < len(n.users) && strings.HasPrefix(n.users[i], prefix); i++ {
			out = append(out, n.users[i])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Online returns every user online anywhere, sorted, each once.
func (p *Presence) Online() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, n := range p.nodes {
		out = append(out, n.users...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Nodes returns the nodes alive now, sorted, this one included once its
// first heartbeat came back.
func (p *Presence) Nodes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for name := range p.nodes {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Stop tells the other nodes that this node's users are offline, stops
// the heartbeats and the watcher, and waits for OnChange to return.
func (p *Presence) Stop() {
	p.once.Do(func() {
		// Heartbeats stop first, so that none can follow the goodbye and
		// bring this node back to life on the others.
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
		close(p.stop)
		p.done.Wait()
		p.announce(true)
		_ = p.c.nc.Flush()
		_ = p.sub.Unsubscribe()
	})
}

func (p *Presence) announce(bye bool) {
	p.mu.Lock()
	if p.stopped && !bye {
		p.mu.Unlock()
		return
	}
	hb := heartbeat{Node: p.c.name, Every: p.every.Milliseconds(), Bye: bye}
	if !bye {
		for u := range p.local {
			hb.Users = append(hb.Users, u)
		}
		slices.Sort(hb.Users)
		hb.Reasons, p.reasons = p.reasons, nil
	}
	p.mu.Unlock()
	data, err := json.Marshal(&hb)
	if err != nil {
		return
	}
	// A heartbeat lost while reconnecting is replaced by the next one.
	if err := p.c.nc.Publish(presenceSubject, data); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		p.c.log.Debug("cluster: heartbeat not sent", "err", err)
	}
}

func (p *Presence) beat() {
	defer p.done.Done()
	t := time.NewTicker(p.every)
	defer t.Stop()
	p.announce(false)
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.announce(false)
			p.expire(now)
		}
	}
}

// expire drops the nodes whose last heartbeat is older than missed
// intervals of their own.
func (p *Presence) expire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, n := range p.nodes {
		if now.Sub(n.lastSeen) > time.Duration(p.missed)*n.every {
			delete(p.nodes, name)
			p.emitLocked(PresenceEvent{Node: name, Offline: n.users, Expired: true})
		}
	}
}

func (p *Presence) receive(m *nats.Msg) {
	var hb heartbeat
	if err := json.Unmarshal(m.Data, &hb); err != nil || hb.Node == "" {
		p.c.log.Warn("cluster: bad heartbeat ignored")
		return
	}
	slices.Sort(hb.Users)
	hb.Users = slices.Compact(hb.Users)
	every := time.Duration(hb.Every) * time.Millisecond
	if every <= 0 {
		every = p.every
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.nodes[hb.Node]
	var before []string
	if old != nil {
		before = old.users
	}
	if hb.Bye {
		delete(p.nodes, hb.Node)
		hb.Users = nil
	} else {
		p.nodes[hb.Node] = &nodeState{users: hb.Users, every: every, lastSeen: time.Now()}
		if old == nil && hb.Node != p.c.name && !p.stopped {
			// A node just started (or came back): answer at once, so
			// that it knows this node's users from its first moments
			// rather than after a heartbeat interval. (Not here: mu is
			// held, and this runs on the subscription's goroutine.)
			go p.announce(false)
		}
	}
	on, off := diffSorted(before, hb.Users)
	if len(on) > 0 || len(off) > 0 {
		ev := PresenceEvent{Node: hb.Node, Online: on, Offline: off}
		for _, e := range off {
			if r := hb.Reasons[e]; r != "" {
				if ev.Reasons == nil {
					ev.Reasons = map[string]string{}
				}
				ev.Reasons[e] = r
			}
		}
		p.emitLocked(ev)
	}
}

// emitLocked queues ev for OnChange; p.mu is held.
func (p *Presence) emitLocked(ev PresenceEvent) {
	if p.onChg == nil {
		return
	}
	p.pending = append(p.pending, ev)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Presence) deliver() {
	defer p.done.Done()
	for {
		select {
		case <-p.wake:
		case <-p.stop:
			return
		}
		p.mu.Lock()
		evs := p.pending
		p.pending = nil
		p.mu.Unlock()
		for _, ev := range evs {
			p.onChg(ev)
		}
	}
}

// diffSorted returns what b has that a has not, and what a has that b has not.
func diffSorted(a, b []string) (added, removed []string) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			removed = append(removed, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			added = append(added, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return added, removed
}
