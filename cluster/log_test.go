package cluster

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// collector gathers what a Follower applies.
type collector struct {
	mu   sync.Mutex
	msgs []Message
}

func (c *collector) apply(m Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
}

func (c *collector) get() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func TestPublishReturnsStreamSequence(t *testing.T) {
	e := startEmbedded(t, nil)
	c := e.connect(t, "node1")
	ctx := testContext(t)
	if err := c.EnsureStream(ctx, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	// A second EnsureStream, as another node does at start, is a no-op.
	if err := c.EnsureStream(ctx, StreamConfig{}); err != nil {
		t.Fatalf("EnsureStream again: %v", err)
	}
	msgs := []Message{
		{Kind: KindMsg, Room: "#go", From: "alice", Text: "hi"},
		{Kind: KindDM, From: "bob", To: "alice", Text: "psst"},
		{Kind: KindMe, Room: "#a.b *>", From: "alice", Text: "waves"},
		{Kind: KindTopic, Room: "#go", From: "alice", Text: "generics"},
	}
	for i, m := range msgs {
		seq, err := c.Publish(ctx, m)
		if err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
		if seq != uint64(i+1) {
			t.Errorf("Publish %d: seq %d, want %d", i, seq, i+1)
		}
	}
	if last, err := c.LastSeq(ctx); err != nil || last != uint64(len(msgs)) {
		t.Errorf("LastSeq = %d, %v; want %d", last, err, len(msgs))
	}
}

func TestPublishRefusesBadMessages(t *testing.T) {
	e := startEmbedded(t, nil)
	c := e.connect(t, "node1")
	ctx := testContext(t)
	if err := c.EnsureStream(ctx, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []Message{
		{Kind: KindMsg, From: "alice", Text: "no room"},
		{Kind: KindDM, From: "alice", Text: "no recipient"},
		{Kind: "join", Room: "#go", From: "alice"},
	} {
		if _, err := c.Publish(ctx, m); err == nil {
			t.Errorf("Publish(%+v) succeeded", m)
		}
	}
}

func TestPublishSameIDIsStoredOnce(t *testing.T) {
	e := startEmbedded(t, nil)
	c := e.connect(t, "node1")
	ctx := testContext(t)
	if err := c.EnsureStream(ctx, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	m := Message{ID: "node1-42", Kind: KindMsg, Room: "#go", From: "alice", Text: "once"}
	first, err := c.Publish(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, Message{Kind: KindMsg, Room: "#go", From: "bob", Text: "between"}); err != nil {
		t.Fatal(err)
	}
	again, err := c.Publish(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("retried publish got seq %d, want the first one's %d", again, first)
	}
	if last, _ := c.LastSeq(ctx); last != 2 {
		t.Errorf("stream holds %d messages, want 2", last)
	}
}

func TestFollowAppliesInOrderAndCatchesUp(t *testing.T) {
	e := startEmbedded(t, nil)
	c := e.connect(t, "node1")
	ctx := testContext(t)
	if err := c.EnsureStream(ctx, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		room := "#a"
		if i%2 == 1 {
			room = "#b"
		}
		if _, err := c.Publish(ctx, Message{Kind: KindMsg, Room: room, From: "alice", Text: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}

	// From the start: all five, in order, then caught up.
	var all collector
	f, err := c.Follow(ctx, 0, all.apply)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.CaughtUp():
	case <-ctx.Done():
		t.Fatal("follower never caught up")
	}
	got := all.get()
	if len(got) != 5 {
		t.Fatalf("caught up with %d messages, want 5", len(got))
	}
	for i, m := range got {
		if m.Seq != uint64(i+1) || m.Text != fmt.Sprint(i) || m.Node != "node1" || m.Time.IsZero() {
			t.Errorf("message %d = %+v", i, m)
		}
	}

	// A node that restarts with 3 in its store follows from 4.
	var rest collector
	g, err := c.Follow(ctx, 4, rest.apply)
	if err != nil {
		t.Fatal(err)
	}
	<-g.CaughtUp()
	if got := rest.get(); len(got) != 2 || got[0].Seq != 4 || got[1].Seq != 5 {
		t.Fatalf("following from 4 applied %+v", got)
	}

	// New messages reach both.
	seq, err := c.Publish(ctx, Message{Kind: KindDM, From: "bob", To: "alice", Text: "new"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new message", func() bool { return all.len() == 6 && rest.len() == 3 })
	if m := rest.get()[2]; m.Seq != seq || m.Kind != KindDM || m.To != "alice" {
		t.Errorf("new message applied as %+v", m)
	}
	if err := f.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := g.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if f.Applied() != seq {
		t.Errorf("Applied = %d, want %d", f.Applied(), seq)
	}
}

func TestFollowEmptyLogIsCaughtUp(t *testing.T) {
	e := startEmbedded(t, nil)
	c := e.connect(t, "node1")
	ctx := testContext(t)
	if err := c.EnsureStream(ctx, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	f, err := c.Follow(ctx, 0, func(Message) {})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	select {
	case <-f.CaughtUp():
	case <-ctx.Done():
		t.Fatal("a follower of an empty log never caught up")
	}
}

// TestFollowSurvivesServerRestart restarts the NATS server under a running
// follower and a publisher: the follower goes on, each message once, in
// order, and every acked publish is applied.
func TestFollowSurvivesServerRestart(t *testing.T) {
	e := startEmbedded(t, nil)
	c := e.connect(t, "node1")
	ctx := testContext(t)
	if err := c.EnsureStream(ctx, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	var got collector
	f, err := c.Follow(ctx, 0, got.apply)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	var acked []uint64
	for i := range 20 {
		if i == 10 {
			e.restart()
		}
		seq, err := c.Publish(ctx, Message{Kind: KindMsg, Room: "#go", From: "alice", Text: fmt.Sprint(i)})
		if err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
		acked = append(acked, seq)
	}
	waitFor(t, "every acked message", func() bool { return f.Applied() >= acked[len(acked)-1] })
	msgs := got.get()
	if len(msgs) != len(acked) {
		t.Fatalf("applied %d messages, acked %d", len(msgs), len(acked))
	}
	for i, m := range msgs {
		if m.Seq != acked[i] || m.Text != fmt.Sprint(i) {
			t.Errorf("applied #%d = seq %d %q, want seq %d %q", i, m.Seq, m.Text, acked[i], fmt.Sprint(i))
		}
	}
}

func TestSubjectsKeepNamesApart(t *testing.T) {
	// Names with NATS wildcards and separators stay one token each, and
	// a DM subject does not depend on who sent it.
	for _, room := range []string{"#go", "#a.b", "#*", "#>", "# x"} {
		s := RoomSubject(room)
		if strings.Count(s, ".") != 2 || strings.ContainsAny(s, "*> ") {
			t.Errorf("RoomSubject(%q) = %q", room, s)
		}
	}
	if DMSubject("alice", "bob") != DMSubject("bob", "alice") {
		t.Error("DMSubject depends on the order of its names")
	}
	if RoomSubject("#ab") == RoomSubject("#a.b") {
		t.Error("two rooms share a subject")
	}
}
