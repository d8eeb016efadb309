package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// envOnlyOnCommandLine are flags with no variable on purpose: a stray
// SECURECHAT_CHECK=1 in a service's environment file would turn every start
// into a check that exits at once.
var envOnlyOnCommandLine = []string{"check", "help"}

// TestEveryFlagHasEnvVar: every serve and connect flag can be set from the
// environment (a systemd EnvironmentFile, a container), as
// SECURECHAT_<FLAG>, and --help shows the variable.
func TestEveryFlagHasEnvVar(t *testing.T) {
	for _, cmd := range []*cli.Command{serveCommand(), connectCommand()} {
		code, help, stderr := runUser(t, cmd.Name, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d: %s", cmd.Name, code, stderr)
		}
		for _, f := range cmd.Flags {
			name := f.Names()[0]
			if slices.Contains(envOnlyOnCommandLine, name) {
				continue
			}
			want := "SECURECHAT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
			var got []string
			if ev, ok := f.(interface{ GetEnvVars() []string }); ok {
				got = ev.GetEnvVars()
			}
			if !slices.Equal(got, []string{want}) {
				t.Errorf("%s --%s: environment variables %q, want [%s]", cmd.Name, name, got, want)
			}
			if !strings.Contains(help, "[$"+want+"]") {
				t.Errorf("%s --help does not show $%s", cmd.Name, want)
			}
		}
	}
}

func TestServeFlagsFromEnv(t *testing.T) {
	// A flag set only in the environment reaches serve --check, which
	// validates it like the command line. (A fresh command: urfave/cli
	// stores a value read from the environment in the flag definition
	// itself, which would leak into the other tests of this binary.)
	w := newCheckWorld(t)
	t.Setenv("SECURECHAT_LOGIN_GRACE_TIME", "-1s")
	var out, errOut strings.Builder
	app := &cli.App{Name: "securechat", Commands: []*cli.Command{serveCommand()}, Writer: &out, ErrWriter: &errOut}
	err := app.Run(append([]string{"securechat"}, w.args()...))
	if err == nil || !strings.Contains(err.Error(), "--login-grace-time -1s: must not be negative") {
		t.Errorf("SECURECHAT_LOGIN_GRACE_TIME=-1s: error %v", err)
	}
}
