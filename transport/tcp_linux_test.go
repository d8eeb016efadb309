package transport

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func tcpSockopt(t *testing.T, c net.Conn, level, opt int) int {
	t.Helper()
	raw, err := c.(*tcpConn).c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) }); err != nil || gerr != nil {
		t.Fatalf("getsockopt: %v %v", err, gerr)
	}
	return v
}

func tcpPair(t *testing.T, opts *Options) (dialed, accepted net.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ln, err := TCP.Listen(ctx, "127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialed, err = TCP.Dial(ctx, ln.Addr().String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close() })
	accepted, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accepted.Close() })
	return dialed, accepted
}

func TestTCPSocketOptions(t *testing.T) {
	dialed, accepted := tcpPair(t, &Options{KeepAlivePeriod: 20 * time.Second})
	for name, c := range map[string]net.Conn{"dialed": dialed, "accepted": accepted} {
		for _, o := range []struct {
			what       string
			level, opt int
			want       int
		}{
			{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
			{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
			{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 20},
			{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 20},
			{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3},
		} {
			if got := tcpSockopt(t, c, o.level, o.opt); got != o.want {
				t.Errorf("%s conn: %s = %d, want %d", name, o.what, got, o.want)
			}
		}
	}

	dialed, _ = tcpPair(t, nil)
	if got := tcpSockopt(t, dialed, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE); got != 15 {
		t.Errorf("default keepalive idle = %d s, want 15", got)
	}

	dialed, accepted = tcpPair(t, &Options{KeepAlivePeriod: -1})
	for name, c := range map[string]net.Conn{"dialed": dialed, "accepted": accepted} {
		if got := tcpSockopt(t, c, unix.SOL_SOCKET, unix.SO_KEEPALIVE); got != 0 {
			t.Errorf("%s conn with keepalives disabled: SO_KEEPALIVE = %d", name, got)
		}
	}
}
