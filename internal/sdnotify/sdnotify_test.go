//go:build unix

package sdnotify

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"securechat/internal/sdnotify/sdnotifytest"
)

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
			conn := sdnotifytest.Listen(t, name)
			n, err := New(name)
			if err != nil || n == nil {
				t.Fatalf("New(%q) = %v, %v", name, n, err)
			}

			if err := n.Ready("serving tcp on 127.0.0.1:7777\nsecond line"); err != nil {
				t.Fatal(err)
			}
			kv := sdnotifytest.Read(t, conn)
			if kv["READY"] != "1" || kv["STATUS"] != "serving tcp on 127.0.0.1:7777 second line" {
				t.Errorf("ready sent %v", kv)
			}

			if err := n.Reloading(); err != nil {
				t.Fatal(err)
			}
			kv = sdnotifytest.Read(t, conn)
			if kv["RELOADING"] != "1" {
				t.Errorf("reloading sent %v", kv)
			}
			if runtime.GOOS == "linux" {
				usec, err := strconv.ParseUint(kv["MONOTONIC_USEC"], 10, 64)
				if err != nil || usec == 0 {
					t.Errorf("reloading: MONOTONIC_USEC %q is not a positive number", kv["MONOTONIC_USEC"])
				}
			}

			if err := n.Stopping(); err != nil {
				t.Fatal(err)
			}
			if kv = sdnotifytest.Read(t, conn); kv["STOPPING"] != "1" {
				t.Errorf("stopping sent %v", kv)
			}
		})
	}
}

func TestServiceNotifierOff(t *testing.T) {
	// Outside a Type=notify service there is no socket, and nothing to do.
	n, err := New("")
	if err != nil || n != nil {
		t.Fatalf(`New("") = %v, %v; want nil, nil`, n, err)
	}
	if err := n.Ready("x"); err != nil {
		t.Errorf("nil notifier: %v", err)
	}
	if _, err := New("relative/socket"); err == nil {
		t.Error("a relative NOTIFY_SOCKET was accepted")
	}
	// A manager that went away is an error for the caller to log, not a
	// hang or a crash.
	n, err = New(filepath.Join(t.TempDir(), "gone"))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Stopping(); err == nil {
		t.Error("notifying a missing socket reported no error")
	}
}
