package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// startTmuxClient runs "securechat connect" with args in a tmux pane of a
// tmux server of the test's own, and returns the session and the file the
// shell writes the exit code to. env are VAR=value words put before the
// command.
func startTmuxClient(t *testing.T, e *e2eEnv, name string, env []string, args ...string) (*tmuxSession, string) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed; the interactive end-to-end tests drive the client in tmux (CI installs it)")
	}
	rcFile := filepath.Join(e.dir, name+".rc")
	words := []string{"env"}
	for _, v := range env {
		words = append(words, shellQuote(v))
	}
	words = append(words, shellQuote(e.bin), "connect")
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	m := &tmuxSession{t: t, env: e.env, socket: filepath.Join(e.dir, name+".sock"), name: name}
	if _, err := m.tmux("new-session", "-d", "-s", m.name, "-x", "100", "-y", "30",
		strings.Join(words, " ")+"; echo $? > "+shellQuote(rcFile)+"; sleep 600"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := m.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", m.name); err == nil {
				t.Logf("terminal at the end:\n%s", out)
			}
		}
		m.tmux("kill-session", "-t", m.name)
		m.tmux("kill-server")
	})
	return m, rcFile
}

// TestE2ECtrlCAtPrompts: Ctrl-C at the host key question and at Password:
// ends the client at once with exit code 130, as ssh does, without waiting
// for Enter.
func TestE2ECtrlCAtPrompts(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	s := e.serve("tcp", "127.0.0.1:0", filepath.Join(e.dir, "state"))

	t.Run("host key question", func(t *testing.T) {
		m, rc := startTmuxClient(t, e, "hostq", []string{"SECURECHAT_PASSWORD=" + e2ePassword("alice")},
			"--user", "alice", "--known-hosts", e.knownHosts(), "--host-key-check", "ask", s.addr)
		m.waitText("Are you sure you want to continue connecting (yes/no/[fingerprint])?")
		m.keys("C-c")
		if got := strings.TrimSpace(waitFile(t, rc)); got != "130" {
			t.Errorf("exit code %s after Ctrl-C at the host key question, want 130", got)
		}
	})
	t.Run("password", func(t *testing.T) {
		m, rc := startTmuxClient(t, e, "passwd", nil,
			"--user", "alice", "--known-hosts", e.knownHosts(), "--fingerprint", s.fingerprint, s.addr)
		m.waitText("Password:")
		m.typeText("half a pass")
		m.keys("C-c")
		if got := strings.TrimSpace(waitFile(t, rc)); got != "130" {
			t.Errorf("exit code %s after Ctrl-C at Password:, want 130", got)
		}
	})
}

// TestE2EWrongPasswordSaysSo: a wrong password typed at the prompt is
// answered with ssh's "Permission denied, please try again." before the
// prompt comes back, and the right one then logs in.
func TestE2EWrongPasswordSaysSo(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	s := e.serve("tcp", "127.0.0.1:0", filepath.Join(e.dir, "state"))
	m, _ := startTmuxClient(t, e, "wrongpw", nil,
		"--user", "alice", "--known-hosts", e.knownHosts(), "--fingerprint", s.fingerprint, s.addr)
	m.waitText("Password:")
	m.typeText("not-the-password")
	m.keys("Enter")
	m.waitText("Permission denied, please try again.")
	m.waitScreen("the prompt again", func(l []string) bool { return strings.HasPrefix(lastLine(l), "Password:") })
	m.typeText(e2ePassword("alice"))
	m.keys("Enter")
	m.waitText("logged in as alice")
}
