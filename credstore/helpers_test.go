package credstore

import (
	"os"
	"path/filepath"
	"testing"
)

// writeCreds writes a creds file with mode 0600.
func writeCreds(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		tb.Fatal(err)
	}
}

func mustAccount(tb testing.TB, name string, role Role, password string, p Params) Account {
	tb.Helper()
	a, err := NewAccount(name, role, []byte(password), p)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func readText(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// findTestvectors walks up from the package directory to the first
// directory that has shared/testvectors/sub beside the repository, and
// skips the test if there is none.
func findTestvectors(tb testing.TB, sub string) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "shared", "testvectors", sub)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Skipf("skipping: shared/testvectors/%s not found beside the repository (expected at ../shared/testvectors)", sub)
		}
		dir = parent
	}
}
