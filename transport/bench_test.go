package transport_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"securechat/transport"
)

// benchPair connects a dialed and an accepted conn over IPv4 loopback.
func benchPair(b *testing.B, tr transport.Transport) (dialed, accepted net.Conn, cleanup func()) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := tr.Listen(ctx, "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		// The first byte makes the QUIC stream visible to the server.
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			c.Close()
			c = nil
		}
		acc <- c
	}()
	dialed, err = tr.Dial(ctx, ln.Addr().String(), nil)
	if err != nil {
		ln.Close()
		b.Fatal(err)
	}
	if _, err := dialed.Write([]byte{'H'}); err != nil {
		b.Fatal(err)
	}
	accepted = <-acc
	if accepted == nil {
		b.Fatal("accept failed")
	}
	return dialed, accepted, func() {
		done := make(chan struct{})
		go func() { accepted.Close(); close(done) }()
		dialed.Close()
		<-done
		ln.Close()
	}
}

// BenchmarkBulk measures one-way throughput of the raw transport (MB/s), the
// baseline for the secure channel on top. Each op is one 32 KiB Write; the
// clock stops only once the receiver has read everything.
func BenchmarkBulk(b *testing.B) {
	for _, name := range transport.Names() {
		b.Run(name, func(b *testing.B) {
			tr, _ := transport.Lookup(name)
			dialed, accepted, cleanup := benchPair(b, tr)
			defer cleanup()
			buf := make([]byte, 32<<10)
			want := int64(b.N) * int64(len(buf))
			got := make(chan int64, 1)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			go func() {
				n, _ := io.CopyN(io.Discard, accepted, want)
				got <- n
			}()
			for range b.N {
				if _, err := dialed.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			if n := <-got; n != want {
				b.Fatalf("receiver got %d bytes, want %d", n, want)
			}
		})
	}
}

// BenchmarkPingPong measures one round trip of a 64-byte message, about the
// size of a chat line.
func BenchmarkPingPong(b *testing.B) {
	for _, name := range transport.Names() {
		b.Run(name, func(b *testing.B) {
			tr, _ := transport.Lookup(name)
			dialed, accepted, cleanup := benchPair(b, tr)
			defer cleanup()
			go io.Copy(accepted, accepted)
			msg := make([]byte, 64)
			b.ResetTimer()
			for range b.N {
				if _, err := dialed.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(dialed, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
