//go:build unix

// Package sdnotifytest plays the service manager for tests of what a
// server tells it (package sdnotify).
//
// Its one rule: every wait is bounded, so a server that never notifies
// fails the test instead of hanging it.
package sdnotifytest

import (
	"net"
	"strings"
	"testing"
	"time"
)

// Listen plays the service manager: a datagram socket at name, closed
// when the test ends.
func Listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Read returns the next datagram as its KEY=VALUE lines, failing the
// test when none comes within ten seconds.
func Read(t *testing.T, conn *net.UnixConn) map[string]string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	msg := string(buf[:n])
	if !strings.HasSuffix(msg, "\n") {
		t.Errorf("message %q does not end in a newline", msg)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(msg, "\n"), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("line %q of %q is not KEY=VALUE", line, msg)
		}
		kv[k] = v
	}
	return kv
}
