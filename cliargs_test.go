package main

import (
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"securechat/internal/cliargs"

	"github.com/urfave/cli/v2"
)

func TestNormalizeArgs(t *testing.T) {
	app := newApp(nil, nil)
	tests := []struct {
		in, want string
	}{
		{"user add alice --admin", "user add --admin alice"},
		{"user add alice --creds c.txt --admin", "user add --creds c.txt --admin alice"},
		{"user add alice --creds=c.txt", "user add --creds=c.txt alice"},
		{"connect 127.0.0.1:7777 --user alice", "connect --user alice 127.0.0.1:7777"},
		{"connect --user alice 127.0.0.1:7777", "connect --user alice 127.0.0.1:7777"},
		{"help serve", "serve --help"},
		{"help user add", "user add --help"},
		{"help", "--help"},
		{"--version", "--version"},
		// After "--" nothing moves: a name may start with a dash there.
		{"user del -- --odd", "user del -- --odd"},
		// An undefined flag takes no value, so the argument after it
		// stays positional and the flag is reported as undefined.
		{"user del alice --bogus bob", "user del --bogus alice bob"},
	}
	for _, tt := range tests {
		got, err := cliargs.Normalize(app, append([]string{"securechat"}, strings.Fields(tt.in)...))
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		want := append([]string{"securechat"}, strings.Fields(tt.want)...)
		if !slices.Equal(got, want) {
			t.Errorf("%q: got %q, want %q", tt.in, got[1:], want[1:])
		}
	}
}

func TestUsageErrorsExit2WithSuggestion(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serv"}, `did you mean "serve"?`},
		{[]string{"hlep"}, `did you mean "help"?`},
		{[]string{"user", "ad", "bob"}, `securechat user has no command "ad"; did you mean "add"?`},
		{[]string{"bench", "fanot"}, `did you mean "fanout"?`},
		{[]string{"zzzzzzzz"}, `unknown command "zzzzzzzz" (see 'securechat --help')`},
		{[]string{"serve", "--bogus"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		code, _, stderr := runUser(t, tt.args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d (usage)", tt.args, code, exitUsage)
		}
		if !strings.Contains(stderr, tt.want) {
			t.Errorf("%q: stderr %q does not contain %q", tt.args, stderr, tt.want)
		}
		if strings.Contains(stderr, `Did you mean ""`) {
			t.Errorf("%q: empty suggestion in %q", tt.args, stderr)
		}
	}
}

func TestHelpCommand(t *testing.T) {
	code, stdout, stderr := runUser(t, "help", "serve")
	if code != exitOK || !strings.Contains(stdout, "securechat serve - ") {
		t.Fatalf("help serve: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = runUser(t, "help", "user", "add")
	if code != exitOK || !strings.Contains(stdout, "securechat user add - ") {
		t.Fatalf("help user add: exit %d, stdout %q", code, stdout)
	}
}

// The server's hint for a missing creds file suggests "user add NAME
// --creds FILE" style commands; flags after the name must work.
func TestFlagsAfterArguments(t *testing.T) {
	userIO(t, "correct horse battery\n", false)
	creds := filepath.Join(t.TempDir(), "creds.txt")
	code, _, stderr := runUser(t, "user", "add", "alice", "--admin", "--creds", creds, cheapParams)
	if code != exitOK {
		t.Fatalf("user add alice --admin --creds F: exit %d: %s", code, stderr)
	}
	f := readCreds(t, creds)
	a, ok := f.Lookup("alice")
	if !ok || a.Role.String() != "admin" {
		t.Fatalf("alice after add: %+v, %v; want an admin", a, ok)
	}
}

// TestEveryCommandRefusesAnUnknownFlagAlike: a flag mistake in any command,
// however deep (bench fanout, user key add), exits 2 with one error line,
// as at the top, not with the command's whole help.
func TestEveryCommandRefusesAnUnknownFlagAlike(t *testing.T) {
	var walk func(path []string, cmds []*cli.Command)
	checked := 0
	walk = func(path []string, cmds []*cli.Command) {
		for _, cmd := range cmds {
			p := append(append([]string(nil), path...), cmd.Name)
			walk(p, cmd.Subcommands)
			if len(cmd.Subcommands) > 0 || cmd.Action == nil {
				continue
			}
			checked++
			args := append(p, "--no-such-flag")
			code, stdout, stderr := runUser(t, args...)
			if code != exitUsage {
				t.Errorf("%q: exit %d, want %d (usage)", args, code, exitUsage)
			}
			if !strings.HasPrefix(stderr, "securechat: error: flag provided but not defined") || strings.Count(stderr, "\n") > 3 {
				t.Errorf("%q: stderr %q, want the one-line usage error", args, stderr)
			}
			if stdout != "" {
				t.Errorf("%q: printed %q on stdout", args, stdout)
			}
		}
	}
	walk(nil, newApp(io.Discard, io.Discard).Commands)
	if checked < 20 {
		t.Errorf("checked %d commands; the walk missed the tree", checked)
	}
}
