package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"securechat/internal/natstest"
)

// streamLeader is the NATS server leading the message stream's replicas.
func streamLeader(t *testing.T, ctx context.Context, c *Conn) string {
	t.Helper()
	s, err := c.js.Stream(ctx, StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatal("the message stream has no leader")
	}
	return info.Cluster.Leader
}

// serverNamed is the server of nc called name.
func serverNamed(t *testing.T, nc *natstest.Cluster, name string) *natstest.Server {
	t.Helper()
	for _, s := range nc.Servers {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no NATS server is called %q", name)
	return nil
}

// TestClusterKillNATSNodeLosesNoAckedMessage publishes from four
// goroutines while the NATS server leading the R3 stream is killed with
// SIGKILL. Every publish must be acked, each once; a follower running all
// along must apply exactly the acked messages in sequence order. The killed
// server then restarts and catches up: once it is current, the other
// servers' loss of one more node still leaves every message readable, since
// the restarted one now holds them.
func TestClusterKillNATSNodeLosesNoAckedMessage(t *testing.T) {
	start := time.Now()
	nc := natstest.Start(t, 3)
	t.Logf("three NATS servers healthy after %v", time.Since(start).Round(time.Millisecond))
	// One deadline for the whole test, which goes through two failovers
	// and a restart; each wait below has its own.
	ctx, cancel := context.WithTimeout(context.Background(), 3*testTimeout)
	defer cancel()
	pub, err := Connect(nc.URLs(), &Options{Name: "securechat1", Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.EnsureStream(ctx, StreamConfig{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	sub, err := Connect(nc.URLs(), &Options{Name: "securechat2", Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// The state bucket, R3 too, watched from the other node.
	pubState, err := pub.Shared(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	subState, err := sub.Shared(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	var seen changes
	w, err := subState.Watch(ctx, seen.add)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	var live collector
	f, err := sub.Follow(ctx, 0, live.apply)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	// A second follower stands for a securechat node that is killed at
	// the same moment as the NATS server and restarts after the traffic:
	// it resumes from one past what it had applied.
	var restartedNode collector
	r1, err := sub.Follow(ctx, 0, restartedNode.apply)
	if err != nil {
		t.Fatal(err)
	}

	const writers, each = 4, 75
	var (
		mu    sync.Mutex
		acked = map[string]uint64{} // message ID → sequence
		wg    sync.WaitGroup
		errs  = make(chan error, writers)
	)
	killAt := make(chan struct{})
	var killOnce sync.Once
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				seq, err := pub.Publish(ctx, Message{ID: id, Kind: KindMsg, Room: fmt.Sprintf("#r%d", w), From: "alice", Text: id})
				if err != nil {
					errs <- fmt.Errorf("publish %s: %w", id, err)
					return
				}
				mu.Lock()
				acked[id] = seq
				if len(acked) == writers*each/4 {
					killOnce.Do(func() { close(killAt) })
				}
				mu.Unlock()
			}
		})
	}
	<-killAt
	victim := serverNamed(t, nc, streamLeader(t, ctx, pub))
	killed := time.Now()
	nc.Kill(victim)
	if err := r1.Stop(); err != nil {
		t.Errorf("stopping a follower: %v", err)
	}
	wg.Wait()
	t.Logf("killed the stream leader %s with %d of %d acked; the rest acked %v later", victim.Name, writers*each/4, writers*each, time.Since(killed).Round(time.Millisecond))
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Every ack is a distinct sequence.
	bySeq := map[uint64]string{}
	for id, seq := range acked {
		if other, dup := bySeq[seq]; dup {
			t.Fatalf("%s and %s were both acked with sequence %d", id, other, seq)
		}
		bySeq[seq] = id
	}
	checkLog := func(what string, got []Message) {
		t.Helper()
		if len(got) != len(acked) {
			t.Errorf("%s: %d messages in the log, %d acked", what, len(got), len(acked))
		}
		for i, m := range got {
			if i > 0 && m.Seq <= got[i-1].Seq {
				t.Errorf("%s: seq %d after %d", what, m.Seq, got[i-1].Seq)
			}
			if want, ok := acked[m.ID]; !ok || want != m.Seq {
				t.Errorf("%s: message %s at seq %d, acked at %d (acked: %v)", what, m.ID, m.Seq, want, ok)
			}
		}
	}
	var maxSeq uint64
	for seq := range bySeq {
		maxSeq = max(maxSeq, seq)
	}
	waitFor(t, "the live follower to apply every acked message", func() bool { return f.Applied() >= maxSeq })
	t.Logf("the live follower had applied all %d messages %v after the kill", len(acked), time.Since(killed).Round(time.Millisecond))
	checkLog("live follower", live.get())

	// With one NATS server still down, a ban made on one node holds on the
	// other: at once for a read, a moment later for its watcher.
	banned := time.Now()
	if err := pubState.Ban(ctx, Restriction{User: "mallory", By: "alice"}); err != nil {
		t.Fatalf("Ban with a NATS server down: %v", err)
	}
	if _, ok, err := subState.Banned(ctx, "mallory"); !ok || err != nil {
		t.Errorf("Banned on the other node = %v, %v", ok, err)
	}
	waitFor(t, "the other node's watcher to see the ban", func() bool {
		for _, ch := range seen.get() {
			if ch.Kind == StateBan && ch.Name == "mallory" && !ch.Removed {
				return true
			}
		}
		return false
	})
	t.Logf("the ban reached the other node's watcher %v after Ban was called", time.Since(banned).Round(time.Millisecond))
	r2, err := sub.Follow(ctx, r1.Applied()+1, restartedNode.apply)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Stop()
	select {
	case <-r2.CaughtUp():
	case <-ctx.Done():
		t.Fatal("the restarted follower never caught up")
	}
	checkLog("follower stopped and resumed", restartedNode.get())

	// The killed server comes back and catches up with its peers.
	restarted := time.Now()
	nc.Restart(victim)
	nc.WaitHealthy(victim)
	waitFor(t, "the restarted server's replica to be current", func() bool {
		s, err := pub.js.Stream(ctx, StreamName)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil || info.Cluster == nil {
			return false
		}
		if info.Cluster.Leader == victim.Name {
			return true
		}
		for _, r := range info.Cluster.Replicas {
			if r.Name == victim.Name {
				return r.Current && r.Lag == 0
			}
		}
		return false
	})

	t.Logf("%s restarted and current after %v", victim.Name, time.Since(restarted).Round(time.Millisecond))

	// Now lose another server: the restarted one and the third still hold
	// every message, and a node starting from scratch reads them all.
	for _, n := range nc.Servers {
		if n != victim {
			nc.Kill(n)
			break
		}
	}
	fresh, err := Connect(nc.URLs(), &Options{Name: "securechat3", Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	var replay collector
	g, err := fresh.Follow(ctx, 0, replay.apply)
	if err != nil {
		t.Fatalf("follow on the two remaining servers: %v", err)
	}
	defer g.Stop()
	select {
	case <-g.CaughtUp():
	case <-ctx.Done():
		t.Fatalf("the replay never caught up: %d of %d applied", replay.len(), len(acked))
	}
	checkLog("replay after restart", replay.get())
}
