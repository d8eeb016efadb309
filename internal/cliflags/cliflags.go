// Package cliflags holds the flags several securechat commands share and
// the paths they resolve to.
//
// Command line only: it defines flags and reads them from a *cli.Context,
// marks bad flag values as usage errors with cmderr, and never decides an
// exit code. Only the command-line packages import it.
package cliflags

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"securechat/credstore"
	"securechat/handshake"
	"securechat/internal/cmderr"
)

// CredsFileName is the accounts file's name inside the state directory.
const CredsFileName = "creds.txt"

// StateDir is --state-dir: where the host key and the accounts live.
func StateDir() cli.Flag {
	return &cli.StringFlag{
		Name:    "state-dir",
		Usage:   "`DIR` of the host key and the accounts (default: $XDG_STATE_HOME/securechat or ~/.local/state/securechat)",
		EnvVars: []string{"SECURECHAT_STATE_DIR"},
	}
}

// Creds is --creds. It has no default value: an empty --creds means
// creds.txt in the state directory, outside any source tree, so that a real
// accounts file does not land in a repository by accident (the creds.txt at
// the top of the repository is an annotated template).
func Creds() cli.Flag {
	return &cli.StringFlag{
		Name:    "creds",
		Usage:   "accounts `FILE` (default: " + CredsFileName + " in the state directory)",
		EnvVars: []string{"SECURECHAT_CREDS"},
	}
}

// StateDirPath returns --state-dir or the default state directory.
func StateDirPath(c *cli.Context) (string, error) {
	if dir := c.String("state-dir"); dir != "" {
		return dir, nil
	}
	return DefaultStateDir()
}

// CredsPath returns --creds, or creds.txt in the state directory. With
// create, the state directory is made (mode 0700) when it is missing.
func CredsPath(c *cli.Context, create bool) (string, error) {
	if p := c.String("creds"); p != "" {
		return p, nil
	}
	dir, err := StateDirPath(c)
	if err != nil {
		return "", err
	}
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("state directory: %w", err)
		}
	}
	return filepath.Join(dir, CredsFileName), nil
}

// Keys is --keys, the authorized keys file; empty means the default beside
// the creds file (credstore.KeysPath).
func Keys() cli.Flag {
	return &cli.StringFlag{
		Name:    "keys",
		Usage:   "authorized keys `FILE` for key logins (default: the creds file's name with .keys, such as creds.keys)",
		EnvVars: []string{"SECURECHAT_KEYS"},
	}
}

// KeysPath returns --keys, or the keys file beside credsFile.
func KeysPath(c *cli.Context, credsFile string) string {
	if p := c.String("keys"); p != "" {
		return p
	}
	return credstore.KeysPath(credsFile)
}

// KnownHosts is connect's --known-hosts, shared so that every command that
// reads it names the same file by default.
func KnownHosts() cli.Flag {
	return &cli.StringFlag{Name: "known-hosts", Usage: "known hosts `FILE` (default: <user config dir>/securechat/known_hosts)", EnvVars: []string{"SECURECHAT_KNOWN_HOSTS"}}
}

// KnownHostsPath is the file --known-hosts names, or the default one.
func KnownHostsPath(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory for known_hosts: %w (use --known-hosts)", err)
	}
	return filepath.Join(dir, "securechat", "known_hosts"), nil
}

// DefaultStateDir follows the XDG base directory rule for state.
func DefaultStateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "securechat"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: %w (set --state-dir)", err)
	}
	return filepath.Join(home, ".local", "state", "securechat"), nil
}

// ParseGroups reads --kex: key exchange group names, comma-separated; empty
// means the default list. A bad name is a usage error.
func ParseGroups(s string) ([]handshake.Group, error) {
	gs, err := handshake.ParseGroups(s)
	if err != nil {
		return nil, cmderr.Usagef("--kex: %v", err)
	}
	return gs, nil
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// CredsArg repeats the --creds flag for a hint, when it was given.
func CredsArg(c *cli.Context) string {
	if p := c.String("creds"); p != "" {
		return " --creds " + p
	}
	return ""
}
