package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"securechat/handshake"
	"securechat/internal/hostkeys"
)

func runCLI(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"securechat"}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestKeygenRotation: --next needs a current key and never overwrites;
// --promote makes the next key current, keeps the old one as .old and
// leaves no next key; fingerprint --next prints the next key's.
func TestKeygenRotation(t *testing.T) {
	dir := t.TempDir()
	cur := filepath.Join(dir, handshake.HostKeyFile)
	if _, stderr, code := runCLI("keygen", "--next", "--state-dir", dir); code != exitError || !strings.Contains(stderr, "no current host key") {
		t.Fatalf("keygen --next without a key: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(cur + handshake.NextHostKeySuffix); !os.IsNotExist(err) {
		t.Fatalf("a next key was left behind: %v", err)
	}
	oldFP, _, code := runCLI("keygen", "--state-dir", dir)
	if code != 0 {
		t.Fatal("keygen failed")
	}
	if _, stderr, code := runCLI("keygen", "--promote", "--state-dir", dir); code != exitError || !strings.Contains(stderr, "no next host key") {
		t.Fatalf("keygen --promote without a next key: exit %d, %q", code, stderr)
	}
	nextFP, stderr, code := runCLI("keygen", "--next", "--state-dir", dir)
	if code != 0 || nextFP == oldFP {
		t.Fatalf("keygen --next: exit %d, %q, %q", code, nextFP, stderr)
	}
	if fi, err := os.Stat(cur + handshake.NextHostKeySuffix); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("next key: %v, want mode 0600", err)
	}
	if _, stderr, code := runCLI("keygen", "--next", "--state-dir", dir); code != exitError || !strings.Contains(stderr, "refusing to overwrite") {
		t.Fatalf("second keygen --next: exit %d, %q", code, stderr)
	}
	if fp, _, _ := runCLI("fingerprint", "--next", "--state-dir", dir); fp != nextFP {
		t.Errorf("fingerprint --next %q, want %q", fp, nextFP)
	}
	if fp, _, _ := runCLI("fingerprint", "--state-dir", dir); fp != oldFP {
		t.Errorf("fingerprint %q, want the current %q", fp, oldFP)
	}
	if _, _, code := runCLI("keygen", "--next", "--promote", "--state-dir", dir); code != exitUsage {
		t.Errorf("--next with --promote: exit %d, want %d", code, exitUsage)
	}

	promoted, stderr, code := runCLI("keygen", "--promote", "--state-dir", dir)
	if code != 0 || promoted != nextFP {
		t.Fatalf("keygen --promote: exit %d, %q (want %q), %q", code, promoted, nextFP, stderr)
	}
	if fp, _, _ := runCLI("fingerprint", "--state-dir", dir); fp != nextFP {
		t.Errorf("after promotion the host key is %q, want %q", fp, nextFP)
	}
	old, err := handshake.LoadHostKey(cur + hostkeys.OldSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if fp := handshake.Fingerprint(old.Public().(ed25519.PublicKey)) + "\n"; fp != oldFP {
		t.Errorf("the kept old key is %q, want %q", fp, oldFP)
	}
	if _, err := os.Stat(cur + handshake.NextHostKeySuffix); !os.IsNotExist(err) {
		t.Errorf("the next key is still there after promotion: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("state directory holds %d files, want the key and the old one", len(entries))
	}
}

// TestKnownHostsRemoveCommand covers the command's own paths: it prints
// what it removed, says when there is nothing to remove, and refuses bad
// arguments with exit code 2.
func TestKnownHostsRemoveCommand(t *testing.T) {
	kh := filepath.Join(t.TempDir(), "known_hosts")
	k1 := handshake.FormatKnownHost("a.example:7777", make([]byte, 32))
	k2 := handshake.FormatKnownHost("b.example:7777", bytes.Repeat([]byte{1}, 32))
	if err := os.WriteFile(kh, []byte(k1+"\n"+k2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runCLI("known-hosts", "remove", "--known-hosts", kh, "a.example:7777")
	if code != 0 || out != "removed "+kh+":1: "+k1+"\n" {
		t.Fatalf("remove: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if b, _ := os.ReadFile(kh); string(b) != k2+"\n" {
		t.Errorf("file after removal: %q", b)
	}
	if _, stderr, code := runCLI("known-hosts", "remove", "--known-hosts", kh, "a.example:7777"); code != exitError || !strings.Contains(stderr, "is not in") {
		t.Errorf("remove again: exit %d, %q", code, stderr)
	}
	if _, stderr, code := runCLI("known-hosts", "remove", "--known-hosts", kh+".missing", "a.example:7777"); code != exitError || !strings.Contains(stderr, "does not exist") {
		t.Errorf("missing file: exit %d, %q", code, stderr)
	}
	for _, args := range [][]string{
		{"known-hosts", "remove", "--known-hosts", kh},
		{"known-hosts", "remove", "--known-hosts", kh, "a.example"},
		{"known-hosts", "remove", "--known-hosts", kh, "a:1", "b:2"},
		{"known-hosts", "remove", "--bogus", "a:1"},
	} {
		if _, stderr, code := runCLI(args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%q)", args, code, exitUsage, stderr)
		}
	}
	if b, _ := os.ReadFile(kh); string(b) != k2+"\n" {
		t.Errorf("file changed by refused commands: %q", b)
	}
}
