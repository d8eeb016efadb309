package chat

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchConn counts what the hub writes and keeps nothing.
type benchConn struct {
	in        chan []byte
	closed    chan struct{}
	closeOnce sync.Once
	count     *deliveryCounter
}

func (c *benchConn) ReadMessage() ([]byte, error) {
	select {
	case p := <-c.in:
		return p, nil
	case <-c.closed:
		return nil, net.ErrClosed
	}
}

func (c *benchConn) WriteMessages(msgs [][]byte) error {
	c.count.add(int64(len(msgs)))
	return nil
}

func (c *benchConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

// deliveryCounter signals when the total crosses target.
type deliveryCounter struct {
	total, target atomic.Int64
	reached       chan struct{}
}

func (d *deliveryCounter) add(n int64) {
	t := d.target.Load()
	if total := d.total.Add(n); total >= t && total-n < t {
		select {
		case d.reached <- struct{}{}:
		default:
		}
	}
}

func (d *deliveryCounter) waitFor(target int64) {
	d.target.Store(target)
	for d.total.Load() < target {
		<-d.reached
	}
}

// BenchmarkFanout measures one sender's messages reaching every member of
// a room. One op is one message delivered to all members; deliveries/s
// counts single deliveries.
func BenchmarkFanout(b *testing.B) {
	for _, members := range []int{100, 1000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) { benchFanout(b, members) })
	}
}

func benchFanout(b *testing.B, members int) {
	const window = 256 // messages in flight; well under SendQueue
	h := NewHub(&Config{FloodRate: -1, SendQueue: 1024, PingInterval: time.Hour, HistorySize: 500})
	count := &deliveryCounter{reached: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	conns := make([]*benchConn, members)
	for i := range conns {
		c := &benchConn{in: make(chan []byte, window), closed: make(chan struct{}), count: count}
		conns[i] = c
		wg.Go(func() { h.Serve(context.Background(), c, Identity{User: fmt.Sprintf("u%d", i)}) })
		c.in <- []byte(`{"t":"hello","v":1}`)
		if i%100 == 99 {
			settle(h, count, i+1)
		}
	}
	settle(h, count, members)
	if st := h.Stats(); st.Dropped != 0 || st.Users != members {
		b.Fatalf("setup: %+v", st)
	}

	msg := []byte(`{"t":"msg","room":"#general","text":"the quick brown fox jumps over the lazy dog"}`)
	sender := conns[0]
	base := count.total.Load()
	b.ReportAllocs()
	sent := int64(0)
	for b.Loop() {
		sender.in <- msg
		sent++
		if sent%window == 0 {
			count.waitFor(base + sent*int64(members))
		}
	}
	count.waitFor(base + sent*int64(members))
	b.ReportMetric(float64(sent*int64(members))/b.Elapsed().Seconds(), "deliveries/s")

	if st := h.Stats(); st.Dropped != 0 {
		b.Fatalf("dropped %d events", st.Dropped)
	}
	h.Close()
	wg.Wait()
}

// settle waits until users are logged in and every queued event has been
// written.
func settle(h *Hub, count *deliveryCounter, users int) {
	for {
		st := h.Stats()
		if st.Users == users && st.Delivered == uint64(count.total.Load()) {
			return
		}
		runtime.Gosched()
	}
}
