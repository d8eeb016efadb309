package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"

	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"securechat/credstore"
	"securechat/internal/usercmd"
)

// cheapParams keeps the hashing in these tests fast.
const cheapParams = "--argon2-params=m=64,t=1,p=1"

// userIO replaces the password sources for one test.
func userIO(t *testing.T, stdin string, tty bool, prompts ...string) {
	t.Helper()
	oldStdin, oldTTY, oldRead := usercmd.Stdin, usercmd.StdinIsTTY, usercmd.ReadPassword
	t.Cleanup(func() { usercmd.Stdin, usercmd.StdinIsTTY, usercmd.ReadPassword = oldStdin, oldTTY, oldRead })
	usercmd.Stdin = strings.NewReader(stdin)
	usercmd.StdinIsTTY = func() bool { return tty }
	usercmd.ReadPassword = func(_ context.Context, prompt string) ([]byte, error) {
		if len(prompts) == 0 {
			t.Errorf("unexpected prompt %q", prompt)
			return nil, errors.New("no terminal")
		}
		p := prompts[0]
		prompts = prompts[1:]
		return []byte(p), nil
	}
}

// runUser runs "securechat ARGS..." in process.
func runUser(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), append([]string{"securechat"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func readCreds(t *testing.T, path string) *credstore.File {
	t.Helper()
	f, err := credstore.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func checkMode(t *testing.T, path string) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", path, info.Mode().Perm())
	}
}

// verifies reports whether password logs name in through a Store.
func verifies(t *testing.T, path, name, password string) bool {
	t.Helper()
	s, err := credstore.Load(path, &credstore.Options{NoRehash: true})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Verify(t.Context(), name, []byte(password))
	if err != nil && !errors.Is(err, credstore.ErrAuthFailed) {
		t.Fatal(err)
	}
	return err == nil
}

func TestUserAddListDel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.txt")

	userIO(t, "alice-password\n", false)
	code, _, stderr := runUser(t, "user", "add", "--creds", path, cheapParams, "alice")
	if code != 0 {
		t.Fatalf("add alice: %d %s", code, stderr)
	}
	if !strings.Contains(stderr, "added user alice (argon2id m=64,t=1,p=1) to "+path) ||
		!strings.Contains(stderr, "below the OWASP minimum") {
		t.Errorf("stderr %q", stderr)
	}
	checkMode(t, path)

	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("bob password\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	userIO(t, "", false)
	if code, _, stderr := runUser(t, "user", "add", "--creds", path, "--admin", "--password-file", pwFile, cheapParams, "bob"); code != 0 {
		t.Fatalf("add bob: %d %s", code, stderr)
	}
	if !verifies(t, path, "alice", "alice-password") || !verifies(t, path, "bob", "bob password") {
		t.Error("the new accounts do not log in")
	}
	if verifies(t, path, "bob", "bob password\r") {
		t.Error("the line break was kept in the password")
	}

	code, stdout, stderr := runUser(t, "user", "list", "--creds", path)
	if code != 0 {
		t.Fatalf("list: %d %s", code, stderr)
	}
	want := "NAME   ROLE   HASH\n" +
		"alice  user   argon2id m=64,t=1,p=1 (upgraded at next login)\n" +
		"bob    admin  argon2id m=64,t=1,p=1 (upgraded at next login)\n"
	if stdout != want {
		t.Errorf("list:\n%s\nwant:\n%s", stdout, want)
	}
	if strings.Contains(stdout, "$") {
		t.Error("list shows hashes")
	}

	if code, _, stderr := runUser(t, "user", "del", "--creds", path, "alice"); code != 0 || !strings.Contains(stderr, "deleted alice from "+path) {
		t.Fatalf("del: %d %s", code, stderr)
	}
	f := readCreds(t, path)
	if _, ok := f.Lookup("alice"); ok {
		t.Error("alice still there")
	}
	if a, ok := f.Lookup("bob"); !ok || a.Role != credstore.RoleAdmin {
		t.Error("bob lost")
	}
	checkMode(t, path)
}

func TestUserPasswdKeepsRoleAndOtherLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.txt")
	carol, err := credstore.NewAccount("carol", credstore.RoleUser, []byte("carol-password"), credstore.Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	content := "# staff\n\n" + carol.String() + "\nbob:$2a$04$.0jHlt3HHqsMAdXZ3o6YpuJeCSQ1aDR2SkY92EOsgRSEwdqjW/i52:admin\n# end\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := runUser(t, "user", "list", "--creds", path)
	if code != 0 || !strings.Contains(stdout, "bob    admin  bcrypt cost=4 (upgraded at next login)") {
		t.Errorf("list of a bcrypt line: %d\n%s", code, stdout)
	}

	userIO(t, "new bob password\n", false)
	code, _, stderr := runUser(t, "user", "passwd", "--creds", path, cheapParams, "bob")
	if code != 0 || !strings.Contains(stderr, "changed the password of bob") {
		t.Fatalf("passwd: %d %s", code, stderr)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(got), "\n")
	wantLines := strings.Split(content, "\n")
	if len(lines) != len(wantLines) || lines[0] != wantLines[0] || lines[1] != "" || lines[2] != carol.String() || lines[4] != "# end" {
		t.Errorf("passwd touched other lines:\n%s", got)
	}
	if !strings.HasPrefix(lines[3], "bob:$argon2id$v=19$m=64,t=1,p=1$") || !strings.HasSuffix(lines[3], ":admin") {
		t.Errorf("bob's line %q", lines[3])
	}
	if !verifies(t, path, "bob", "new bob password") || verifies(t, path, "bob", "bcrypt-password") {
		t.Error("the new password is not in force")
	}
}

func TestUserErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.txt")
	userIO(t, "alice-password\n", false)
	if code, _, stderr := runUser(t, "user", "add", "--creds", path, cheapParams, "alice"); code != 0 {
		t.Fatal(stderr)
	}
	before, _ := os.ReadFile(path)

	pw2 := filepath.Join(t.TempDir(), "pw2")
	os.WriteFile(pw2, []byte("password\n\n"), 0o600)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)

	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  []string
	}{
		{"exists", "other-password\n", []string{"add", "alice"}, 1,
			[]string{"securechat: error: user alice already exists in " + path, "hint: 'securechat user passwd alice'"}},
		{"bad name", "other-password\n", []string{"add", "Alice"}, 2,
			[]string{`user name "Alice" has characters outside [a-z0-9_.-]{1,32}`, "securechat: hint: user names match [a-z0-9_.-]{1,32}"}},
		{"long name", "other-password\n", []string{"add", strings.Repeat("a", 33)}, 2,
			[]string{"longer than 32 characters", "hint: user names match"}},
		{"colon in name", "other-password\n", []string{"add", "eve:x"}, 2, []string{"has characters outside"}},
		{"no name", "", []string{"add"}, 2, []string{"add wants exactly one NAME argument"}},
		{"two names", "", []string{"del", "a", "b"}, 2, []string{"del wants exactly one NAME argument"}},
		{"list args", "", []string{"list", "x"}, 2, []string{"list takes no arguments"}},
		{"password flag", "", []string{"add", "--password", "hunter2hunter2", "bob"}, 2,
			[]string{"flag provided but not defined: -password"}},
		{"short", "1234567\n", []string{"add", "bob"}, 1,
			[]string{"password is too short (7 characters, at least 8)", "hint: passwords need at least 8 characters"}},
		{"empty line", "\n", []string{"add", "bob"}, 1, []string{"error: empty password"}},
		{"no stdin", "", []string{"add", "bob"}, 1, []string{"no password on standard input"}},
		{"two line breaks", "", []string{"add", "--password-file", pw2, "bob"}, 1, []string{"control character or line break"}},
		{"empty file", "", []string{"add", "--password-file", empty, "bob"}, 1, []string{"empty password"}},
		{"missing password file", "", []string{"add", "--password-file", pw2 + ".none", "bob"}, 1, []string{"--password-file: open"}},
		{"too long", strings.Repeat("x", 1025) + "\n", []string{"add", "bob"}, 1, []string{"password is longer than 1024 bytes"}},
		{"too long no newline", strings.Repeat("x", 1100), []string{"add", "bob"}, 1, []string{"password is longer than 1024 bytes"}},
		{"passwd unknown", "bob-password\n", []string{"passwd", "bob"}, 1,
			[]string{"no user bob in " + path, "hint: 'securechat user list' shows the accounts"}},
		{"del unknown", "", []string{"del", "bob"}, 1, []string{"no user bob in " + path}},
		{"bad params", "bob-password\n", []string{"add", "--argon2-params", "m=64,t=0,p=1", "bob"}, 2,
			[]string{"--argon2-params: parameter t must be at least 1", "hint: for example --argon2-params m=65536,t=3,p=1"}},
		{"params over ceiling", "bob-password\n", []string{"add", "--argon2-params", "m=1048576,t=1,p=1", "bob"}, 2,
			[]string{"above the ceiling of 262144 KiB"}},
		{"params syntax", "bob-password\n", []string{"add", "--argon2-params", "64,1,1", "bob"}, 2,
			[]string{"are not m=<KiB>,t=<passes>,p=<lanes>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			userIO(t, tt.stdin, false)
			args := append([]string{"user", tt.args[0], "--creds", path}, tt.args[1:]...)
			code, stdout, stderr := runUser(t, args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (%s)", code, tt.code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
			if strings.Contains(stderr, "hunter2hunter2") || strings.Contains(stderr, "bob-password") {
				t.Errorf("stderr shows the password: %q", stderr)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
				t.Error("a failed command changed the file")
			}
		})
	}
}

func TestUserMalformedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.txt")
	content := "# x\nalice:$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$cpx6VEQbwTVZvcpxNIxOVUWZ5xnAipUmAe1cg2GMG70\nbob:plain\n"
	os.WriteFile(path, []byte(content), 0o600)
	for _, args := range [][]string{{"add", "carol"}, {"del", "alice"}, {"list"}} {
		userIO(t, "carol-password\n", false)
		code, _, stderr := runUser(t, append([]string{"user", args[0], "--creds", path}, args[1:]...)...)
		if code != 1 || !strings.Contains(stderr, "securechat: error: credstore: "+path+":3: user bob: unknown hash scheme") {
			t.Errorf("%v: %d %q", args, code, stderr)
		}
	}
	if got, _ := os.ReadFile(path); string(got) != content {
		t.Error("a malformed file was rewritten")
	}
	code, _, stderr := runUser(t, "user", "list", "--creds", path+".missing")
	if code != 1 || !strings.Contains(stderr, "no such file") || !strings.Contains(stderr, "hint: create it with 'securechat user add") {
		t.Errorf("list of a missing file: %d %q", code, stderr)
	}
}

func TestUserTerminalPrompt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.txt")
	userIO(t, "stdin-is-ignored\n", true, "tty-password", "tty-password")
	if code, _, stderr := runUser(t, "user", "add", "--creds", path, cheapParams, "alice"); code != 0 {
		t.Fatalf("%d %s", code, stderr)
	}
	if !verifies(t, path, "alice", "tty-password") {
		t.Error("the prompted password is not in force")
	}

	userIO(t, "", true, "tty-password", "tty-passwore")
	code, _, stderr := runUser(t, "user", "add", "--creds", path, cheapParams, "bob")
	if code != 1 || !strings.Contains(stderr, "the passwords do not match") {
		t.Errorf("mismatch: %d %q", code, stderr)
	}
	userIO(t, "", true, "short", "short")
	code, _, stderr = runUser(t, "user", "passwd", "--creds", path, cheapParams, "alice")
	if code != 1 || !strings.Contains(stderr, "too short") {
		t.Errorf("short: %d %q", code, stderr)
	}
	// An unknown user is reported before any prompt (userIO fails the
	// test on an unexpected prompt).
	userIO(t, "", true)
	if code, _, _ := runUser(t, "user", "passwd", "--creds", path, "nobody"); code != 1 {
		t.Errorf("passwd nobody: %d", code)
	}
	if f := readCreds(t, path); len(f.Accounts()) != 1 {
		t.Errorf("%d accounts, want 1", len(f.Accounts()))
	}
}

func TestUserCredsFromEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env-creds.txt")
	t.Setenv("SECURECHAT_CREDS", path)
	userIO(t, "alice-password\n", false)
	if code, _, stderr := runUser(t, "user", "add", cheapParams, "alice"); code != 0 {
		t.Fatalf("%d %s", code, stderr)
	}
	if _, ok := readCreds(t, path).Lookup("alice"); !ok {
		t.Error("SECURECHAT_CREDS not used")
	}
	// The flag beats the environment.
	other := filepath.Join(t.TempDir(), "flag-creds.txt")
	userIO(t, "bob-password\n", false)
	if code, _, stderr := runUser(t, "user", "add", "--creds", other, cheapParams, "bob"); code != 0 {
		t.Fatalf("%d %s", code, stderr)
	}
	if _, ok := readCreds(t, other).Lookup("bob"); !ok {
		t.Error("--creds not used")
	}
}

// TestUserFixesOpenMode: the server refuses a creds file that others may
// read; the user command repairs it whenever it rewrites the file.
func TestUserFixesOpenMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.txt")
	os.WriteFile(path, []byte("# accounts\n"), 0o600)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var me *credstore.ModeError
	if _, err := credstore.Load(path, nil); !errors.As(err, &me) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load of a 0644 file: %v", err)
	}
	code, _, stderr := runUser(t, "user", "list", "--creds", path)
	if code != 0 || !strings.Contains(stderr, "warning: "+path+" may be read by group or others") {
		t.Errorf("list: %d %q", code, stderr)
	}
	userIO(t, "alice-password\n", false)
	code, _, stderr = runUser(t, "user", "add", "--creds", path, cheapParams, "alice")
	if code != 0 || !strings.Contains(stderr, "it is now mode 0600") {
		t.Errorf("add: %d %q", code, stderr)
	}
	checkMode(t, path)
	if !verifies(t, path, "alice", "alice-password") {
		t.Error("alice cannot log in")
	}
	if got, _ := os.ReadFile(path); !strings.HasPrefix(string(got), "# accounts\n") {
		t.Error("comment lost")
	}
}

