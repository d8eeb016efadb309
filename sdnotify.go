package main

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// The service manager's readiness protocol (sd_notify(3)), written out here
// instead of importing go-systemd: it is one datagram of KEY=VALUE lines to
// the socket named by $NOTIFY_SOCKET, and a dependency for that would be
// more code to audit than the protocol itself.

// serviceNotifier tells systemd (or any manager speaking the protocol) how
// the server is doing. A nil *serviceNotifier, the result outside a
// Type=notify service, does nothing.
type serviceNotifier struct {
	addr *net.UnixAddr
}

// newServiceNotifier returns a notifier for the socket named by
// $NOTIFY_SOCKET, or nil when it is unset. A name starting with '@' is in
// Linux's abstract namespace; the net package maps the '@' to the leading
// NUL byte the kernel expects.
func newServiceNotifier(socket string) (*serviceNotifier, error) {
	if socket == "" {
		return nil, nil
	}
	if socket[0] != '/' && socket[0] != '@' {
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: not an absolute path or an abstract socket name", socket)
	}
	return &serviceNotifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}, nil
}

// notify sends one state message, such as "READY=1", as a single datagram.
// Each message dials afresh, as sd_notify does, so that a manager that
// re-created its socket still hears us.
func (n *serviceNotifier) notify(lines ...string) error {
	if n == nil {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notify service manager: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		return fmt.Errorf("notify service manager: %w", err)
	}
	return nil
}

// ready reports that the server accepts connections, or has finished a
// reload.
func (n *serviceNotifier) ready(status string) error {
	return n.notify("READY=1", "STATUS="+oneLine(status))
}

// reloading reports the start of a reload. MONOTONIC_USEC is what
// systemd 253 and later require with Type=notify-reload; older ones
// ignore it.
func (n *serviceNotifier) reloading() error {
	lines := []string{"RELOADING=1"}
	if usec, ok := monotonicMicros(); ok {
		lines = append(lines, fmt.Sprintf("MONOTONIC_USEC=%d", usec))
	}
	return n.notify(lines...)
}

// stopping reports that the server is shutting down.
func (n *serviceNotifier) stopping() error {
	return n.notify("STOPPING=1", "STATUS=shutting down")
}

// oneLine keeps a status on one line: a newline would start a new
// assignment in the message.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

// notifySocketFromEnv reads $NOTIFY_SOCKET once, for serve.
func notifySocketFromEnv() string { return os.Getenv("NOTIFY_SOCKET") }
