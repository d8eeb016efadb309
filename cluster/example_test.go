package cluster_test

import (
	"context"
	"log"
	"time"

	"securechat/cluster"
)

// A node's life with the cluster: the chat service publishes what its
// users send, acks each message once Publish returns, and shows messages
// (its own included) as the follower applies them to its store.
func Example() {
	ctx := context.Background()
	c, err := cluster.Connect("tls://nats1:4222,tls://nats2:4222,tls://nats3:4222", &cluster.Options{
		Name:      "chat1",
		CredsFile: "/var/lib/securechat/nats.creds",
		CAFile:    "/etc/securechat/nats-ca.pem",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.EnsureStream(ctx, cluster.StreamConfig{Replicas: 3}); err != nil {
		log.Fatal(err)
	}

	// Shared state first, so that no banned user gets in at start.
	shared, err := c.Shared(ctx, 3)
	if err != nil {
		log.Fatal(err)
	}
	w, err := shared.Watch(ctx, func(ch cluster.Change) { /* apply to the hub */ })
	if err != nil {
		log.Fatal(err)
	}
	defer w.Stop()
	<-w.Synced()

	// Then the log, from one past what the store holds.
	var lastInStore uint64 // from the store at start
	f, err := c.Follow(ctx, lastInStore+1, func(m cluster.Message) { /* append to the store with id m.Seq, deliver */ })
	if err != nil {
		log.Fatal(err)
	}
	defer f.Stop()
	<-f.CaughtUp()

	p, err := c.Presence(cluster.PresenceOptions{OnChange: func(ev cluster.PresenceEvent) { /* update /who */ }})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Stop()
	p.Join("alice")

	pubCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	seq, err := c.Publish(pubCtx, cluster.Message{Kind: cluster.KindMsg, Room: "#go", From: "alice", Text: "hello"})
	if err != nil {
		log.Printf("not stored, tell alice: %v", err)
		return
	}
	log.Printf("stored as message %d: ack it to alice", seq)
}