const userHelperEnv = "SECURECHAT_TEST_USER_HELPER"

// TestUserHelperProcess is not a test: re-executed by the tests below, it
// runs the securechat command line given after "--".
func TestUserHelperProcess(t *testing.T) {
	if os.Getenv(userHelperEnv) != "1" {
		t.Skip("helper process for the multi-process user tests")
	}
	os.Exit(run(context.Background(), append([]string{"securechat"}, flag.Args()...), os.Stdout, os.Stderr))
}

func userProcess(t *testing.T, stdin string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestUserHelperProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), userHelperEnv+"=1")
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// TestUserAddConcurrentProcesses: several processes adding at once lose no
// entry, and of two adding the same name exactly one wins.
func TestUserAddConcurrentProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.txt")
	os.WriteFile(path, []byte("# shared\n"), 0o600)
	const procs = 6
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	exit := map[string]int{}
	for i := range procs + 2 {
		name := fmt.Sprintf("user%d", i)
		if i >= procs {
			name = "twin"
		}
		wg.Go(func() {
			var stderr bytes.Buffer
			cmd := userProcess(t, name+"-password\n", "user", "add", "--creds", path, cheapParams, name)
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			code := 0
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			exit[name] += code
			if code != 0 {
				failures = append(failures, stderr.String())
			}
		})
	}
	wg.Wait()

	f := readCreds(t, path)
	var names []string
	for _, a := range f.Accounts() {
		names = append(names, a.Name)
	}
	slices.Sort(names)
	want := []string{"twin", "user0", "user1", "user2", "user3", "user4", "user5"}
	if !slices.Equal(names, want) {
		t.Errorf("accounts %v, want %v", names, want)
	}
	if len(failures) != 1 || exit["twin"] != 1 || !strings.Contains(failures[0], "user twin already exists") {
		t.Errorf("failures %q", failures)
	}
	for i := range procs {
		name := fmt.Sprintf("user%d", i)
		if !verifies(t, path, name, name+"-password") {
			t.Errorf("%s cannot log in", name)
		}
	}
	checkMode(t, path)
	if got, _ := os.ReadFile(path); !strings.HasPrefix(string(got), "# shared\n") {
		t.Error("comment lost")
	}
}

func TestUserRole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.txt")
	userIO(t, "carol-password\n", false)
	if code, _, stderr := runUser(t, "user", "add", "--creds", path, cheapParams, "carol"); code != 0 {
		t.Fatalf("add: %d %s", code, stderr)
	}
	before := readCreds(t, path)
	code, _, stderr := runUser(t, "user", "role", "carol", "admin", "--creds", path)
	if code != 0 || !strings.Contains(stderr, "carol is now admin") || !strings.Contains(stderr, "SIGHUP") {
		t.Fatalf("role admin: %d %s", code, stderr)
	}
	a, ok := readCreds(t, path).Lookup("carol")
	if !ok || a.Role != credstore.RoleAdmin {
		t.Fatalf("carol after role admin: %+v", a)
	}
	if old, _ := before.Lookup("carol"); old.String() != strings.TrimSuffix(a.String(), ":admin") {
		t.Errorf("role changed the hash: %q -> %q", old.String(), a.String())
	}
	if !verifies(t, path, "carol", "carol-password") {
		t.Error("carol's password no longer verifies")
	}

	code, _, stderr = runUser(t, "user", "role", "--creds", path, "carol", "admin")
	if code != 0 || !strings.Contains(stderr, "already admin") {
		t.Errorf("role admin again: %d %s", code, stderr)
	}
	code, _, _ = runUser(t, "user", "role", "--creds", path, "carol", "user")
	if a, _ := readCreds(t, path).Lookup("carol"); code != 0 || a.Role != credstore.RoleUser {
		t.Errorf("role user: exit %d, role %v", code, a.Role)
	}

	for _, args := range [][]string{{"carol"}, {"carol", "root"}, {"Bad Name", "admin"}} {
		if code, _, stderr := runUser(t, append([]string{"user", "role", "--creds", path}, args...)...); code != exitUsage {
			t.Errorf("role %q: exit %d, want %d: %s", args, code, exitUsage, stderr)
		}
	}
	if code, _, stderr := runUser(t, "user", "role", "--creds", path, "nobody", "admin"); code != exitError || !strings.Contains(stderr, "nobody") {
		t.Errorf("role of a missing user: exit %d: %s", code, stderr)
	}
}
