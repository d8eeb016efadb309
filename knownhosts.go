package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"securechat/client/tui"
	"securechat/handshake"
)

func init() { commands = append(commands, knownHostsCommand()) }

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

func knownHostsCommand() *cli.Command {
	cmd := &cli.Command{
		Name:  "known-hosts",
		Usage: "manage the client's known_hosts file",
		Description: `The client's known_hosts file holds one line per trusted host key:

   HOST:PORT securechat-ed25519 BASE64KEY

and may mark keys that must never be trusted again, for one server or for all
("*"), whatever other lines say:

   @revoked HOST:PORT securechat-ed25519 BASE64KEY
   @revoked * securechat-ed25519 BASE64KEY

A server presenting a revoked key is refused with exit code 4.`,
		Subcommands: []*cli.Command{
			{
				Name:      "remove",
				Usage:     "remove every key of HOST:PORT (as ssh-keygen -R does)",
				ArgsUsage: "HOST:PORT",
				Description: `Removes every line for HOST:PORT from known_hosts and prints each one. Comments,
other hosts and @revoked lines are kept (a revocation is undone only by editing
the file). The file is replaced atomically and keeps mode 0600. Exits 1 if no
line lists HOST:PORT.`,
				Flags:  []cli.Flag{knownHostsFlag()},
				Action: knownHostsRemove,
			},
		},
	}
	for _, sub := range cmd.Subcommands {
		sub.HideHelpCommand = true
		sub.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
			return &codedError{code: exitUsage, err: err}
		}
	}
	return cmd
}

func knownHostsRemove(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("known-hosts remove wants exactly one HOST:PORT argument")
	}
	hostport := c.Args().First()
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return usageError("%q is not HOST:PORT (IPv6 addresses go in brackets: [::1]:7777)", hostport)
	}
	file, err := knownHostsPath(c.String("known-hosts"))
	if err != nil {
		return err
	}
	removed, err := handshake.RemoveKnownHost(file, hostport)
	if errors.Is(err, fs.ErrNotExist) {
		return withCode(exitError, fmt.Errorf("%s does not exist", file), "")
	}
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		return withCode(exitError, fmt.Errorf("%s is not in %s", hostport, file), "")
	}
	for _, r := range removed {
		fmt.Fprintf(c.App.Writer, "removed %s:%d: %s\n", file, r.Line, tui.Sanitize(strings.TrimSpace(r.Text)))
	}
	return nil
}
