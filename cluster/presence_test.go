package cluster

import (
	"slices"
	"sync"
	"testing"
	"time"
)

type presenceLog struct {
	mu  sync.Mutex
	evs []PresenceEvent
}

func (l *presenceLog) add(ev PresenceEvent) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

func (l *presenceLog) find(pred func(PresenceEvent) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.evs, pred)
}

// fast keeps the presence tests short; a deployment uses the defaults.
var fast = PresenceOptions{Every: 50 * time.Millisecond, Missed: 3}

func TestPresenceSeesUsersOnOtherNodes(t *testing.T) {
	e := startEmbedded(t, nil)
	var log1 presenceLog
	o1 := fast
	o1.OnChange = log1.add
	p1, err := e.connect(t, "node1").Presence(o1)
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Stop()
	p2, err := e.connect(t, "node2").Presence(fast)
	if err != nil {
		t.Fatal(err)
	}

	p1.Join("alice")
	p2.Join("bob")
	p2.Join("bob") // a second session
	p2.Join("alice")
	waitFor(t, "node1 to see bob on node2", func() bool { return slices.Equal(p1.Where("bob"), []string{"node2"}) })
	waitFor(t, "alice on both nodes", func() bool { return slices.Equal(p1.Where("alice"), []string{"node1", "node2"}) })
	if got := p1.Online(); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("Online = %v", got)
	}
	// OnChange runs on a goroutine of its own, a moment after the state changed.
	waitFor(t, "an event for bob coming online", func() bool {
		return log1.find(func(ev PresenceEvent) bool { return ev.Node == "node2" && slices.Contains(ev.Online, "bob") })
	})

	// One of bob's two sessions ends: still online.
	p2.Leave("bob")
	p2.Leave("alice")
	waitFor(t, "alice to leave node2", func() bool { return slices.Equal(p1.Where("alice"), []string{"node1"}) })
	if got := p1.Where("bob"); !slices.Equal(got, []string{"node2"}) {
		t.Errorf("bob with one session left is on %v", got)
	}

	// A clean stop takes node2's users offline at once, not as expired.
	p2.Stop()
	waitFor(t, "bob offline", func() bool { return len(p1.Where("bob")) == 0 })
	waitFor(t, "an offline event for bob after node2 stopped", func() bool {
		return log1.find(func(ev PresenceEvent) bool {
			return ev.Node == "node2" && slices.Contains(ev.Offline, "bob") && !ev.Expired
		})
	})
	// No heartbeat may follow the goodbye: node2 stays gone over several
	// of its intervals.
	for range 5 {
		if got := p1.Nodes(); !slices.Equal(got, []string{"node1"}) {
			t.Fatalf("Nodes = %v after node2 stopped", got)
		}
		time.Sleep(fast.Every)
	}
}

// TestPresenceExpiresDeadNode cuts a node off without a goodbye, as kill -9
// does: the others take its users offline after the missed heartbeats.
func TestPresenceExpiresDeadNode(t *testing.T) {
	e := startEmbedded(t, nil)
	var log1 presenceLog
	o1 := fast
	o1.OnChange = log1.add
	p1, err := e.connect(t, "node1").Presence(o1)
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Stop()
	c2 := e.connect(t, "node2")
	p2, err := c2.Presence(fast)
	if err != nil {
		t.Fatal(err)
	}
	p2.Join("carol")
	waitFor(t, "carol online", func() bool { return len(p1.Where("carol")) == 1 })

	c2.NATS().Close() // no goodbye reaches anyone
	waitFor(t, "carol offline", func() bool { return len(p1.Where("carol")) == 0 })
	waitFor(t, "an expiry event for node2", func() bool {
		return log1.find(func(ev PresenceEvent) bool {
			return ev.Node == "node2" && ev.Expired && slices.Contains(ev.Offline, "carol")
		})
	})
	p2.Stop() // on a closed connection: must not hang or panic
}

func TestDiffSorted(t *testing.T) {
	on, off := diffSorted([]string{"a", "c", "d"}, []string{"b", "c", "e"})
	if !slices.Equal(on, []string{"b", "e"}) || !slices.Equal(off, []string{"a", "d"}) {
		t.Errorf("diffSorted = %v, %v", on, off)
	}
}

// TestPresenceNoHeartbeatAfterGoodbye stops nodes that beat every
// millisecond, so that a heartbeat racing the goodbye would be likely: none
// may bring the stopped node back.
func TestPresenceNoHeartbeatAfterGoodbye(t *testing.T) {
	e := startEmbedded(t, nil)
	p1, err := e.connect(t, "watcher").Presence(fast)
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Stop()
	c2 := e.connect(t, "busy")
	for i := range 20 {
		p2, err := c2.Presence(PresenceOptions{Every: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		p2.Join("dave")
		waitFor(t, "dave online", func() bool { return len(p1.Where("dave")) == 1 })
		p2.Stop()
		waitFor(t, "dave offline", func() bool { return len(p1.Where("dave")) == 0 })
		for range 3 {
			time.Sleep(5 * time.Millisecond)
			if got := p1.Where("dave"); len(got) != 0 {
				t.Fatalf("round %d: dave back on %v after his node said goodbye", i, got)
			}
		}
	}
}

func TestPresenceUpdateJoinsAndLeavesAtOnce(t *testing.T) {
	e := startEmbedded(t, nil)
	p1, err := e.connect(t, "node1").Presence(fast)
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Stop()
	p2, err := e.connect(t, "node2").Presence(fast)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Stop()

	p2.Update([]string{"alice", "#go alice", "bob"}, nil)
	waitFor(t, "node1 to see node2's three entries", func() bool {
		return slices.Equal(p1.Online(), []string{"#go alice", "alice", "bob"})
	})
	// A leave counts against the joins, whatever batch they came in; an
	// entry never joined is left alone.
	p2.Update([]string{"bob"}, []string{"bob", "#go alice", "carol"})
	waitFor(t, "node1 to see #go alice leave", func() bool {
		return slices.Equal(p1.Online(), []string{"alice", "bob"})
	})
	p2.Update(nil, []string{"bob"})
	waitFor(t, "bob to go", func() bool { return slices.Equal(p1.Online(), []string{"alice"}) })
}
