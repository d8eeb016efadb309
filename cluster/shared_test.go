package cluster

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"
)

type changes struct {
	mu  sync.Mutex
	all []Change
}

func (c *changes) add(ch Change) {
	c.mu.Lock()
	c.all = append(c.all, ch)
	c.mu.Unlock()
}

func (c *changes) get() []Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Change(nil), c.all...)
}

func TestSharedStateReachesEveryNode(t *testing.T) {
	e := startEmbedded(t, nil)
	ctx := testContext(t)
	s1, err := e.connect(t, "node1").Shared(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	// What node1 set before node2 started is node2's starting state.
	if err := s1.SetMOTD(ctx, "welcome"); err != nil {
		t.Fatal(err)
	}
	if err := s1.SetTopic(ctx, "#a.b", "dots in names"); err != nil {
		t.Fatal(err)
	}
	s2, err := e.connect(t, "node2").Shared(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var seen changes
	w, err := s2.Watch(ctx, seen.add)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	select {
	case <-w.Synced():
	case <-ctx.Done():
		t.Fatal("watcher never synced")
	}
	initial := seen.get()
	if len(initial) != 2 {
		t.Fatalf("initial state = %+v, want the MOTD and a topic", initial)
	}
	for _, ch := range initial {
		switch ch.Kind {
		case StateMOTD:
			if ch.Text != "welcome" {
				t.Errorf("MOTD = %q", ch.Text)
			}
		case StateTopic:
			if ch.Name != "#a.b" || ch.Text != "dots in names" {
				t.Errorf("topic change = %+v", ch)
			}
		default:
			t.Errorf("unexpected change %+v", ch)
		}
	}

	until := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := s1.Ban(ctx, Restriction{User: "mallory", Until: until, By: "alice", Reason: "spam"}); err != nil {
		t.Fatal(err)
	}
	// A ban is readable on every node as soon as Ban returns.
	r, ok, err := s2.Banned(ctx, "mallory")
	if err != nil || !ok || r.By != "alice" || !r.Until.Equal(until) {
		t.Fatalf("Banned on node2 = %+v, %v, %v", r, ok, err)
	}
	if _, ok, _ := s2.Banned(ctx, "alice"); ok {
		t.Error("alice is banned")
	}
	if err := s1.Mute(ctx, Restriction{User: "bob"}); err != nil {
		t.Fatal(err)
	}
	if err := s1.Unban(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	if err := s1.Unmute(ctx, "nobody"); err != nil {
		t.Errorf("Unmute of someone not muted: %v", err)
	}
	if err := s1.SetTopic(ctx, "#a.b", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the later changes", func() bool { return len(seen.get()) == 6 })
	later := seen.get()[2:]
	want := []struct {
		kind    StateKind
		name    string
		removed bool
	}{
		{StateBan, "mallory", false},
		{StateMute, "bob", false},
		{StateBan, "mallory", true},
		{StateTopic, "#a.b", true},
	}
	for i, w := range want {
		ch := later[i]
		if ch.Kind != w.kind || ch.Name != w.name || ch.Removed != w.removed {
			t.Errorf("change %d = %v %q removed=%v, want %v %q removed=%v", i, ch.Kind, ch.Name, ch.Removed, w.kind, w.name, w.removed)
		}
		if i > 0 && ch.Revision <= later[i-1].Revision {
			t.Errorf("change %d has revision %d after %d", i, ch.Revision, later[i-1].Revision)
		}
	}
	if later[0].Restriction.Reason != "spam" || !later[0].Restriction.Active(time.Now()) {
		t.Errorf("ban delivered as %+v", later[0].Restriction)
	}
	if _, ok, _ := s2.Banned(ctx, "mallory"); ok {
		t.Error("mallory still banned after Unban")
	}
}

func TestBannedIgnoresExpiredBans(t *testing.T) {
	e := startEmbedded(t, nil)
	ctx := testContext(t)
	s, err := e.connect(t, "node1").Shared(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ban(ctx, Restriction{User: "eve", Until: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Banned(ctx, "eve"); ok || err != nil {
		t.Errorf("Banned with an expired ban = %v, %v", ok, err)
	}
}

// TestSharedWriteWaitsForServer bans while the only NATS server restarts:
// the ban waits for it rather than fail.
func TestSharedWriteWaitsForServer(t *testing.T) {
	e := startEmbedded(t, nil)
	ctx := testContext(t)
	s, err := e.connect(t, "node1").Shared(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	e.shutdown()
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		restarted <- e.tryStart()
	}()
	err = s.Ban(ctx, Restriction{User: "mallory"})
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("Ban while the server restarted: %v", err)
	}
	if _, ok, err := s.Banned(ctx, "mallory"); !ok || err != nil {
		t.Errorf("Banned after the restart = %v, %v", ok, err)
	}
}

// TestDeliveredMarkOnlyGrows: two nodes write a user's delivered mark at
// once, and one writes a lower one later; the mark is the highest, and a
// watcher sees it.
func TestDeliveredMarkOnlyGrows(t *testing.T) {
	s1, s2, ctx := twoNodesShared(t)
	if got, err := s1.Delivered(ctx, "carol"); got != 0 || err != nil {
		t.Fatalf("Delivered before any mark = %d, %v", got, err)
	}
	var wg sync.WaitGroup
	for i, s := range []*Shared{s1, s2, s1, s2} {
		wg.Go(func() {
			if err := s.SetDelivered(ctx, "carol", uint64(10+i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := s2.SetDelivered(ctx, "carol", 5); err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Delivered(ctx, "carol"); got != 13 || err != nil {
		t.Errorf("Delivered = %d, %v; want the highest mark, 13", got, err)
	}
	seen := make(chan Change, 16)
	w, err := s1.Watch(ctx, func(c Change) { seen <- c })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	select {
	case c := <-seen:
		if c.Kind != StateDelivered || c.Name != "carol" || c.Through != 13 {
			t.Errorf("watcher saw %+v", c)
		}
	case <-ctx.Done():
		t.Fatal("the watcher saw no mark")
	}
}

// TestLastReadMergesRooms: nodes that record where a user stopped reading
// in different rooms at once keep every room, each position only moves
// forward, and watchers pass over them (a node asks at login).
func TestLastReadMergesRooms(t *testing.T) {
	s1, s2, ctx := twoNodesShared(t)
	if got, err := s1.LastRead(ctx, "carol"); got != nil || err != nil {
		t.Fatalf("LastRead before any = %v, %v", got, err)
	}
	seen := make(chan Change, 16)
	w, err := s1.Watch(ctx, func(c Change) { seen <- c })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var wg sync.WaitGroup
	for i, s := range []*Shared{s1, s2, s1, s2} {
		wg.Go(func() {
			if err := s.SetLastRead(ctx, "carol", fmt.Sprintf("#r%d", i%2), uint64(10+i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := s2.SetLastRead(ctx, "carol", "#r0", 5); err != nil {
		t.Fatal(err)
	}
	got, err := s2.LastRead(ctx, "carol")
	if want := map[string]uint64{"#r0": 12, "#r1": 13}; err != nil || !maps.Equal(got, want) {
		t.Errorf("LastRead = %v, %v; want %v", got, err, want)
	}
	// A change the watcher would deliver comes after the positions; it
	// must be the first the watcher sees.
	if err := s1.SetMOTD(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-seen:
		if c.Kind != StateMOTD {
			t.Errorf("the watcher delivered %+v before the MOTD", c)
		}
	case <-ctx.Done():
		t.Fatal("the watcher saw nothing")
	}
}

// twoNodesShared opens the state bucket from two nodes of one embedded
// NATS server.
func twoNodesShared(t *testing.T) (s1, s2 *Shared, ctx context.Context) {
	e := startEmbedded(t, nil)
	ctx = testContext(t)
	var err error
	if s1, err = e.connect(t, "node1").Shared(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if s2, err = e.connect(t, "node2").Shared(ctx, 1); err != nil {
		t.Fatal(err)
	}
	return s1, s2, ctx
}
