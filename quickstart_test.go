package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestQuickStartLeavesCloneClean follows the README quick start in a fresh
// clone of this repository, with the binary the quick start builds: adding
// accounts, serving and chatting must leave "git status" clean, because a
// creds file must never end up in a repository. The accounts go to the
// state directory by default.
func TestQuickStartLeavesCloneClean(t *testing.T) {
	e := newE2EEnv(t)
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed; cannot clone the repository")
	}
	if out, err := exec.Command("git", "rev-parse", "--is-inside-work-tree").CombinedOutput(); err != nil {
		t.Skipf("not a git checkout (%v: %s); nothing to keep clean", err, out)
	}
	clone := filepath.Join(e.dir, "clone")
	if out, err := exec.Command("git", "clone", "-q", ".", clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	// "go build -o securechat ." in the clone: the same binary, copied.
	bin, err := os.ReadFile(e.bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(clone, "securechat"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// Processes run in the clone; password and known_hosts files stay
	// outside it, in e's directory.
	q := &e2eEnv{t: t, bin: filepath.Join(clone, "securechat"), dir: clone, env: e.env}

	for _, u := range []string{"alice", "bob"} {
		_, stderr, code := q.run("user", "add", "--password-file", e.passwordFile(u), "--argon2-params", e2eArgon2, u)
		if code != 0 {
			t.Fatalf("user add %s: exit %d\n%s", u, code, stderr)
		}
		if strings.Contains(stderr, "git work tree") {
			t.Errorf("user add %s warns about a git work tree, but the default is the state directory:\n%s", u, stderr)
		}
	}
	stateCreds := filepath.Join(e.dir, "home", ".local", "state", "securechat", "creds.txt")
	data, err := os.ReadFile(stateCreds)
	if err != nil {
		t.Fatalf("accounts are not in the state directory: %v", err)
	}
	if !strings.Contains(string(data), "\nalice:") && !strings.HasPrefix(string(data), "alice:") {
		t.Errorf("%s has no alice:\n%s", stateCreds, data)
	}
	checkMode(t, stateCreds)

	// serve with no --creds and no --state-dir, as the quick start runs it.
	p := q.startProc("server", nil, false, []string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json"})
	s := &e2eServer{proc: p, env: e, transport: "tcp"}
	p.waitOut(p.out, "address", func(lines []string) bool {
		for _, l := range lines {
			if m := servingRE.FindStringSubmatch(l); m != nil {
				s.addr = m[2]
			}
		}
		return s.addr != ""
	})
	c := q.start("alice", "hello from the quick start\n", s.connectArgs("alice", "")...)
	if code := c.exit(); code != 0 {
		c.dump()
		t.Fatalf("connect: exit %d", code)
	}
	s.stop()

	status, err := exec.Command("git", "-C", clone, "status", "--porcelain", "--ignored=no").CombinedOutput()
	if err != nil {
		t.Fatalf("git status: %v\n%s", err, status)
	}
	if len(status) != 0 {
		t.Errorf("the quick start left the clone dirty:\n%s", status)
	}

	// Pointing --creds into the tree works, but says what is at stake.
	_, stderr, code := q.run("user", "add", "--creds", filepath.Join(clone, "creds.txt"),
		"--password-file", e.passwordFile("carol"), "--argon2-params", e2eArgon2, "carol")
	if code != 0 {
		t.Fatalf("user add --creds ./creds.txt: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "is inside the git work tree") || !strings.Contains(stderr, "must never be committed") {
		t.Errorf("no warning for a creds file inside a git work tree:\n%s", stderr)
	}
}
