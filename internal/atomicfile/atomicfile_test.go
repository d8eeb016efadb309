package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Replace(path, []byte("new\n")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "new\n" {
		t.Fatalf("content %q, %v; want \"new\\n\"", got, err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", info.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want only the replaced one", len(entries))
	}

	// A directory that cannot be written leaves the file as it was.
	missing := filepath.Join(dir, "no-such-dir", "known_hosts")
	if err := Replace(missing, []byte("x")); err == nil {
		t.Error("Replace into a missing directory succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != "new\n" {
		t.Errorf("the earlier file changed: %q", got)
	}
}
