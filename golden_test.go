package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The golden files in testdata pin the text that people and scripts rely
// on. After a deliberate change, rewrite them with
//
//	go test . -run TestGolden -update
//
// and review the diff.
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output; if the change is meant, run with -update.\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

// versionRE matches the build description in the top-level help, which
// changes with every build.
var versionRE = regexp.MustCompile(`(?m)^VERSION:\n   .*$`)

// TestGoldenHelp pins --help of every command and subcommand.
func TestGoldenHelp(t *testing.T) {
	cmds := [][]string{{}}
	for _, c := range commands() {
		cmds = append(cmds, []string{c.Name})
		for _, sub := range c.Subcommands {
			cmds = append(cmds, []string{c.Name, sub.Name})
		}
	}
	for _, c := range cmds {
		name := strings.Join(append([]string{"securechat"}, c...), "-")
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append(append([]string{"securechat"}, c...), "--help")
			if code := run(context.Background(), args, &out, &errOut); code != exitOK {
				t.Fatalf("%v: exit code %d: %s", args, code, errOut.String())
			}
			got := versionRE.ReplaceAll(out.Bytes(), []byte("VERSION:\n   (build description)"))
			checkGolden(t, filepath.Join("testdata", "help", name+".golden"), got)
		})
	}
}

// TestGoldenExitCodes pins the exit code table of README.md and checks
// that the codes main.go gives are the ones it lists.
func TestGoldenExitCodes(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "### Exit codes\n")
	if !ok {
		t.Fatal("README.md has no exit code section")
	}
	var table []string
	for _, l := range strings.Split(after, "\n") {
		if strings.HasPrefix(l, "|") {
			table = append(table, l)
		} else if len(table) > 0 {
			break
		}
	}
	got := strings.Join(table, "\n") + "\n"
	checkGolden(t, filepath.Join("testdata", "exit-codes.golden"), []byte(got))
	for _, code := range []int{exitOK, exitError, exitUsage, exitAuthFailed, exitHostKey, exitConnectLost, exitInterrupted} {
		if !strings.Contains(got, "| "+strconv.Itoa(code)+" |") {
			t.Errorf("exit code %d is not in README.md's table", code)
		}
	}
}
