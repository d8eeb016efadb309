package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"securechat/credstore"
)

func newPubLine(t *testing.T, comment string) (ed25519.PublicKey, string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pub, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " " + comment
}

func TestUserKeyAddListDel(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds.txt")
	keys := filepath.Join(dir, "creds.keys")
	_, lineA := newPubLine(t, "alice@laptop")
	_, lineB := newPubLine(t, "alice@phone")
	pubFile := filepath.Join(dir, "id_ed25519.pub")
	if err := os.WriteFile(pubFile, []byte(lineB+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	userIO(t, "", false)
	if code, _, stderr := runUser(t, append([]string{"user", "key", "add", "--creds", creds, "alice"}, strings.Fields(lineA)...)...); code != 0 ||
		!strings.Contains(stderr, "key-only account") {
		t.Fatalf("add from arguments: %d %s", code, stderr)
	}
	if code, _, stderr := runUser(t, "user", "key", "add", "--creds", creds, "--file", pubFile, "alice"); code != 0 {
		t.Fatalf("add from file: %d %s", code, stderr)
	}
	userIO(t, lineA+"\n", false)
	if code, _, stderr := runUser(t, "user", "key", "add", "--creds", creds, "bob"); code != 0 {
		t.Fatalf("add from stdin: %d %s", code, stderr)
	}
	checkMode(t, keys)
	if code, _, stderr := runUser(t, "user", "key", "add", "--creds", creds, "--file", pubFile, "alice"); code != 1 || !strings.Contains(stderr, "already authorized") {
		t.Errorf("adding twice: %d %s", code, stderr)
	}

	f, err := credstore.ReadKeysFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	ak := f.Keys("alice")
	if len(ak) != 2 || ak[0].Comment != "alice@laptop" || ak[1].Comment != "alice@phone" || len(f.Keys("bob")) != 1 {
		t.Fatalf("keys file: %v", f.Keys(""))
	}

	code, stdout, _ := runUser(t, "user", "key", "list", "--creds", creds, "alice")
	if code != 0 || !strings.Contains(stdout, ak[0].Fingerprint()+"  alice@laptop") || strings.Contains(stdout, "bob") {
		t.Errorf("list alice: %d\n%s", code, stdout)
	}

	if code, _, stderr := runUser(t, "user", "key", "del", "--creds", creds, "alice", ak[0].Fingerprint()); code != 0 {
		t.Fatalf("del by fingerprint: %d %s", code, stderr)
	}
	if code, _, stderr := runUser(t, "user", "key", "del", "--creds", creds, "alice", ak[0].Fingerprint()); code != 1 || !strings.Contains(stderr, "no such key") {
		t.Errorf("del again: %d %s", code, stderr)
	}
	if code, _, stderr := runUser(t, append([]string{"user", "key", "del", "--creds", creds, "alice"}, strings.Fields(lineB)...)...); code != 0 {
		t.Fatalf("del by key: %d %s", code, stderr)
	}
	if f, _ := credstore.ReadKeysFile(keys); len(f.Keys("alice")) != 0 || len(f.Keys("bob")) != 1 {
		t.Errorf("after del: %v", f.Keys(""))
	}
}

func TestUserKeyErrors(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds.txt")
	userIO(t, "", false)
	for name, c := range map[string]struct {
		args []string
		code int
		want string
	}{
		"rsa key":     {[]string{"add", "alice", "ssh-rsa", "AAAAB3NzaC1yc2EAAAADAQABAAABAQ"}, 1, "ssh-rsa keys are not supported"},
		"garbage":     {[]string{"add", "alice", "hello"}, 1, "not an OpenSSH public key"},
		"bad name":    {[]string{"add", "Alice", "ssh-ed25519", "AAAA"}, 2, "characters outside"},
		"no key":      {[]string{"add", "alice"}, 2, "no public key given"},
		"del no key":  {[]string{"del", "alice"}, 2, "del wants NAME"},
		"list two":    {[]string{"list", "alice", "bob"}, 2, "at most one NAME"},
		"private key": {[]string{"add", "alice", "BEGIN OPENSSH PRIVATE KEY"}, 1, "that is a private key"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"user", "key", c.args[0], "--creds", creds}, c.args[1:]...)
			code, _, stderr := runUser(t, args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, c.code, c.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "creds.keys")); err == nil {
		t.Error("a failed add wrote the keys file")
	}
}

// TestUserDelRemovesKeys: deleting an account leaves it no way in.
func TestUserDelRemovesKeys(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds.txt")
	userIO(t, "alice-password\n", false)
	if code, _, stderr := runUser(t, "user", "add", "--creds", creds, cheapParams, "alice"); code != 0 {
		t.Fatal(stderr)
	}
	_, line := newPubLine(t, "x")
	userIO(t, line+"\n", false)
	if code, _, stderr := runUser(t, "user", "key", "add", "--creds", creds, "alice"); code != 0 {
		t.Fatal(stderr)
	}
	if code, _, stderr := runUser(t, "user", "del", "--creds", creds, "alice"); code != 0 || !strings.Contains(stderr, "removed the keys of alice") {
		t.Fatalf("del: %d %s", code, stderr)
	}
	if f, err := credstore.ReadKeysFile(filepath.Join(dir, "creds.keys")); err != nil || len(f.Keys("")) != 0 {
		t.Errorf("keys left: %v %v", f, err)
	}
}
