package handshake

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFingerprint(t *testing.T) {
	pub := testHostKey("server").Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	want := "SHA256:" + strings.TrimRight(base64.StdEncoding.EncodeToString(sum[:]), "=")
	if got := Fingerprint(pub); got != want || len(got) != 7+43 {
		t.Errorf("Fingerprint = %q, want %q", got, want)
	}
}

func TestLoadOrCreateHostKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "host_ed25519")
	key, created, err := LoadOrCreateHostKey(path)
	if err != nil || !created {
		t.Fatalf("create: %v, created=%v", err, created)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Errorf("file is not a PEM PKCS#8 key: %q", data[:min(len(data), 40)])
	}

	again, created, err := LoadOrCreateHostKey(path)
	if err != nil || created {
		t.Fatalf("reload: %v, created=%v", err, created)
	}
	if !key.Equal(again) {
		t.Error("reload returned a different key")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(data, after) {
		t.Error("reload rewrote the file")
	}

	// Signing works with the loaded key.
	sig := ed25519.Sign(again, []byte("m"))
	if !ed25519.Verify(key.Public().(ed25519.PublicKey), []byte("m"), sig) {
		t.Error("loaded key does not match")
	}
}

func TestCreateHostKeyNeverOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host")
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := createHostKey(path); !errors.Is(err, os.ErrExist) {
		t.Fatalf("createHostKey over an existing file: %v", err)
	}
	_, _, err := LoadOrCreateHostKey(path)
	if err == nil || !strings.Contains(err.Error(), "no PEM block") {
		t.Errorf("got %v, want a bad PEM error", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "not a key" {
		t.Error("file was overwritten")
	}
}

func TestHostKeyTooOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host")
	if _, _, err := LoadOrCreateHostKey(path); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateHostKey(path)
		if err == nil || !strings.Contains(err.Error(), "are too open") || !strings.Contains(err.Error(), path) {
			t.Errorf("mode %o: got %v", mode, err)
		}
	}
	os.Chmod(path, 0o644)
	_, _, err := LoadOrCreateHostKey(path)
	if err == nil || !strings.Contains(err.Error(), "permissions 0644 for '"+path+"' are too open") {
		t.Errorf("got %v", err)
	}
}

func TestHostKeyBadFiles(t *testing.T) {
	good, _ := os.ReadFile(func() string {
		p := filepath.Join(t.TempDir(), "k")
		LoadOrCreateHostKey(p)
		return p
	}())
	for name, tc := range map[string]struct {
		data, want string
	}{
		"empty":         {"", "no PEM block"},
		"garbage":       {"hello\n", "no PEM block"},
		"wrong type":    {strings.Replace(string(good), "PRIVATE KEY", "PUBLIC KEY", 2), `"PUBLIC KEY"`},
		"trailing data": {string(good) + "junk\n", "trailing data"},
		"bad der":       {"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "host key"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "host")
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, created, err := LoadOrCreateHostKey(path)
			if err == nil || created || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "handshake: ") {
				t.Errorf("got %v (created %v), want error containing %q", err, created, tc.want)
			}
		})
	}
}

func TestStatelessResetKey(t *testing.T) {
	host := testHostKey("server")
	key := StatelessResetKey(host)
	if again := StatelessResetKey(host); again != key {
		t.Fatal("StatelessResetKey differs between two calls on the same host key; a restarted server could not reset old connections")
	}
	if other := StatelessResetKey(testHostKey("other")); other == key {
		t.Error("two host keys give the same stateless reset key")
	}
	// The label keeps the key apart from the seed and from any other HKDF
	// output of the same seed.
	if bytes.Equal(key[:], host.Seed()) {
		t.Error("stateless reset key is the host key's seed")
	}
	want, err := hkdf.Key(sha256.New, host.Seed(), nil, "securechat-v1 quic stateless reset key", 32)
	if err != nil || !bytes.Equal(key[:], want) {
		t.Errorf("StatelessResetKey is not HKDF-SHA-256(seed, no salt, the documented label) (err %v)", err)
	}
}
