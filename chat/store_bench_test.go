package chat_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"securechat/chat"
	"securechat/chatstore"
	"securechat/store"
)

// countConn counts what the hub writes to it and keeps nothing.
type countConn struct {
	in     chan []byte
	closed chan struct{}
	once   sync.Once
	n      *atomic.Int64
}

func (c *countConn) ReadMessage() ([]byte, error) {
	select {
	case p := <-c.in:
		return p, nil
	case <-c.closed:
		return nil, net.ErrClosed
	}
}

func (c *countConn) WriteMessages(msgs [][]byte) error { c.n.Add(int64(len(msgs))); return nil }

func (c *countConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// BenchmarkFanoutStore is BenchmarkFanout with and without a store, the
// sender asking for acks: one op is one message delivered to 1000 members
// and acknowledged, which with a store waits for its commit.
//
//	go test ./chat -run '^$' -bench FanoutStore -benchtime 20000x
func BenchmarkFanoutStore(b *testing.B) {
	for _, kind := range []string{"off", "memory", "sqlite"} {
		b.Run("store="+kind, func(b *testing.B) {
			cfg := &chat.Config{FloodRate: -1, SendQueue: 1024, PingInterval: time.Hour}
			switch kind {
			case "memory":
				st := store.OpenMemory(nil)
				defer st.Close()
				cfg.Store = chatstore.New(st)
			case "sqlite":
				st, err := store.Open(filepath.Join(b.TempDir(), "chat.db"), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				cfg.Store = chatstore.New(st)
			}
			benchFanoutStore(b, cfg, 1000)
		})
	}
}

func benchFanoutStore(b *testing.B, cfg *chat.Config, members int) {
	const window = 256
	h, err := chat.Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var delivered atomic.Int64
	var wg sync.WaitGroup
	conns := make([]*countConn, members)
	for i := range conns {
		c := &countConn{in: make(chan []byte, window), closed: make(chan struct{}), n: &delivered}
		conns[i] = c
		wg.Go(func() { h.Serve(context.Background(), c, chat.Identity{User: fmt.Sprintf("u%d", i)}) })
		c.in <- []byte(`{"t":"hello","v":1}`)
	}
	wait := func(target int64) {
		for delivered.Load() < target {
			runtime.Gosched()
		}
	}
	for h.Stats().Users < members {
		runtime.Gosched()
	}
	// Every join reached everyone who was there.
	time.Sleep(100 * time.Millisecond)
	base := delivered.Load()
	sender := conns[0]
	// Each message: members deliveries plus the sender's ack.
	per := int64(members + 1)
	sent := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		sent++
		sender.in <- fmt.Appendf(nil, `{"t":"msg","id":"m%d","room":"#general","text":"the quick brown fox jumps over the lazy dog"}`, sent)
		if sent%window == 0 {
			wait(base + sent*per)
		}
	}
	wait(base + sent*per)
	b.ReportMetric(float64(sent*int64(members))/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "acked/s")
	if st := h.Stats(); st.Dropped != 0 || st.NotStored != 0 {
		b.Fatalf("dropped %d, not stored %d", st.Dropped, st.NotStored)
	}
	h.Close()
	wg.Wait()
}
