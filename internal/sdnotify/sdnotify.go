// Package sdnotify speaks the service manager's readiness protocol
// (sd_notify(3)) for serve: READY, RELOADING and STOPPING.
//
// Its one rule: telling the manager never stops the server. A nil
// *Notifier (no $NOTIFY_SOCKET) does nothing, and a failed notification
// is an error for the caller to log.
package sdnotify

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

// Notifier tells systemd (or any manager speaking the protocol) how
// the server is doing. A nil *Notifier, the result outside a
// Type=notify service, does nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// New returns a notifier for the socket named by
// $NOTIFY_SOCKET, or nil when it is unset. A name starting with '@' is in
// Linux's abstract namespace; the net package maps the '@' to the leading
// NUL byte the kernel expects.
func New(socket string) (*Notifier, error) {
	if socket == "" {
		return nil, nil
	}
	if socket[0] != '/' && socket[0] != '@' {
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: not an absolute path or an abstract socket name", socket)
	}
	return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}, nil
}

// notify sends one state message, such as "READY=1", as a single datagram.
// Each message dials afresh, as sd_notify does, so that a manager that
// re-created its socket still hears us.
func (n *Notifier) notify(lines ...string) error {
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

// Ready reports that the server accepts connections, or has finished a
// reload.
func (n *Notifier) Ready(status string) error {
	return n.notify("READY=1", "STATUS="+oneLine(status))
}

// Reloading reports the start of a reload. MONOTONIC_USEC is what
// systemd 253 and later require with Type=notify-reload; older ones
// ignore it.
func (n *Notifier) Reloading() error {
	lines := []string{"RELOADING=1"}
	if usec, ok := monotonicMicros(); ok {
		lines = append(lines, fmt.Sprintf("MONOTONIC_USEC=%d", usec))
	}
	return n.notify(lines...)
}

// Stopping reports that the server is shutting down.
func (n *Notifier) Stopping() error {
	return n.notify("STOPPING=1", "STATUS=shutting down")
}

// oneLine keeps a status on one line: a newline would start a new
// assignment in the message.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

// SocketFromEnv reads $NOTIFY_SOCKET once, for serve.
func SocketFromEnv() string { return os.Getenv("NOTIFY_SOCKET") }
