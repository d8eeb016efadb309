package credstore

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

func testKey(tb testing.TB, name string) (ed25519.PublicKey, string) {
	tb.Helper()
	seed := sha256.Sum256([]byte("credstore test key " + name))
	pub := ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return pub, strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(sp)), "\n")
}

func TestParseAuthorizedKey(t *testing.T) {
	pub, line := testKey(t, "a")
	k, err := ParseAuthorizedKey("alice", line+"  alice@laptop ")
	if err != nil {
		t.Fatal(err)
	}
	if !k.Key.Equal(pub) || k.Comment != "alice@laptop" || k.User != "alice" {
		t.Errorf("got %+v", k)
	}
	if got := k.AuthorizedLine(); got != line+" alice@laptop" {
		t.Errorf("AuthorizedLine = %q", got)
	}
	if !strings.HasPrefix(k.Fingerprint(), "SHA256:") {
		t.Errorf("fingerprint %q", k.Fingerprint())
	}

	b64 := strings.Fields(line)[1]
	for name, c := range map[string]struct{ user, line, want string }{
		"rsa":          {"alice", "ssh-rsa " + b64, "not supported"},
		"options":      {"alice", `from="10.0.0.1" ` + line, "options are not supported"},
		"bad base64":   {"alice", "ssh-ed25519 AAAA!!", "base64"},
		"truncated":    {"alice", "ssh-ed25519 " + b64[:20], "does not parse"},
		"empty":        {"alice", "", "not an OpenSSH public key"},
		"bad name":     {"Alice", line, "characters outside"},
		"control char": {"alice", line + " a\x1bb", "control character"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseAuthorizedKey(c.user, c.line)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestParseKeysFileBad(t *testing.T) {
	_, a := testKey(t, "a")
	for name, c := range map[string]struct{ text, want string }{
		"duplicate":  {"alice " + a + "\n#x\nalice " + a + " again\n", "keys:3: key SHA256:"},
		"no key":     {"alice\n", "keys:1: not an OpenSSH public key"},
		"wrong type": {"# keys\nbob ssh-dss AAAA\n", "keys:2: ssh-dss keys are not supported"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseKeysFile("keys", []byte(c.text))
			var pe *ParseError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want a ParseError containing %q", err, c.want)
			}
		})
	}
	// The same key for two users is allowed.
	if _, err := parseKeysFile("keys", []byte("alice "+a+"\nbob "+a+"\n")); err != nil {
		t.Error(err)
	}
}

func TestEditKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "creds.keys")
	ka, a := testKey(t, "a")
	_, b := testKey(t, "b")
	orig := "# alice's keys\nalice " + a + " laptop\n\n"
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	kb, err := ParseAuthorizedKey("alice", b+" phone")
	if err != nil {
		t.Fatal(err)
	}
	if err := EditKeys(path, func(f *KeysFile) error { return f.Add(kb) }); err != nil {
		t.Fatal(err)
	}
	want := orig + "alice " + b + " phone\n"
	if got := readText(t, path); got != want {
		t.Errorf("after add:\n%s\nwant:\n%s", got, want)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	err = EditKeys(path, func(f *KeysFile) error { return f.Add(kb) })
	if !errors.Is(err, ErrKeyExists) {
		t.Errorf("adding twice: %v, want ErrKeyExists", err)
	}
	err = EditKeys(path, func(f *KeysFile) error {
		gone, err := f.Delete("alice", func(k AuthorizedKey) bool { return k.Key.Equal(ka) })
		if len(gone) != 1 || gone[0].Comment != "laptop" {
			t.Errorf("deleted %v", gone)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want = "# alice's keys\n\nalice " + b + " phone\n"
	if got := readText(t, path); got != want {
		t.Errorf("after delete:\n%s\nwant:\n%s", got, want)
	}
	err = EditKeys(path, func(f *KeysFile) error {
		_, err := f.Delete("bob", func(AuthorizedKey) bool { return true })
		return err
	})
	if !errors.Is(err, ErrNoSuchKey) {
		t.Errorf("deleting bob's keys: %v, want ErrNoSuchKey", err)
	}
}

// TestEditKeysConcurrent: edits by many writers at once are all kept.
func TestEditKeysConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.keys")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, line := testKey(t, string(rune('a'+i)))
			k, err := ParseAuthorizedKey("alice", line)
			if err != nil {
				t.Error(err)
				return
			}
			if err := EditKeys(path, func(f *KeysFile) error { return f.Add(k) }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	f, err := ReadKeysFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.Keys("alice")); n != 8 {
		t.Errorf("%d keys after 8 concurrent adds", n)
	}
}

func TestKeyStore(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "creds.keys")
	k, err := LoadKeys(path)
	if err != nil {
		t.Fatalf("missing file: %v", err)
	}
	ka, a := testKey(t, "a")
	kb, b := testKey(t, "b")
	if err := k.VerifyPublicKey(ctx, "alice", ka); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("no keys yet: %v, want ErrAuthFailed", err)
	}
	writeCreds(t, path, "alice "+a+"\nalice "+b+"\nbob "+b+"\n")
	lost, err := k.Reload()
	if err != nil || len(lost) != 0 {
		t.Fatalf("reload: %v %v", lost, err)
	}
	for _, c := range []struct {
		user string
		key  ed25519.PublicKey
		ok   bool
	}{{"alice", ka, true}, {"alice", kb, true}, {"bob", kb, true}, {"bob", ka, false}, {"carol", ka, false}} {
		err := k.VerifyPublicKey(ctx, c.user, c.key)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrAuthFailed) {
			t.Errorf("%s: %v, want ok=%v", c.user, err, c.ok)
		}
	}

	// A bad file keeps the old keys in force.
	writeCreds(t, path, "alice "+a+"\nbob ssh-ed25519 junk\n")
	if _, err := k.Reload(); err == nil {
		t.Error("reload of a bad file succeeded")
	}
	if err := k.VerifyPublicKey(ctx, "bob", kb); err != nil {
		t.Errorf("old keys not kept: %v", err)
	}

	writeCreds(t, path, "alice "+a+"\n")
	lost, err = k.Reload()
	if err != nil || strings.Join(lost, ",") != "alice,bob" {
		t.Errorf("lost %v %v, want alice,bob", lost, err)
	}
	if err := k.VerifyPublicKey(ctx, "alice", kb); err == nil {
		t.Error("removed key still accepted")
	}

	if err := os.Chmod(path, 0o620); err != nil {
		t.Fatal(err)
	}
	var me *KeysModeError
	if _, err := k.Reload(); !errors.As(err, &me) {
		t.Errorf("group-writable file: %v, want KeysModeError", err)
	}
	if _, err := LoadKeys(path); !errors.As(err, &me) {
		t.Errorf("group-writable file: %v, want KeysModeError", err)
	}
}

func TestKeysPath(t *testing.T) {
	for in, want := range map[string]string{
		"creds.txt":          "creds.keys",
		"/etc/sc/creds.txt":  "/etc/sc/creds.keys",
		"creds":              "creds.keys",
		"accounts.keys":      "accounts.keys.keys",
		"/etc/sc/.creds":     "/etc/sc/.creds.keys",
		"dir.d/creds":        "dir.d/creds.keys",
		"/etc/sc/users.list": "/etc/sc/users.keys",
	} {
		if got := KeysPath(in); got != want {
			t.Errorf("KeysPath(%q) = %q, want %q", in, got, want)
		}
	}
}
