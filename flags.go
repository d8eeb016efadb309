package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"securechat/credstore"
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

// gitWorkTree returns the top of the git work tree that holds path, or ""
// when there is none.
func gitWorkTree(path string) string {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
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
