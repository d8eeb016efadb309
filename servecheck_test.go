package main

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"securechat/handshake"
	"securechat/store"
)

// checkWorld is a server configuration on disk: an accounts file with
// one account, and a state directory holding a host key.
type checkWorld struct {
	dir, creds, state, hostKey string
}

func newCheckWorld(t *testing.T) *checkWorld {
	t.Helper()
	dir := t.TempDir()
	w := &checkWorld{dir: dir, creds: filepath.Join(dir, "creds.txt"), state: filepath.Join(dir, "state")}
	w.hostKey = filepath.Join(w.state, handshake.HostKeyFile)
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runUser(t, "user", "add", "--creds", w.creds, "--password-file", pw, cheapParams, "alice"); code != 0 {
		t.Fatalf("user add: exit %d: %s", code, stderr)
	}
	if _, _, err := handshake.LoadOrCreateHostKey(w.hostKey); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *checkWorld) args(extra ...string) []string {
	return append([]string{"serve", "--check", "--creds", w.creds, "--state-dir", w.state}, extra...)
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestServeCheck runs serve --check over one kind of bad configuration at
// a time; each must fail with a message that names its own problem.
func TestServeCheck(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(t *testing.T, w *checkWorld) []string
		code   int
		want   string
	}{
		{"creds missing", func(t *testing.T, w *checkWorld) []string {
			os.Remove(w.creds)
			return w.args()
		}, exitError, "no such file"},
		{"creds readable by others", func(t *testing.T, w *checkWorld) []string {
			os.Chmod(w.creds, 0o644)
			return w.args()
		}, exitError, "permissions 0644 are too open"},
		{"creds line broken", func(t *testing.T, w *checkWorld) []string {
			writeFile(t, w.creds, "# accounts\nnot an account\n", 0o600)
			return w.args()
		}, exitError, "creds.txt:2"},
		{"keys file writable by others", func(t *testing.T, w *checkWorld) []string {
			writeFile(t, filepath.Join(w.dir, "creds.keys"), "", 0o622)
			return w.args()
		}, exitError, "creds.keys: permissions 0622 are too open"},
		{"keys line broken", func(t *testing.T, w *checkWorld) []string {
			writeFile(t, filepath.Join(w.dir, "creds.keys"), "# keys\nalice ssh-rsa AAAA\n", 0o600)
			return w.args()
		}, exitError, "creds.keys:2: ssh-rsa keys are not supported"},
		{"store kind unknown", func(t *testing.T, w *checkWorld) []string {
			return w.args("--store", "postgres")
		}, exitUsage, `--store "postgres": want sqlite or memory`},
		{"history-max negative", func(t *testing.T, w *checkWorld) []string {
			return w.args("--history-max", "-1")
		}, exitUsage, "must not be negative"},
		{"chat database not a database", func(t *testing.T, w *checkWorld) []string {
			writeFile(t, filepath.Join(w.state, store.FileName), "this is not SQLite, but long enough to have a header of sorts\n", 0o600)
			return w.args()
		}, exitError, store.FileName},
		{"auth method unknown", func(t *testing.T, w *checkWorld) []string {
			return w.args("--auth", "password")
		}, exitUsage, `--auth "password": want any or publickey`},
		{"host key readable by others", func(t *testing.T, w *checkWorld) []string {
			os.Chmod(w.hostKey, 0o640)
			return w.args()
		}, exitError, "permissions 0640 for"},
		{"host key not a key", func(t *testing.T, w *checkWorld) []string {
			writeFile(t, w.hostKey, "hello\n", 0o600)
			return w.args()
		}, exitError, "no PEM block"},
		{"state directory a file", func(t *testing.T, w *checkWorld) []string {
			state := filepath.Join(w.dir, "plainfile")
			writeFile(t, state, "x", 0o600)
			return []string{"serve", "--check", "--creds", w.creds, "--state-dir", filepath.Join(state, "sub")}
		}, exitError, "is not a directory"},
		{"listen not host:port", func(t *testing.T, w *checkWorld) []string {
			return w.args("--listen", "7777")
		}, exitUsage, `--listen "7777": want HOST:PORT`},
		{"listen port unknown", func(t *testing.T, w *checkWorld) []string {
			return w.args("--listen", "127.0.0.1:no-such-service")
		}, exitUsage, `--listen "127.0.0.1:no-such-service"`},
		{"transport unknown", func(t *testing.T, w *checkWorld) []string {
			return w.args("--transport", "sctp")
		}, exitUsage, `--transport "sctp"`},
		{"kex group unknown", func(t *testing.T, w *checkWorld) []string {
			return w.args("--kex", "x25519,p256")
		}, exitUsage, "--kex:"},
		{"max-startups malformed", func(t *testing.T, w *checkWorld) []string {
			return w.args("--max-startups", "10:30")
		}, exitUsage, "--max-startups"},
		{"penalty-exempt malformed", func(t *testing.T, w *checkWorld) []string {
			return w.args("--penalty-exempt", "10.0.0.0/99")
		}, exitUsage, "--penalty-exempt"},
		{"log level unknown", func(t *testing.T, w *checkWorld) []string {
			return w.args("--log-level", "loud")
		}, exitUsage, "--log-level"},
		{"log format unknown", func(t *testing.T, w *checkWorld) []string {
			return w.args("--log-format", "xml")
		}, exitUsage, "--log-format"},
		{"negative count", func(t *testing.T, w *checkWorld) []string {
			return w.args("--history", "-1")
		}, exitUsage, "--history -1: must not be negative"},
		{"negative duration", func(t *testing.T, w *checkWorld) []string {
			return w.args("--login-grace-time", "-5s")
		}, exitUsage, "--login-grace-time -5s: must not be negative"},
		{"flag value malformed", func(t *testing.T, w *checkWorld) []string {
			return w.args("--history", "many")
		}, exitUsage, "history"},
		{"motd unreadable", func(t *testing.T, w *checkWorld) []string {
			return w.args("--motd", filepath.Join(w.dir, "no-motd"))
		}, exitError, "motd:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newCheckWorld(t)
			code, stdout, stderr := runUser(t, tc.break_(t, w)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.want)
			}
			if strings.Contains(stdout, "configuration OK") {
				t.Errorf("a bad configuration was called OK: %q", stdout)
			}
		})
	}
}

func TestServeCheckGood(t *testing.T) {
	w := newCheckWorld(t)
	motd := filepath.Join(w.dir, "motd")
	writeFile(t, motd, "welcome\n", 0o644)
	code, stdout, stderr := runUser(t, w.args("--motd", motd, "--transport", "quic", "--listen", "[::1]:7777")...)
	key, err := handshake.LoadHostKey(w.hostKey)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || !strings.Contains(stdout, "configuration OK") || !strings.Contains(stdout, "1 accounts") ||
		!strings.Contains(stdout, handshake.Fingerprint(key.Public().(ed25519.PublicKey))) {
		t.Errorf("exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}

	// No host key yet is fine, and --check does not create one (nor the
	// state directory): it changes nothing.
	state := filepath.Join(w.dir, "new-state")
	code, stdout, stderr = runUser(t, "serve", "--check", "--creds", w.creds, "--state-dir", state)
	if code != 0 || !strings.Contains(stdout, "none yet; serve will create it") {
		t.Errorf("no host key yet: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("--check created the state directory (stat: %v)", err)
	}
}
