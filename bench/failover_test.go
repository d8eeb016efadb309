package bench

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"securechat/transport"
)

func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{line: func(l string) { got = append(got, l) }}
	for _, p := range []string{"one\ntw", "o", "\n\nthree\nfour"} {
		w.Write([]byte(p))
	}
	if want := []string{"one", "two", "", "three"}; !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q (an unfinished line waits)", got, want)
	}
}

func TestRunFailoverConfig(t *testing.T) {
	ok := FailoverConfig{Command: []string{"false"}, Transport: transport.TCP, Nodes: 2, Clients: 2, Kills: 1, Timeout: time.Second}
	for _, bad := range []func(c *FailoverConfig){
		func(c *FailoverConfig) { c.Command = nil },
		func(c *FailoverConfig) { c.Nodes = 1 },
		func(c *FailoverConfig) { c.Nodes = MaxFailoverNodes + 1 },
		func(c *FailoverConfig) { c.Clients = 1 },
		func(c *FailoverConfig) { c.Kills = 0 },
	} {
		c := ok
		bad(&c)
		if _, err := RunFailover(context.Background(), c); err == nil {
			t.Errorf("RunFailover(%+v) ran", c)
		}
	}
	// A serve command that exits at once is reported, not waited for.
	if _, err := RunFailover(context.Background(), ok); err == nil {
		t.Error("RunFailover with nodes that exit at once succeeded")
	}
}

// TestTargetSpreadsClients: with several addresses, client i dials node
// i mod N.
func TestTargetSpreadsClients(t *testing.T) {
	var addrs []string
	accepted := make([]chan struct{}, 2)
	for i := range accepted {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
		accepted[i] = make(chan struct{}, 8)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close() // the handshake fails; the dial is what counts
				accepted[i] <- struct{}{}
			}
		}()
	}
	tg := &Target{Transport: transport.TCP, Addr: addrs[0], Addrs: addrs, Fingerprint: "SHA256:x",
		Prefix: "bench", Accounts: 1, Password: []byte("x")}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tg.Dial(ctx, i)
		cancel()
	}
	for i, want := range []int{2, 1} {
		got := 0
		for len(accepted[i]) > 0 || got < want {
			select {
			case <-accepted[i]:
				got++
				continue
			case <-time.After(10 * time.Second):
			}
			break
		}
		if got != want {
			t.Errorf("node %d got %d connections, want %d", i, got, want)
		}
	}
}
