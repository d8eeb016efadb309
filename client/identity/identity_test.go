package identity

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func writeKeyFile(t *testing.T, path, passphrase string) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase != "" {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte(passphrase))
	} else {
		block, err = ssh.MarshalPrivateKey(priv, "test")
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return priv
}

// askWith answers the passphrase prompt with answer and counts the prompts.
func askWith(answer string, n *int) func(string) ([]byte, error) {
	return func(string) ([]byte, error) {
		*n++
		return []byte(answer), nil
	}
}

func TestLoadIdentityPassphrase(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "id")
	priv := writeKeyFile(t, path, "open sesame")
	ppFile := filepath.Join(dir, "pp")
	if err := os.WriteFile(ppFile, []byte("open sesame\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	var asked int
	k, err := loadIdentity(path, nil, Passphrase{Interactive: true, Ask: askWith("open sesame", &asked)}, true)
	if err != nil || asked != 1 || !bytes.Equal(k.(ed25519.PrivateKey), priv) {
		t.Fatalf("asked on the terminal: %v, %d prompts", err, asked)
	}
	if k, err := loadIdentity(path, nil, Passphrase{File: ppFile}, true); err != nil || !bytes.Equal(k.(ed25519.PrivateKey), priv) {
		t.Fatalf("from --passphrase-file: %v", err)
	}
	_, err = loadIdentity(path, nil, Passphrase{Interactive: true, Ask: askWith("wrong", &asked)}, true)
	if err == nil || err.Error() != "wrong passphrase" {
		t.Errorf("wrong passphrase: %v", err)
	}
	_, err = loadIdentity(path, nil, Passphrase{}, true)
	if err == nil || !strings.Contains(err.Error(), "--passphrase-file") {
		t.Errorf("no terminal, no file: %v", err)
	}
	// A default key with a passphrase is skipped in script mode, and when
	// the user just presses Enter at the prompt.
	if _, err := loadIdentity(path, nil, Passphrase{}, false); !errors.Is(err, errSkipKey) {
		t.Errorf("default key without a terminal: %v, want errSkipKey", err)
	}
	if _, err := loadIdentity(path, nil, Passphrase{Interactive: true, Ask: askWith("", &asked)}, false); err == nil {
		t.Error("an empty answer did not skip the key")
	}
}

func TestLoadIdentityNotEd25519(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadIdentity(path, nil, Passphrase{}, true); err == nil || !strings.Contains(err.Error(), "not an OpenSSH private key") {
		t.Errorf("garbage: %v", err)
	}
}

// TestLoginKeysOrder: the default keys are ~/.ssh/id_ed25519, then the
// keygen --user key; a key found twice is offered once; --identity is the
// only key then.
func TestLoginKeysOrder(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("SSH_AUTH_SOCK", "")
	var notes bytes.Buffer
	keys, err := LoginKeys("", Passphrase{}, &notes)
	if err != nil || len(keys) != 0 {
		t.Fatalf("no keys anywhere: %d keys, %v", len(keys), err)
	}

	sshKey := writeKeyFile(t, filepath.Join(home, ".ssh", "id_ed25519"), "")
	own, err := DefaultFile()
	if err != nil {
		t.Fatal(err)
	}
	ownKey := writeKeyFile(t, own, "")
	writeKeyFile(t, filepath.Join(home, "other"), "")
	keys, err = LoginKeys("", Passphrase{}, &notes)
	if err != nil || len(keys) != 2 ||
		!bytes.Equal(keys[0].(ed25519.PrivateKey), sshKey) || !bytes.Equal(keys[1].(ed25519.PrivateKey), ownKey) {
		t.Fatalf("default keys: %d, %v", len(keys), err)
	}

	if keys, err := LoginKeys("none", Passphrase{}, &notes); err != nil || len(keys) != 0 {
		t.Errorf("--identity none: %d keys, %v", len(keys), err)
	}
	keys, err = LoginKeys(own, Passphrase{}, &notes)
	if err != nil || len(keys) != 1 || !bytes.Equal(keys[0].(ed25519.PrivateKey), ownKey) {
		t.Fatalf("--identity: %d keys, %v", len(keys), err)
	}

	// An encrypted default key is skipped without a terminal, with a note.
	writeKeyFile(t, filepath.Join(home, ".ssh", "id_ed25519"), "secret")
	notes.Reset()
	keys, err = LoginKeys("", Passphrase{}, &notes)
	if err != nil || len(keys) != 1 || !strings.Contains(notes.String(), "skipping key") {
		t.Fatalf("encrypted default key: %d keys, %v, notes %q", len(keys), err, notes.String())
	}
}

// serveKeyring serves an in-memory ssh-agent on a socket in a temporary
// directory and returns the socket.
func serveKeyring(t *testing.T, keys ...ed25519.PrivateKey) string {
	t.Helper()
	ring := agent.NewKeyring()
	for _, k := range keys {
		if err := ring.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				agent.ServeAgent(ring, c)
			}()
		}
	}()
	return sock
}

// TestAgentKeys: the agent's Ed25519 keys come first, its signature is a
// plain Ed25519 signature over exactly the bytes given, and an encrypted
// --identity that the agent holds is used through the agent without a
// passphrase.
func TestAgentKeys(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	encrypted := filepath.Join(home, "id_encrypted")
	held := writeKeyFile(t, encrypted, "never typed")
	fileKey := writeKeyFile(t, filepath.Join(home, ".ssh", "id_ed25519"), "")
	t.Setenv("SSH_AUTH_SOCK", serveKeyring(t, held))

	var notes bytes.Buffer
	keys, err := LoginKeys("", Passphrase{}, &notes)
	if err != nil || len(keys) != 2 {
		t.Fatalf("%d keys, %v (%s)", len(keys), err, notes.String())
	}
	if _, ok := keys[0].(*agentSigner); !ok || !bytes.Equal(keys[1].(ed25519.PrivateKey), fileKey) {
		t.Fatalf("order: %T, %T; want the agent's key, then ~/.ssh/id_ed25519", keys[0], keys[1])
	}
	msg := []byte("securechat v1 user auth\x00 any bytes at all")
	sig, err := keys[0].Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(held.Public().(ed25519.PublicKey), msg, sig) {
		t.Error("the agent's signature is not Ed25519 over the message")
	}

	var asked int
	keys, err = LoginKeys(encrypted, Passphrase{Interactive: true, Ask: askWith("x", &asked)}, &notes)
	if err != nil || len(keys) != 1 || asked != 0 {
		t.Fatalf("--identity held by the agent: %d keys, %v, %d prompts", len(keys), err, asked)
	}
	if _, ok := keys[0].(*agentSigner); !ok {
		t.Errorf("--identity held by the agent: %T, want the agent's key", keys[0])
	}
}
