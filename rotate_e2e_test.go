package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"securechat/handshake"
	"securechat/internal/hostkeys"
)

// TestE2EHostKeyRotation runs a whole host key rotation with the real
// binary over each transport (PROTOCOL.md §7.5): a client records the
// current key; keygen --next and SIGHUP; the client, even with
// --host-key-check strict, records the next key without a word; keygen
// --promote and a restart; the client goes on without a warning, while a
// known_hosts that still holds only the old key gets the hard failure.
func TestE2EHostKeyRotation(t *testing.T) {
	t.Parallel()
	for _, tr := range e2eTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			state := filepath.Join(e.dir, "state")
			s := e.serve(tr, "127.0.0.1:0", state, "--flood-rate", "-1")
			kh := filepath.Join(e.dir, "known_hosts.rotating")
			say := func(kh, policy, text string) *proc {
				t.Helper()
				return e.start("alice", text+"\n", s.connectArgs("alice", kh, "--host-key-check", policy)...)
			}
			quiet := func(p *proc, what string) {
				t.Helper()
				p.expectExit(exitOK)
				for _, l := range p.stderrLines() {
					if strings.Contains(l, "WARNING") || strings.Contains(l, "arning:") {
						t.Errorf("%s: the client warned: %s", what, l)
					}
				}
			}
			khLines := func(path string) []string {
				t.Helper()
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			}

			// First contact: the current key is recorded.
			say(kh, "accept-new", "first contact").expectExit(exitOK)
			if got := khLines(kh); len(got) != 1 {
				t.Fatalf("known_hosts after first contact: %q", got)
			}
			stale := filepath.Join(e.dir, "known_hosts.stale")
			copyFile(t, kh, stale)

			// The next key, announced after SIGHUP.
			nextFP, stderr, code := e.run("keygen", "--next", "--state-dir", state)
			if code != 0 {
				t.Fatalf("keygen --next: exit %d: %s", code, stderr)
			}
			nextFP = strings.TrimSpace(nextFP)
			s.signal(syscall.SIGHUP)
			s.waitStderr(`"msg":"host keys reloaded"`)

			// A client that stays connected through the switch: it logs in
			// during the announcement and reconnects to the promoted key.
			khHeld := filepath.Join(e.dir, "known_hosts.held")
			copyFile(t, stale, khHeld)
			held := e.startHeld("bob (held)", s.connectArgs("bob", khHeld, "--host-key-check", "strict")...)
			held.expect("[system] logged in as bob")

			quiet(say(kh, "strict", "learning the next key"), "strict client during the announcement")
			got := khLines(kh)
			if len(got) != 2 || !strings.HasPrefix(got[1], s.addr+" securechat-ed25519 ") {
				t.Fatalf("known_hosts after the announcement: %q", got)
			}
			quiet(say(kh, "strict", "again"), "second connection during the announcement")
			if n := len(khLines(kh)); n != 2 {
				t.Errorf("known_hosts has %d lines after a second announcement, want 2", n)
			}

			// The switch.
			promoted, stderr, code := e.run("keygen", "--promote", "--state-dir", state)
			if code != 0 || strings.TrimSpace(promoted) != nextFP {
				t.Fatalf("keygen --promote: exit %d, printed %q (want %s): %s", code, promoted, nextFP, stderr)
			}
			if fi, err := os.Stat(filepath.Join(state, handshake.HostKeyFile+hostkeys.OldSuffix)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("the old key is not kept with mode 0600: %v", err)
			}
			s.stop()
			s2 := e.serve(tr, s.addr, state, "--flood-rate", "-1")
			if s2.fingerprint != nextFP {
				t.Fatalf("restarted server has %s, want the promoted %s", s2.fingerprint, nextFP)
			}
			held.expect("[notice] the server is shutting down")
			held.expect("[#general] -- bob joined") // logged in again, to the promoted key
			held.send("still here after the switch")
			held.expect("[#general] bob: still here after the switch")
			held.closeStdin()
			quiet(held, "client connected through the switch")
			quiet(say(kh, "strict", "after the switch"), "client that was online at the announcement")
			if n := len(khLines(kh)); n != 2 {
				t.Errorf("known_hosts has %d lines after the switch, want 2", n)
			}

			// A client that missed the announcement: the usual hard failure.
			missed := say(stale, "accept-new", "missed it")
			missed.expectExit(exitHostKey)
			if !strings.Contains(missed.stderr(), "REMOTE HOST IDENTIFICATION HAS CHANGED") {
				t.Errorf("stale client's stderr: %s", missed.stderr())
			}

			// The new key revoked: refused even though known_hosts lists it.
			nextLine := khLines(kh)[1]
			revoked := filepath.Join(e.dir, "known_hosts.revoked")
			copyFile(t, kh, revoked)
			appendFile(t, revoked, "@revoked * "+strings.SplitN(nextLine, " ", 2)[1]+"\n")
			rev := say(revoked, "accept-new", "revoked")
			rev.expectExit(exitHostKey)
			if !strings.Contains(rev.stderr(), "REVOKED") {
				t.Errorf("revoked client's stderr: %s", rev.stderr())
			}

			// known-hosts remove: both keys go, then strict refuses the
			// server as unknown and accept-new records it afresh.
			out, stderr, code := e.run("known-hosts", "remove", "--known-hosts", kh, s.addr)
			if code != 0 || strings.Count(out, "removed ") != 2 || !strings.Contains(out, nextLine) {
				t.Fatalf("known-hosts remove: exit %d, stdout %q, stderr %q", code, out, stderr)
			}
			say(kh, "strict", "unknown now").expectExit(exitHostKey)
			say(kh, "accept-new", "known again").expectExit(exitOK)
			if got := khLines(kh); len(got) != 1 || got[0] != nextLine {
				t.Errorf("known_hosts after removal and accept-new: %q, want [%s]", got, nextLine)
			}
			s2.stop()
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}
