package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	"securechat/handshake"
	"securechat/transport"
)

// These benchmarks run the whole secure channel over real loopback
// transports, with the raw transport beside it in the same run:
//
//	go test -run '^$' -bench . ./server/

// loopbackPair dials tr on loopback and returns both ends.
func loopbackPair(b *testing.B, tr transport.Transport) (client, server net.Conn) {
	b.Helper()
	ln, err := tr.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			b.Error(err)
		}
		accepted <- c
	}()
	c, err := tr.Dial(context.Background(), ln.Addr().String(), nil)
	if err != nil {
		b.Fatal(err)
	}
	// QUIC hands out the server end only once the client has written.
	if _, err := c.Write([]byte{0}); err != nil {
		b.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		b.FailNow()
	}
	var one [1]byte
	if _, err := io.ReadFull(s, one[:]); err != nil {
		b.Fatal(err)
	}
	return c, s
}

// securePair runs the handshake (x25519, no password hashing) over a fresh
// loopback pair.
func securePair(b *testing.B, tr transport.Transport) (client, server *handshake.Session) {
	b.Helper()
	ln, err := tr.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	_, hostKey, _ := ed25519.GenerateKey(rand.Reader)
	srv := make(chan *handshake.Session, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			b.Error(err)
			srv <- nil
			return
		}
		s, err := handshake.Server(context.Background(), c, &handshake.ServerConfig{
			HostKey: hostKey, Transport: tr.Name(), Verifier: acceptAll{}})
		if err != nil {
			b.Error(err)
		}
		srv <- s
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tr.Dial(ctx, ln.Addr().String(), nil)
	if err != nil {
		b.Fatal(err)
	}
	cs, err := handshake.Client(ctx, c, &handshake.ClientConfig{
		Groups: []handshake.Group{handshake.GroupX25519}, Transport: tr.Name(),
		HostKeyCallback: handshake.FixedHostKey(hostKey.Public().(ed25519.PublicKey)),
		User:            "bench", Password: func(int) ([]byte, error) { return []byte("x"), nil },
	})
	if err != nil {
		b.Fatal(err)
	}
	ss := <-srv
	if ss == nil {
		b.FailNow()
	}
	return cs, ss
}

// bulk writes b.N chunks of 64 KiB from w and reads them all from r.
func bulk(b *testing.B, w io.Writer, r io.Reader) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	done := make(chan error, 1)
	go func() {
		rb := make([]byte, chunk)
		var err error
		for n := 0; err == nil && n < b.N*chunk; {
			var k int
			k, err = r.Read(rb)
			n += k
		}
		done <- err
	}()
	b.SetBytes(chunk)
	b.ResetTimer()
	for range b.N {
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	// Closing (a QUIC close waits for its peer) is not part of the transfer.
	b.StopTimer()
}

func BenchmarkBulk(b *testing.B) {
	for _, tr := range transports {
		b.Run("raw/"+tr.Name(), func(b *testing.B) {
			c, s := loopbackPair(b, tr)
			defer c.Close()
			defer s.Close()
			bulk(b, c, s)
		})
		b.Run("securechat/"+tr.Name(), func(b *testing.B) {
			c, s := securePair(b, tr)
			defer c.Abort()
			defer s.Abort()
			bulk(b, c, s)
		})
	}
}

// BenchmarkHandshake measures full handshakes (key exchange, signature,
// both Finished, a login whose check costs nothing) per second over real
// loopback connections; the connection setup is part of the cost.
func BenchmarkHandshake(b *testing.B) {
	_, hostKey, _ := ed25519.GenerateKey(rand.Reader)
	pub := hostKey.Public().(ed25519.PublicKey)
	for _, tr := range transports {
		for _, g := range []handshake.Group{handshake.GroupX25519, handshake.GroupMLKEM768X25519} {
			b.Run(tr.Name()+"/"+g.String(), func(b *testing.B) {
				ln, err := tr.Listen(context.Background(), "127.0.0.1:0", nil)
				if err != nil {
					b.Fatal(err)
				}
				defer ln.Close()
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						go func() {
							s, err := handshake.Server(context.Background(), c, &handshake.ServerConfig{
								HostKey: hostKey, Transport: tr.Name(), Verifier: acceptAll{}})
							if err == nil {
								// Wait for the client to go: closing first
								// would discard AUTH_RESULT still in flight
								// on QUIC.
								s.ReadMessage()
								s.Abort()
							}
						}()
					}
				}()
				ccfg := &handshake.ClientConfig{Groups: []handshake.Group{g}, Transport: tr.Name(),
					HostKeyCallback: handshake.FixedHostKey(pub), User: "bench",
					Password: func(int) ([]byte, error) { return []byte("x"), nil }}
				b.ResetTimer()
				for range b.N {
					c, err := tr.Dial(context.Background(), ln.Addr().String(), nil)
					if err != nil {
						b.Fatal(err)
					}
					s, err := handshake.Client(context.Background(), c, ccfg)
					if err != nil {
						b.Fatal(err)
					}
					s.Abort()
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
			})
		}
	}
}
