package msgsig

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKnownUsersMalformed(t *testing.T) {
	good := FormatKnownUser("alice@h:1", testKey("alice").Public().(ed25519.PublicKey), false)
	_, b64, _ := strings.Cut(strings.TrimPrefix(good, "alice@h:1 "), " ")
	cases := map[string]string{
		"two fields":       "alice@h:1 ssh-ed25519",
		"no port":          "alice@h ssh-ed25519 " + b64,
		"no user":          "h:1 ssh-ed25519 " + b64,
		"upper case user":  "Alice@h:1 ssh-ed25519 " + b64,
		"star not revoked": "* ssh-ed25519 " + b64,
		"other marker":     "@cert-authority alice@h:1 ssh-ed25519 " + b64,
		"rsa":              "alice@h:1 ssh-rsa " + b64,
		"bad base64":       "alice@h:1 ssh-ed25519 !!!",
		"raw key":          "alice@h:1 ssh-ed25519 " + EncodeKey(testKey("alice").Public().(ed25519.PublicKey)),
	}
	for name, line := range cases {
		_, err := ParseKnownUsers(strings.NewReader("# pins\n\n"+good+"\n"+line+"\n"), "ku")
		if err == nil || !strings.HasPrefix(err.Error(), "msgsig: known_users ku:4: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
	k, err := ParseKnownUsers(strings.NewReader(good+" alice@laptop\n@revoked * "+strings.TrimPrefix(good, "alice@h:1 ")+"\n"), "ku")
	if err != nil || len(k.Users) != 2 || !k.Users[1].Revoked || k.Users[1].Who != "*" {
		t.Errorf("comment and @revoked *: %+v %v", k, err)
	}
}

func TestAddKnownUser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "known_users")
	alice := testKey("alice").Public().(ed25519.PublicKey)
	who := "alice@h:1"
	if added, err := AddKnownUser(path, who, alice); !added || err != nil {
		t.Fatal(added, err)
	}
	if added, err := AddKnownUser(path, who, alice); added || err != nil {
		t.Errorf("second add: %v %v", added, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi, err)
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v", di.Mode())
	}
	var changed *KeyChangedError
	if _, err := AddKnownUser(path, who, testKey("other").Public().(ed25519.PublicKey)); !errors.As(err, &changed) {
		t.Errorf("another key for a pinned user: %v", err)
	}
	// A file without its last newline gets one before our line.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("# hand edit")
	f.Close()
	bob := testKey("bob").Public().(ed25519.PublicKey)
	if _, err := AddKnownUser(path, "bob@h:1", bob); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKnownUsers(path)
	if err != nil || len(k.Users) != 2 || k.Users[1].Line != 3 {
		t.Fatalf("%+v %v", k, err)
	}
	// Revoke, then try to pin the revoked key for another user.
	if added, err := RevokeKnownUser(path, "*", bob); !added || err != nil {
		t.Fatal(added, err)
	}
	if added, err := RevokeKnownUser(path, "*", bob); added || err != nil {
		t.Errorf("second revoke: %v %v", added, err)
	}
	var revoked *KeyRevokedError
	if _, err := AddKnownUser(path, "carol@h:1", bob); !errors.As(err, &revoked) {
		t.Errorf("pinning a revoked key: %v", err)
	}
	// Removing a user's pins keeps the @revoked lines and the comments.
	removed, err := RemoveKnownUser(path, "bob@h:1")
	if err != nil || len(removed) != 1 || !removed[0].Key.Equal(bob) || !strings.HasPrefix(removed[0].Text, "bob@h:1 ssh-ed25519 ") {
		t.Fatal(removed, err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "# hand edit") || !strings.Contains(string(data), "@revoked * ") ||
		strings.Contains(string(data), "bob@h:1") {
		t.Errorf("after removal: %q", data)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after removal %v", fi.Mode())
	}
	if removed, err := RemoveKnownUser(path, "nobody@h:1"); len(removed) != 0 || err != nil {
		t.Errorf("removing nothing: %v %v", removed, err)
	}
}

// TestInvalidFileFailsEverything: a known_users file that does not parse
// could hide a pin or a revocation, so no message verifies and no
// unsigned message passes as plain.
func TestInvalidFileFailsEverything(t *testing.T) {
	now := t0
	v, path := newTestVerifier(t, "bob", PolicyAcceptNew, &now)
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := v.Check(signedEvent(t, testKey("alice"), KindMsg, "#general", "alice", 1, "x"))
	if r.Status != Failed || r.Err == nil || !strings.Contains(r.Err.Error(), ":1:") {
		t.Errorf("signed: %+v", r)
	}
	if r := v.Check(&Event{Kind: KindMsg, Room: "#general", From: "dave", Text: "x"}); r.Status != Failed {
		t.Errorf("unsigned: %+v", r)
	}
}
