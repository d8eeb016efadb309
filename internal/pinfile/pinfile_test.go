package pinfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestScanSkipsBlanksAndComments(t *testing.T) {
	in := "# pins\n\n  a 1  \n\t# indented comment\nb 2\n"
	var got []string
	line, err := Scan(strings.NewReader(in), func(line int, text string) error {
		got = append(got, text)
		if line != 3 && line != 5 {
			t.Errorf("parse called for line %d", line)
		}
		return nil
	})
	if err != nil || line != 0 {
		t.Fatalf("Scan: line %d, %v", line, err)
	}
	if want := []string{"a 1", "b 2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("texts %q, want %q", got, want)
	}
}

func TestScanStopsAtTheFirstBadLine(t *testing.T) {
	bad := errors.New("bad")
	calls := 0
	line, err := Scan(strings.NewReader("ok\n\nbad\nok\n"), func(_ int, text string) error {
		calls++
		if text == "bad" {
			return bad
		}
		return nil
	})
	if !errors.Is(err, bad) || line != 3 || calls != 2 {
		t.Errorf("line %d, %v after %d calls; want line 3, bad, 2 calls", line, err, calls)
	}
	// A line longer than the scanner takes is an error too, numbered.
	line, err = Scan(strings.NewReader("ok\n"+strings.Repeat("x", 70000)+"\n"), func(int, string) error { return nil })
	if err == nil || line != 2 {
		t.Errorf("over-long line: line %d, %v; want an error at line 2", line, err)
	}
}

func TestCutMarker(t *testing.T) {
	for text, want := range map[string]struct {
		fields  string
		revoked bool
		err     bool
	}{
		"h:1 t k":             {"h:1 t k", false, false},
		"@revoked h:1 t k":    {"h:1 t k", true, false},
		"@revoked\t* t k":     {"* t k", true, false},
		"@cert-authority h t": {"", false, true},
		"":                    {"", false, false},
	} {
		fields, revoked, err := CutMarker(text)
		if (err != nil) != want.err || revoked != want.revoked || strings.Join(fields, " ") != want.fields {
			t.Errorf("%q: %q, %v, %v; want %q, %v, error %v", text, fields, revoked, err, want.fields, want.revoked, want.err)
		}
	}
}

func TestAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "pins")
	n, err := Append(path, func(existing []byte) (string, error) {
		if len(existing) != 0 {
			t.Errorf("a new file has %q", existing)
		}
		return "a 1", nil
	})
	if err != nil || n != 1 {
		t.Fatalf("first line: %d, %v", n, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, %v; want 0700", di.Mode().Perm(), err)
	}
	// A hand-edited file without its last newline: ours goes on a line
	// of its own, and its number counts the line break added.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("# no newline")
	f.Close()
	n, err = Append(path, func([]byte) (string, error) { return "b 2", nil })
	if err != nil || n != 3 {
		t.Errorf("after a line without newline: line %d, %v; want 3", n, err)
	}
	// Nothing to add, or an error from the decision: the file stays.
	refused := errors.New("refused")
	if n, err := Append(path, func([]byte) (string, error) { return "", nil }); n != 0 || err != nil {
		t.Errorf("nothing to add: %d, %v", n, err)
	}
	if n, err := Append(path, func([]byte) (string, error) { return "c 3", refused }); n != 0 || !errors.Is(err, refused) {
		t.Errorf("refused: %d, %v", n, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "a 1\n# no newline\nb 2\n" {
		t.Errorf("file %q", b)
	}
}

func TestRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pins")
	if _, err := Remove(path, "a"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want not exist", err)
	}
	os.WriteFile(path, []byte("a 1\n# a\n@revoked a 2\nb 3\n  a 4\r\n"), 0o644)
	got, err := Remove(path, "a")
	want := []Removed{{Line: 1, Text: "a 1"}, {Line: 5, Text: "  a 4"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("removed %v, %v; want %v", got, err, want)
	}
	if b, _ := os.ReadFile(path); string(b) != "# a\n@revoked a 2\nb 3\n" {
		t.Errorf("file %q", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	before, _ := os.Stat(path)
	if got, err := Remove(path, "zz"); got != nil || err != nil {
		t.Errorf("no match: %v, %v", got, err)
	}
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Error("the file was rewritten although nothing matched")
	}
}

// TestAppendDuringRemove: appends made while removals rewrite the file
// are all there at the end.
func TestAppendDuringRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pins")
	const n = 40
	var wg sync.WaitGroup
	wg.Go(func() {
		for range n {
			if _, err := Append(path, func([]byte) (string, error) { return "gone 0", nil }); err != nil {
				t.Error(err)
				return
			}
			if _, err := Remove(path, "gone"); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := range n {
		wg.Go(func() {
			if _, err := Append(path, func([]byte) (string, error) { return "kept " + strings.Repeat("x", i), nil }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	b, _ := os.ReadFile(path)
	if got := strings.Count(string(b), "kept "); got != n {
		t.Errorf("%d of %d appended lines left; the others were lost to a removal", got, n)
	}
	if strings.Contains(string(b), "gone") {
		t.Error("a removed line is still there")
	}
}
