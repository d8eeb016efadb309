package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRequirementsMapNamesRealTests keeps PROTOCOL.md §16 honest: every
// test it cites as evidence for a requirement must exist.
func TestRequirementsMapNamesRealTests(t *testing.T) {
	spec, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(spec), "## 16. Requirements map")
	if i < 0 {
		t.Fatal("PROTOCOL.md has no requirements map")
	}
	cited := regexp.MustCompile("`([a-z]+)\\.(Test[A-Za-z0-9]+)`").FindAllStringSubmatch(string(spec[i:]), -1)
	if len(cited) < 40 {
		t.Fatalf("only %d tests cited in the requirements map", len(cited))
	}
	for _, req := range []string{"RL-1 ", "RL-13 ", "HS-1 ", "HS-12 "} {
		if !strings.Contains(string(spec[i:]), "| "+req) {
			t.Errorf("requirements map lacks %s", req)
		}
	}
	defined := map[string]bool{}
	for _, m := range cited {
		pkg, name := m[1], m[2]
		key := pkg + "." + name
		if _, seen := defined[key]; seen {
			continue
		}
		dir := pkg
		if pkg == "securechat" { // the command's own tests, at the module root
			dir = "."
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
		found := false
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "\nfunc "+name+"(t *testing.T)") {
				found = true
				break
			}
		}
		defined[key] = found
		if !found {
			t.Errorf("PROTOCOL.md §16 cites %s, which does not exist", key)
		}
	}
}
