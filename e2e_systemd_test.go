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
// RELOADING=1 then READY=1 around a SIGHUP reload (with a status that
// tells a failed one), and STOPPING=1 on SIGTERM.
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

	// A reload that fails keeps the old accounts and says so in the
	// status systemctl shows; the next good one clears it.
	good, err := os.ReadFile(e.creds)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.creds, append(good, "not a creds line\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	s.signal(syscall.SIGHUP)
	sdnotifytest.Read(t, conn) // RELOADING=1
	if kv = sdnotifytest.Read(t, conn); kv["READY"] != "1" || kv["STATUS"] != "serving tcp on "+s.addr+"; reload failed, old accounts kept (see the log)" {
		t.Errorf("after a failed reload: %v; want READY=1 with a status naming the accounts", kv)
	}
	if err := os.WriteFile(e.creds, good, 0o600); err != nil {
		t.Fatal(err)
	}
	s.signal(syscall.SIGHUP)
	sdnotifytest.Read(t, conn) // RELOADING=1
	if kv = sdnotifytest.Read(t, conn); kv["READY"] != "1" || kv["STATUS"] != "serving tcp on "+s.addr {
		t.Errorf("after a good reload: %v; want READY=1 with the plain status", kv)
	}

	s.signal(syscall.SIGTERM)
	if kv = sdnotifytest.Read(t, conn); kv["STOPPING"] != "1" {
		t.Errorf("after SIGTERM: %v; want STOPPING=1", kv)
	}
	s.expectExit(0)
}
