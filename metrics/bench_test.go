package metrics

import (
	"context"
	"net"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"securechat/chat"
	"securechat/handshake"
	"securechat/server"
)

// idleConn is a session that never sends and takes every write.
type idleConn struct {
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *idleConn) ReadMessage() ([]byte, error) { <-c.closed; return nil, net.ErrClosed }
func (c *idleConn) WriteMessages([][]byte) error { return nil }
func (c *idleConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

// hubWithSessions starts a hub with n idle sessions attached.
func hubWithSessions(b *testing.B, n int) *chat.Hub {
	h := chat.NewHub(&chat.Config{PingInterval: time.Hour, HelloTimeout: time.Hour, MaxSessionsPerUser: -1})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.Serve(context.Background(), &idleConn{closed: make(chan struct{})}, chat.Identity{User: "bench"})
		}()
	}
	b.Cleanup(func() { h.Close(); wg.Wait() })
	for h.Stats().Sessions < n {
		time.Sleep(time.Millisecond)
	}
	return h
}

// BenchmarkScrape is one full /metrics request against a hub of 1000
// sessions and every series in use: what one Prometheus scrape costs the
// server, in CPU time.
func BenchmarkScrape(b *testing.B) {
	h := hubWithSessions(b, 1000)
	m := New(Sources{Transport: "tcp", Sessions: func() int { return 1000 }, Stats: h.Stats})
	hk := m.Hooks()
	for _, g := range handshakeGroups {
		for _, r := range handshakeResults {
			hk.Handshake(g, r, time.Millisecond)
		}
	}
	hk.Login(server.LoginOK)
	handler := m.Handler()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkHubStats is the part of a scrape that runs on the hub's loop,
// the one goroutine fan-out goes through: it holds the loop this long.
func BenchmarkHubStats(b *testing.B) {
	h := hubWithSessions(b, 1000)
	for b.Loop() {
		h.Stats()
	}
}

// BenchmarkHandshakeHook is what each handshake pays for its counter and
// histogram.
func BenchmarkHandshakeHook(b *testing.B) {
	hk := New(Sources{}).Hooks()
	for b.Loop() {
		hk.Handshake(handshake.GroupX25519, server.HandshakeOK, time.Millisecond)
	}
}
