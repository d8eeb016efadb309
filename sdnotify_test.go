//go:build unix

package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listenNotify plays the service manager: a datagram socket at name.
func listenNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readNotify returns the next datagram as its KEY=VALUE lines.
func readNotify(t *testing.T, conn *net.UnixConn) map[string]string {
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

func TestServiceNotifier(t *testing.T) {
	// A socket path must fit in sun_path (108 bytes), which a test's
	// temporary directory may not.
	dir, err := os.MkdirTemp("", "scn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	names := map[string]string{"path": filepath.Join(dir, "notify")}
	if runtime.GOOS == "linux" {
		names["abstract"] = fmt.Sprintf("@securechat-notify-test-%d", os.Getpid())
	}
	for kind, name := range names {
		t.Run(kind, func(t *testing.T) {
			conn := listenNotify(t, name)
			n, err := newServiceNotifier(name)
			if err != nil || n == nil {
				t.Fatalf("newServiceNotifier(%q) = %v, %v", name, n, err)
			}

			if err := n.ready("serving tcp on 127.0.0.1:7777\nsecond line"); err != nil {
				t.Fatal(err)
			}
			kv := readNotify(t, conn)
			if kv["READY"] != "1" || kv["STATUS"] != "serving tcp on 127.0.0.1:7777 second line" {
				t.Errorf("ready sent %v", kv)
			}

			if err := n.reloading(); err != nil {
				t.Fatal(err)
			}
			kv = readNotify(t, conn)
			if kv["RELOADING"] != "1" {
				t.Errorf("reloading sent %v", kv)
			}
			if runtime.GOOS == "linux" {
				usec, err := strconv.ParseUint(kv["MONOTONIC_USEC"], 10, 64)
				if err != nil || usec == 0 {
					t.Errorf("reloading: MONOTONIC_USEC %q is not a positive number", kv["MONOTONIC_USEC"])
				}
			}

			if err := n.stopping(); err != nil {
				t.Fatal(err)
			}
			if kv = readNotify(t, conn); kv["STOPPING"] != "1" {
				t.Errorf("stopping sent %v", kv)
			}
		})
	}
}

func TestServiceNotifierOff(t *testing.T) {
	// Outside a Type=notify service there is no socket, and nothing to do.
	n, err := newServiceNotifier("")
	if err != nil || n != nil {
		t.Fatalf(`newServiceNotifier("") = %v, %v; want nil, nil`, n, err)
	}
	if err := n.ready("x"); err != nil {
		t.Errorf("nil notifier: %v", err)
	}
	if _, err := newServiceNotifier("relative/socket"); err == nil {
		t.Error("a relative NOTIFY_SOCKET was accepted")
	}
	// A manager that went away is an error for the caller to log, not a
	// hang or a crash.
	n, err = newServiceNotifier(filepath.Join(t.TempDir(), "gone"))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.stopping(); err == nil {
		t.Error("notifying a missing socket reported no error")
	}
}
