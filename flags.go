package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"securechat/credstore"
	"securechat/handshake"
)

// Flags shared by several commands, and the paths they resolve to.

// credsFileName is the accounts file's name inside the state directory.
const credsFileName = "creds.txt"

func stateDirFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "state-dir",
		Usage:   "`DIR` of the host key and the accounts (default: $XDG_STATE_HOME/securechat or ~/.local/state/securechat)",
		EnvVars: []string{"SECURECHAT_STATE_DIR"},
	}
}

// credsFlag has no default value: an empty --creds means creds.txt in the
// state directory, outside any source tree, so that a real accounts file
// does not land in a repository by accident (the creds.txt at the top of
// the repository is an annotated template).
func credsFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "creds",
		Usage:   "accounts `FILE` (default: " + credsFileName + " in the state directory)",
		EnvVars: []string{"SECURECHAT_CREDS"},
	}
}

// stateDir returns --state-dir or the default state directory.
func stateDir(c *cli.Context) (string, error) {
	if dir := c.String("state-dir"); dir != "" {
		return dir, nil
	}
	return defaultStateDir()
}

// credsPath returns --creds, or creds.txt in the state directory. With
// create, the state directory is made (mode 0700) when it is missing.
func credsPath(c *cli.Context, create bool) (string, error) {
	if p := c.String("creds"); p != "" {
		return p, nil
	}
	dir, err := stateDir(c)
	if err != nil {
		return "", err
	}
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("state directory: %w", err)
		}
	}
	return filepath.Join(dir, credsFileName), nil
}

// keysFlag names the authorized keys file; empty means the default beside
// the creds file (credstore.KeysPath).
func keysFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "keys",
		Usage:   "authorized keys `FILE` for key logins (default: the creds file's name with .keys, such as creds.keys)",
		EnvVars: []string{"SECURECHAT_KEYS"},
	}
}

// keysPath returns --keys, or the keys file beside credsFile.
func keysPath(c *cli.Context, credsFile string) string {
	if p := c.String("keys"); p != "" {
		return p
	}
	return credstore.KeysPath(credsFile)
}

// knownHostsFlag is connect's --known-hosts, shared so that both commands
// name the same file by default.
func knownHostsFlag() cli.Flag {
	return &cli.StringFlag{Name: "known-hosts", Usage: "known hosts `FILE` (default: <user config dir>/securechat/known_hosts)", EnvVars: []string{"SECURECHAT_KNOWN_HOSTS"}}
}

// knownHostsPath is the file --known-hosts names, or the default one.
func knownHostsPath(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory for known_hosts: %w (use --known-hosts)", err)
	}
	return filepath.Join(dir, "securechat", "known_hosts"), nil
}

// defaultStateDir follows the XDG base directory rule for state.
func defaultStateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "securechat"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: %w (set --state-dir)", err)
	}
	return filepath.Join(home, ".local", "state", "securechat"), nil
}

// parseGroups reads --kex: key exchange group names, comma-separated; empty
// means the default list.
func parseGroups(s string) ([]handshake.Group, error) {
	gs, err := handshake.ParseGroups(s)
	if err != nil {
		return nil, usageError("--kex: %v", err)
	}
	return gs, nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
