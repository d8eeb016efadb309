package credstore

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestEditPreservesOtherLines(t *testing.T) {
	alice := mustAccount(t, "alice", RoleUser, "alice-password", testParams)
	bob := mustAccount(t, "bob", RoleAdmin, "bob-password", testParams)
	carol := mustAccount(t, "carol", RoleUser, "carol-password", testParams)
	path := filepath.Join(t.TempDir(), "creds.txt")
	// No final line break: edits add one and change nothing else.
	writeCreds(t, path, "# head\n"+alice.String()+"\n\n  # mid\n"+bob.String()+"\n"+carol.String())

	bob2 := mustAccount(t, "bob", RoleAdmin, "bob-password-2", testParams)
	dave := mustAccount(t, "dave", RoleUser, "dave-password", testParams)
	err := Edit(path, func(f *File) error {
		if err := f.Replace(bob2); err != nil {
			return err
		}
		if err := f.Delete("alice"); err != nil {
			return err
		}
		if err := f.Add(dave); err != nil {
			return err
		}
		// The index must follow the deletion.
		if a, ok := f.Lookup("carol"); !ok || a.String() != carol.String() {
			t.Errorf("Lookup(carol) after Delete = %v, %v", a, ok)
		}
		return f.Replace(carol)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "# head\n\n  # mid\n" + bob2.String() + "\n" + carol.String() + "\n" + dave.String() + "\n"
	if got := readText(t, path); got != want {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
	}
}

func TestEditErrors(t *testing.T) {
	alice := mustAccount(t, "alice", RoleUser, "alice-password", testParams)
	path := filepath.Join(t.TempDir(), "creds.txt")
	content := "# x\n" + alice.String() + "\n"
	writeCreds(t, path, content)

	err := Edit(path, func(f *File) error { return f.Add(alice) })
	if !errors.Is(err, ErrUserExists) || err.Error() != "credstore: user already exists: alice" {
		t.Errorf("Add existing: %v", err)
	}
	err = Edit(path, func(f *File) error { return f.Delete("bob") })
	if !errors.Is(err, ErrNoSuchUser) || err.Error() != "credstore: no such user: bob" {
		t.Errorf("Delete missing: %v", err)
	}
	err = Edit(path, func(f *File) error { return f.Replace(mustAccount(t, "bob", RoleUser, "x", testParams)) })
	if !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Replace missing: %v", err)
	}
	if err := Edit(path, func(f *File) error { return f.Add(Account{Name: "zed"}) }); err == nil {
		t.Error("Add of an account without hash succeeded")
	}
	if got := readText(t, path); got != content {
		t.Errorf("failed edits changed the file: %q", got)
	}

	broken := content + "bad line\n"
	writeCreds(t, path, broken)
	called := false
	err = Edit(path, func(f *File) error { called = true; return nil })
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 3 || called {
		t.Errorf("Edit of a malformed file: %v (fn called %v)", err, called)
	}
	if readText(t, path) != broken {
		t.Error("Edit rewrote a malformed file")
	}
}

func TestEditCreatesAndFixesMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "creds.txt")
	alice := mustAccount(t, "alice", RoleUser, "alice-password", testParams)
	if err := Edit(path, func(f *File) error { return f.Add(alice) }); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("new file: %v %v", info.Mode(), err)
	}
	if got := readText(t, path); got != alice.String()+"\n" {
		t.Errorf("new file %q", got)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	bob := mustAccount(t, "bob", RoleUser, "bob-password", testParams)
	if err := Edit(path, func(f *File) error { return f.Add(bob) }); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("rewritten 0644 file has mode %v", info.Mode())
	}
	if info, err := os.Stat(path + ".lock"); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v", err)
	}
	if _, err := Load(path, nil); err != nil {
		t.Errorf("Load after the rewrite: %v", err)
	}
}

func TestEditThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real", "creds.txt")
	if err := os.Mkdir(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	writeCreds(t, target, "# real\n")
	link := filepath.Join(dir, "creds.txt")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	alice := mustAccount(t, "alice", RoleUser, "alice-password", testParams)
	if err := Edit(link, func(f *File) error { return f.Add(alice) }); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symbolic link was replaced: %v", err)
	}
	if got := readText(t, target); got != "# real\n"+alice.String()+"\n" {
		t.Errorf("target %q", got)
	}

	dangling := filepath.Join(dir, "dangling.txt")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	if err := Edit(dangling, func(f *File) error { return f.Add(alice) }); err == nil || !strings.Contains(err.Error(), "dangling") {
		t.Errorf("dangling link: %v", err)
	}
}

