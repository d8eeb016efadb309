package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"securechat/msgsig"
)

// TestE2ESignedScript: the real client signs what a key login sends, and
// a script client checks it: verified from alice's key, unsigned from a
// password login, and failed key_changed once another key is pinned for
// alice.
func TestE2ESignedScript(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	aliceKey := filepath.Join(e.dir, "alice_key")
	e.userKey("alice", aliceKey, "")
	bobKey := filepath.Join(e.dir, "bob_key")
	e.userKey("bob", bobKey, "")
	s := e.serve("tcp", "127.0.0.1:0", filepath.Join(e.dir, "state"))

	keyArgs := func(user, key, knownUsers string, extra ...string) []string {
		args := []string{"connect", "--transport", "tcp", "--user", user, "--identity", key,
			"--known-hosts", e.knownHosts(), "--host-key-check", "accept-new", "--known-users", knownUsers}
		return append(append(args, extra...), s.addr)
	}
	bobUsers := filepath.Join(e.dir, "bob", "known_users")
	bob := e.startHeld("bob", keyArgs("bob", bobKey, bobUsers, "--json")...)
	bob.expect(`"text":"logged in as bob"`)

	alice := e.start("alice", "signed hello\n/me signs too\n/msg bob signed secret\n",
		keyArgs("alice", aliceKey, filepath.Join(e.dir, "alice", "known_users"))...)
	if code := alice.exit(); code != 0 {
		alice.dump()
		t.Fatalf("alice: exit %d", code)
	}
	for _, want := range []string{
		`"kind":"msg","room":"#general","from":"alice","to":"","text":"signed hello"`,
		`"kind":"me","room":"#general","from":"alice","to":"","text":"signs too"`,
		`"kind":"dm","room":"","from":"alice","to":"bob","text":"signed secret"`,
	} {
		if l := bob.expect(want); !strings.HasSuffix(l, `"sig":"verified","sig_reason":""}`) {
			t.Errorf("bob saw %s, want it verified", l)
		}
	}

	if code := s.client("carol", []string{"by password"}).exit(); code != 0 {
		t.Fatalf("carol: exit %d", code)
	}
	if l := bob.expect(`"from":"carol","to":"","text":"by password"`); !strings.HasSuffix(l, `"sig":"unsigned","sig_reason":""}`) {
		t.Errorf("bob saw %s, want it unsigned", l)
	}
	bob.closeStdin()
	if code := bob.exit(); code != 0 {
		bob.dump()
		t.Fatalf("bob: exit %d", code)
	}
	pins, err := os.ReadFile(bobUsers)
	if err != nil || !strings.Contains(string(pins), msgsig.UserAt("alice", s.addr)+" ssh-ed25519 ") {
		t.Fatalf("bob's known_users %q (%v) does not pin alice", pins, err)
	}
	if counters, err := os.ReadFile(filepath.Join(e.dir, "bob", "counters")); err != nil || !strings.Contains(string(counters), msgsig.UserAt("alice", s.addr)) {
		t.Errorf("bob's counters %q (%v) do not keep alice's", counters, err)
	}

	// Another key pinned for alice: her messages fail, and the client says
	// so loudly on standard error.
	other, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	line := msgsig.FormatKnownUser(msgsig.UserAt("alice", s.addr), other, false) + "\n"
	if err := os.WriteFile(bobUsers, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	bob = e.startHeld("bob", keyArgs("bob", bobKey, bobUsers)...)
	bob.expect("[system] logged in as bob")
	alice = e.start("alice", "changed?\n", keyArgs("alice", aliceKey, filepath.Join(e.dir, "alice", "known_users"))...)
	if code := alice.exit(); code != 0 {
		alice.dump()
		t.Fatalf("alice: exit %d", code)
	}
	if l := bob.expect("alice: changed?"); !strings.HasSuffix(l, " [FAILED: key_changed]") {
		t.Errorf("bob saw %q, want it failed with key_changed", l)
	}
	bob.waitStderr("HAS CHANGED")
	bob.closeStdin()
	bob.exit()
}
