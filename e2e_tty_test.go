package main

import (
	"os/exec"
	"path/filepath"
	"strconv"
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

// TestE2EResizeWrappedInput: resizing the window while the input line
// wraps leaves exactly one copy of the input, on the prompt line, and the
// messages above it as they were, at a narrower and a wider width.
func TestE2EResizeWrappedInput(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	s := e.serve("tcp", "127.0.0.1:0", filepath.Join(e.dir, "state"), "--flood-rate", "-1")
	bob := s.heldClient("bob")
	m, _ := startTmuxClient(t, e, "resize", []string{"SECURECHAT_PASSWORD=" + e2ePassword("alice")},
		"--user", "alice", "--known-hosts", e.knownHosts(), "--fingerprint", s.fingerprint, s.addr)
	m.waitScreen("the prompt", func(l []string) bool { return lastLine(l) == "[#general] >" })
	for i := 1; i <= 5; i++ {
		bob.send("message number " + strings.Repeat("x", i))
	}
	m.waitText("message number xxxxx")

	input := ""
	for i := 0; len(input) < 150; i++ {
		input += "word" + string(rune('a'+i%26)) + " "
	}
	input = strings.TrimSpace(input)
	m.typeText(input)
	want := "[#general] > " + input
	// The line editor breaks a long input into rows itself, so the rows
	// are compared joined, and without spaces: tmux drops a row's
	// trailing space, which a row that ends between two words has.
	noSpace := func(s string) string { return strings.ReplaceAll(s, " ", "") }
	endsWithInput := func(l []string) bool {
		return strings.HasSuffix(noSpace(strings.Join(l, "")), noSpace(want))
	}
	m.waitScreen("the wrapped input", endsWithInput)

	for _, width := range []string{"60", "37", "120", "80", "100"} {
		if _, err := m.tmux("resize-window", "-t", m.name, "-x", width); err != nil {
			t.Fatal(err)
		}
		// Wait until the client has redrawn the input for the new width
		// (every row of it full but the last): until then, a line printed
		// races the terminal's own rewrap, in any program.
		w, _ := strconv.Atoi(width)
		m.waitScreen("the input redrawn at width "+width, func([]string) bool {
			raw, err := m.tmux("capture-pane", "-p", "-t", m.name)
			if err != nil {
				return false
			}
			rows := strings.Split(strings.TrimRight(raw, "\n "), "\n")
			start := -1
			for i, r := range rows {
				if strings.HasPrefix(r, "[#general] > worda") {
					start = i
				}
			}
			if start < 0 {
				return false
			}
			for _, r := range rows[start : len(rows)-1] {
				// (capture-pane drops a row's trailing space)
				if len(r) != w && len(r) != w-1 {
					return false
				}
			}
			return true
		})
		// A message after the resize is printed above the input.
		bob.send("after resize to " + width)
		lines := m.waitScreen("the input once, after width "+width, func(l []string) bool {
			scr := strings.Join(l, "\n")
			return endsWithInput(l) && strings.Contains(scr, "after resize to "+width) && strings.Count(scr, "worda") == 1
		})
		scr := strings.Join(lines, "\n")
		if n := strings.Count(scr, "worda"); n != 1 {
			t.Errorf("width %s: the input is on screen %d times, want once:\n%s", width, n, scr)
		}
		for i := 1; i <= 5; i++ {
			msg := "<bob> message number " + strings.Repeat("x", i)
			if !strings.Contains(scr, msg+"\n") {
				t.Errorf("width %s: %q is no longer on screen whole:\n%s", width, msg, scr)
			}
		}
		if t.Failed() {
			break
		}
	}
	m.keys("C-u")
	m.typeText("/quit")
	m.keys("Enter")
	bob.expect("[#general] -- alice quit")
}