// TestEditConcurrent: writers in parallel (each with its own lock file
// descriptor, as separate processes would have) lose no entry.
func TestEditConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.txt")
	writeCreds(t, path, "# shared\n")
	const writers = 8
	var wg sync.WaitGroup
	for i := range writers {
		a := mustAccount(t, fmt.Sprintf("user%d", i), RoleUser, "password", testParams)
		wg.Go(func() {
			if err := Edit(path, func(f *File) error { return f.Add(a) }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range f.Accounts() {
		names = append(names, a.Name)
	}
	slices.Sort(names)
	if len(names) != writers || !strings.HasPrefix(readText(t, path), "# shared\n") {
		t.Errorf("accounts %v", names)
	}
}

// killHelperEnv names the file the helper process rewrites in a loop.
const killHelperEnv = "CREDSTORE_TEST_KILL_HELPER"

// TestKillHelper is not a test: run by TestKillDuringWrite as a child
// process, it toggles alice's role forever and reports each step of each
// write, so that the parent can aim its kills at every step.
func TestKillHelper(t *testing.T) {
	path := os.Getenv(killHelperEnv)
	if path == "" {
		t.Skip("helper process for TestKillDuringWrite")
	}
	testHookWritePhase = func(phase string) { fmt.Println(phase) }
	for {
		err := Edit(path, func(f *File) error {
			a, ok := f.Lookup("alice")
			if !ok {
				return errors.New("alice is missing")
			}
			a.Role = 1 - a.Role
			return f.Replace(a)
		})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ok")
	}
}

// TestKillDuringWrite kills a writer with SIGKILL at random moments; the
// file must always parse and be exactly the old or the new version.
func TestKillDuringWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the kill loop in -short mode")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "creds.txt")
	var b strings.Builder
	b.WriteString("# kill test\n")
	for i := range 200 {
		a := mustAccount(t, fmt.Sprintf("user%03d", i), RoleUser, "password", testParams)
		b.WriteString(a.String() + "\n")
		if i == 100 {
			b.WriteString(mustAccount(t, "alice", RoleUser, "password", testParams).String() + "\n")
		}
	}
	stateA := b.String()
	writeCreds(t, path, stateA)
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := f.Lookup("alice")
	aliceAdmin := alice
	aliceAdmin.Role = RoleAdmin
	stateB := strings.Replace(stateA, alice.String()+"\n", aliceAdmin.String()+"\n", 1)

	const iterations = 30
	var midWrite int
	for i := range iterations {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), killHelperEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Five lines per write: created, written, synced, renamed, ok.
		lines := bufio.NewScanner(out)
		for range 1 + rand.IntN(15) {
			if !lines.Scan() || strings.HasPrefix(lines.Text(), "error") {
				t.Fatalf("iteration %d: helper said %q", i, lines.Text())
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for lines.Scan() {
		}
		cmd.Wait()

		got := readText(t, path)
		if got != stateA && got != stateB {
			t.Fatalf("iteration %d: file is neither the old nor the new version (%d bytes)", i, len(got))
		}
		if _, err := ReadFile(path); err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("iteration %d: mode %v %v", i, info.Mode(), err)
		}
		if stale, _ := filepath.Glob(filepath.Join(dir, tempPattern(path))); len(stale) > 0 {
			midWrite++
		}
	}
	t.Logf("%d of %d kills left a temporary file behind", midWrite, iterations)

	// The next writer cleans up after the killed ones.
	if err := Edit(path, func(f *File) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if stale, _ := filepath.Glob(filepath.Join(dir, tempPattern(path))); len(stale) > 0 {
		t.Errorf("stale temporary files left: %v", stale)
	}
}

func TestTrimLineBreak(t *testing.T) {
	for in, want := range map[string]string{
		"pw\n": "pw", "pw\r\n": "pw", "pw": "pw", "pw\n\n": "pw\n", " pw \n": " pw ", "\n": "", "pw\r": "pw\r",
	} {
		if got := string(TrimLineBreak([]byte(in))); got != want {
			t.Errorf("TrimLineBreak(%q) = %q, want %q", in, got, want)
		}
	}
}
