package transport_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"securechat/transport"
	"securechat/transport/transporttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestConformance runs the shared suite against every registered transport.
func TestConformance(t *testing.T) {
	names := transport.Names()
	if len(names) == 0 {
		t.Fatal("no transports registered")
	}
	for _, name := range names {
		tr, err := transport.Lookup(name)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", name, err)
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// A shorter close wait keeps the cases in which a peer never
			// ends its stream (nettest's CloseTimeout) quick.
			transporttest.TestTransport(t, tr, &transport.Options{CloseTimeout: time.Second})
		})
	}
}

func TestRegistry(t *testing.T) {
	if got := transport.Names(); !slices.Equal(got, []string{"quic", "tcp"}) {
		t.Errorf("Names() = %v, want [quic tcp]", got)
	}
	for _, tr := range []transport.Transport{transport.TCP, transport.QUIC} {
		got, err := transport.Lookup(tr.Name())
		if err != nil || got != tr {
			t.Errorf("Lookup(%q) = %v, %v; want the registered transport", tr.Name(), got, err)
		}
	}
	_, err := transport.Lookup("websocket")
	if err == nil || !strings.Contains(err.Error(), `"websocket"`) || !strings.HasPrefix(err.Error(), "transport: ") {
		t.Errorf("Lookup of an unknown name: err = %v, want a transport error naming it", err)
	}
}

func TestRegisterDuplicatePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("registering a second \"tcp\" did not panic")
		}
	}()
	transport.Register(transport.TCP)
}

// TestDialLocalAddr checks that Dial sends from Options.LocalAddr, which
// load tests use to appear as many sources on loopback.
func TestDialLocalAddr(t *testing.T) {
	for _, tr := range []transport.Transport{transport.TCP, transport.QUIC} {
		t.Run(tr.Name(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ln, err := tr.Listen(ctx, "127.0.0.1:0", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}()
			c, err := tr.Dial(ctx, ln.Addr().String(), &transport.Options{LocalAddr: "127.0.0.7"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The QUIC listener hands a conn over only once the client wrote.
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			sc, ok := <-accepted
			if !ok {
				t.Fatal("accept failed")
			}
			defer sc.Close()
			host, _, _ := net.SplitHostPort(sc.RemoteAddr().String())
			if host != "127.0.0.7" {
				t.Errorf("server sees %s, want 127.0.0.7", sc.RemoteAddr())
			}
			if _, err := tr.Dial(ctx, ln.Addr().String(), &transport.Options{LocalAddr: "not-an-ip"}); err == nil {
				t.Error("dial from a local address that is not an IP succeeded")
			}
		})
	}
}
