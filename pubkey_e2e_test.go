package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// e2eUserKey writes a new Ed25519 key for user in OpenSSH format (with
// passphrase if not empty) and authorizes it on the server's keys file.
func (e *e2eEnv) userKey(user, file, passphrase string) ed25519.PrivateKey {
	e.t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	if file != "" {
		var block *pem.Block
		if passphrase != "" {
			block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, user, []byte(passphrase))
		} else {
			block, err = ssh.MarshalPrivateKey(priv, user)
		}
		if err != nil {
			e.t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		e.t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	if _, stderr, code := e.run("user", "key", "add", "--creds", e.creds, user, line, user+"@e2e"); code != 0 {
		e.t.Fatalf("user key add %s: exit %d\n%s", user, code, stderr)
	}
	return priv
}

// keyClient runs a script client for user with no password, sending one
// line, and returns its exit code.
func (s *e2eServer) keyClient(t *testing.T, user string, env []string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"connect", "--transport", s.transport, "--user", user,
		"--known-hosts", s.env.knownHosts(), "--host-key-check", "accept-new"}, extra...)
	old := s.env.env
	s.env.env = append(append([]string(nil), old...), env...)
	defer func() { s.env.env = old }()
	return s.env.start(user, "hello from "+user+"\n", append(args, s.addr)...)
}

// startSSHAgent runs ssh-agent in the foreground on a socket in dir and
// returns the socket; the agent is killed by its PID at cleanup.
func startSSHAgent(t *testing.T, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("ssh-agent")
	if err != nil {
		t.Skip("skipping the ssh-agent login: ssh-agent is not installed (apt-get install openssh-client)")
	}
	sock := filepath.Join(dir, "agent.sock")
	cmd := exec.Command(bin, "-D", "-a", sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatal("ssh-agent did not open its socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestE2EKeyLogin logs in by key over both transports, with password
// logins off: from a key file, from a passphrase-protected key file, from
// ssh-agent, and from ~/.ssh/id_ed25519 by default. A password is refused
// like a wrong one.
func TestE2EKeyLogin(t *testing.T) {
	t.Parallel()
	for _, tr := range e2eTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t)
			plain := filepath.Join(e.dir, "alice_key")
			e.userKey("alice", plain, "")
			encrypted := filepath.Join(e.dir, "bob_key")
			e.userKey("bob", encrypted, "bob's passphrase")
			ppFile := filepath.Join(e.dir, "bob_passphrase")
			if err := os.WriteFile(ppFile, []byte("bob's passphrase\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			carol := e.userKey("carol", "", "")
			e.userKey("dave", filepath.Join(e.dir, "home", ".ssh", "id_ed25519"), "")

			s := e.serve(tr, "127.0.0.1:0", filepath.Join(e.dir, "state"), "--auth", "publickey")

			checkLogin := func(p *proc, user string) {
				t.Helper()
				if code := p.exit(); code != 0 {
					p.dump()
					t.Fatalf("%s: exit %d, want 0", user, code)
				}
				if !strings.Contains(p.stdout(), "logged in as "+user) {
					t.Errorf("%s: no login in %q", user, p.stdout())
				}
			}
			checkLogin(s.keyClient(t, "alice", nil, "--identity", plain), "alice")
			checkLogin(s.keyClient(t, "bob", nil, "--identity", encrypted, "--passphrase-file", ppFile), "bob")
			checkLogin(s.keyClient(t, "dave", nil), "dave")

			// Without its passphrase the encrypted key cannot be used.
			p := s.keyClient(t, "bob", nil, "--identity", encrypted)
			if code := p.exit(); code != 1 || !strings.Contains(p.stderr(), "passphrase") {
				t.Errorf("encrypted key without passphrase: exit %d, stderr %q", code, p.stderr())
			}
			// Another user's key is refused (exit 3), as is the right
			// password when the server takes keys only.
			if code := s.keyClient(t, "bob", nil, "--identity", plain).exit(); code != exitAuthFailed {
				t.Errorf("alice's key for bob: exit %d, want %d", code, exitAuthFailed)
			}
			if code := s.keyClient(t, "alice", nil, "--identity", "/dev/null", "--password-file", e.passwordFile("alice")).exit(); code != 1 {
				t.Errorf("bad identity file: exit %d, want 1", code)
			}
			p = s.env.start("alice", "x\n", s.connectArgs("alice", "")...)
			if code := p.exit(); code != exitAuthFailed {
				t.Errorf("password with --auth publickey: exit %d, want %d", code, exitAuthFailed)
			}

			// ssh-agent: the agent's key is found without --identity.
			sock := startSSHAgent(t, e.dir)
			ac, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer ac.Close()
			if err := agent.NewClient(ac).Add(agent.AddedKey{PrivateKey: carol, Comment: "carol"}); err != nil {
				t.Fatal(err)
			}
			checkLogin(s.keyClient(t, "carol", []string{"SSH_AUTH_SOCK=" + sock}), "carol")

			s.stop()
			log := strings.Join(s.stderrLines(), "\n")
			for _, u := range []string{"alice", "bob", "carol", "dave"} {
				if !strings.Contains(log, `"method":"publickey SHA256:`) || !strings.Contains(log, `"user":"`+u+`"`) {
					t.Errorf("server log has no key login of %s", u)
				}
			}
		})
	}
}

// TestE2EReloadRemovedKey: a SIGHUP after 'user key del' ends the sessions
// of the account that lost the key, and the key no longer logs in.
func TestE2EReloadRemovedKey(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t)
	keyFile := filepath.Join(e.dir, "alice_key")
	e.userKey("alice", keyFile, "")
	s := e.serve("tcp", "127.0.0.1:0", filepath.Join(e.dir, "state"), "--auth", "publickey")
	alice := e.startHeld("alice", "connect", "--transport", "tcp", "--user", "alice", "--identity", keyFile,
		"--known-hosts", e.knownHosts(), "--host-key-check", "accept-new", s.addr)
	alice.expect("[system] logged in as alice")

	if _, stderr, code := e.run("user", "key", "del", "--creds", e.creds, "--all", "alice"); code != 0 {
		t.Fatalf("user key del: exit %d: %s", code, stderr)
	}
	s.signal(syscall.SIGHUP)
	s.waitStderr(`"msg":"authorized keys reloaded"`)
	alice.expect("[notice] disconnected by the server: a key of your account was removed")
	// The client reconnects with the same key, which is refused now.
	alice.expectExit(exitAuthFailed)
	s.stop()
}
