//go:build !urfave_cli_no_docs

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"securechat/internal/clidoc"
)

// TestGeneratedDocsUpToDate regenerates the man page and the completion
// scripts and compares them with the checked-in files, so that a changed
// flag or command cannot leave them stale.
func TestGeneratedDocsUpToDate(t *testing.T) {
	// In a process of its own: commands run by other tests in this one
	// leave traces in the shared definitions (urfave/cli adds --help to a
	// command's flags when it runs, and stores values read from the
	// environment in them), which would show in the generated files.
	out := t.TempDir()
	if b, err := userProcess(t, "", "docs", "--out", out).CombinedOutput(); err != nil {
		t.Fatalf("docs: %v\n%s", err, b)
	}
	for _, g := range clidoc.Files(completionFiles) {
		fresh, err := os.ReadFile(filepath.Join(out, g.Path))
		if err != nil {
			t.Fatal(err)
		}
		checkedIn, err := os.ReadFile(g.Path)
		if err != nil {
			t.Fatal(err)
		}
		if string(fresh) != string(checkedIn) {
			t.Errorf("%s is stale: run 'go run . docs' and commit the result", g.Path)
		}
	}
}

// TestCompletionCommand: the scripts printed are the checked-in ones.
func TestCompletionCommand(t *testing.T) {
	for shell, path := range completionFiles {
		code, stdout, stderr := runUser(t, "completion", shell)
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 || stdout != string(want) {
			t.Errorf("completion %s: exit %d, %d bytes (want %s, %d bytes): %s", shell, code, len(stdout), path, len(want), stderr)
		}
	}
	code, _, stderr := runUser(t, "completion", "tcsh")
	if code != exitUsage || !strings.Contains(stderr, `no completion for "tcsh"`) {
		t.Errorf("completion tcsh: exit %d, %q", code, stderr)
	}
	// The hidden docs command is not offered.
	_, stdout, _ := runUser(t, "completion", "bash")
	_, rest, ok := strings.Cut(stdout, "\t\"\") echo \"")
	top, _, _ := strings.Cut(rest, "\"")
	if !ok || !slices.Contains(strings.Fields(top), "serve") || slices.Contains(strings.Fields(top), "docs") {
		t.Errorf("top-level commands offered by the bash completion: %q; want serve and not the hidden docs", top)
	}
}

// TestBashCompletion runs the bash script's completion function on typed
// command lines.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash on this system: the bash completion script was not run")
	}
	cases := []struct {
		line string // what was typed; the last word is completed
		want string // COMPREPLY, space-separated
	}{
		{"securechat se", "serve"},
		{"securechat user ", "add passwd del role list key"},
		{"securechat user key ", "add del list"},
		{"securechat user add --ad", "--admin"},
		{"securechat serve --check --li", "--listen"},
		// --creds takes a value, which is not mistaken for a command.
		{"securechat user --help add --cr", "--creds"},
		{"securechat --version co", "completion connect"},
		{"securechat serve --listen user --tr", "--transport"},
	}
	for _, tc := range cases {
		words := strings.Split(tc.line, " ")
		script := "source contrib/completion/securechat.bash\n" +
			"COMP_WORDS=(" + quoteWords(words) + ")\n" +
			"COMP_CWORD=" + itoa(len(words)-1) + "\n" +
			"_securechat\necho \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.line, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("%q: completions %q, want %q", tc.line, got, tc.want)
		}
	}
}

func quoteWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + w + "'"
	}
	return strings.Join(q, " ")
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestCompletionScriptsParse checks the zsh and fish scripts' syntax where
// those shells are installed (CI installs them).
func TestCompletionScriptsParse(t *testing.T) {
	for _, sh := range []struct{ shell, path string }{
		{"bash", completionFiles["bash"]},
		{"zsh", completionFiles["zsh"]},
		{"fish", completionFiles["fish"]},
	} {
		bin, err := exec.LookPath(sh.shell)
		if err != nil {
			t.Logf("no %s here: %s was not syntax-checked", sh.shell, sh.path)
			continue
		}
		if out, err := exec.Command(bin, "-n", sh.path).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", sh.shell, sh.path, err, out)
		}
	}
}

// TestFishCompletion asks fish itself, where it is installed.
func TestFishCompletion(t *testing.T) {
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Skip("no fish on this system: the fish completion script was not run")
	}
	out, err := exec.Command(fish, "--no-config", "-c",
		"source "+completionFiles["fish"]+"; complete -C 'securechat us'; complete -C 'securechat serve --chec'").CombinedOutput()
	if err != nil {
		t.Fatalf("fish: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "user\t") || !strings.Contains(string(out), "--check\t") {
		t.Errorf("fish completes 'securechat us' and 'serve --chec' as:\n%s", out)
	}
}
