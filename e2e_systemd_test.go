//go:build unix

package main

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"securechat/internal/sdnotify/sdnotifytest"
)

// TestE2EServiceNotify runs serve as systemd runs a Type=notify service:
// with $NOTIFY_SOCKET set, it must say READY=1 once it listens,
// RELOADING=1 then READY=1 around a SIGHUP reload, and STOPPING=1 on
// SIGTERM.
func TestE2EServiceNotify(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	dir, err := os.MkdirTemp("", "scn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "notify")
	conn := sdnotifytest.Listen(t, sock)
	e.env = append(e.env, "NOTIFY_SOCKET="+sock)

	s := e.serve("tcp", "127.0.0.1:0", filepath.Join(e.dir, "state"))
	kv := sdnotifytest.Read(t, conn)
	if kv["READY"] != "1" || kv["STATUS"] != "serving tcp on "+s.addr {
		t.Fatalf("first notification %v; want READY=1 with the address", kv)
	}

	s.signal(syscall.SIGHUP)
	if kv = sdnotifytest.Read(t, conn); kv["RELOADING"] != "1" || (runtime.GOOS == "linux" && kv["MONOTONIC_USEC"] == "") {
		t.Errorf("after SIGHUP: %v; want RELOADING=1 with MONOTONIC_USEC", kv)
	}
	if kv = sdnotifytest.Read(t, conn); kv["READY"] != "1" {
		t.Errorf("after the reload: %v; want READY=1", kv)
	}
	s.waitStderr(`"msg":"creds reloaded"`)

	s.signal(syscall.SIGTERM)
	if kv = sdnotifytest.Read(t, conn); kv["STOPPING"] != "1" {
		t.Errorf("after SIGTERM: %v; want STOPPING=1", kv)
	}
	s.expectExit(0)
}
