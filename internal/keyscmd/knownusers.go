package keyscmd

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"securechat/chat"
	"securechat/client/tui"
	"securechat/internal/cliflags"
	"securechat/internal/cmderr"
	"securechat/msgsig"
)

// KnownUsers is 'known-users': the users' signing keys the client pinned.
func KnownUsers() *cli.Command {
	cmd := &cli.Command{
		Name:  "known-users",
		Usage: "manage the client's known_users file (users' pinned signing keys)",
		Description: `The client's known_users file pins each user's signing key, per server, in
OpenSSH's public key form (as in a .pub file):

   NAME@HOST:PORT ssh-ed25519 BASE64KEY [comment]

and may mark keys that never verify, for one user or for all ("*"):

   @revoked NAME@HOST:PORT ssh-ed25519 BASE64KEY
   @revoked * ssh-ed25519 BASE64KEY

It lives beside known_hosts unless connect's --known-users names another.`,
		Subcommands: []*cli.Command{
			{
				Name:      "remove",
				Usage:     "forget every key pinned for NAME@HOST:PORT (what /forget NAME does in the client)",
				ArgsUsage: "NAME@HOST:PORT",
				Description: `Removes every line pinning a key for NAME@HOST:PORT and prints each one, so
that the next message NAME signs pins its key anew: the way to accept a key
that really changed. Comments, other users and @revoked lines are kept (a
revocation is undone only by editing the file). The file is replaced
atomically and keeps mode 0600. Exits 1 if no line pins a key for the user.`,
				Flags: []cli.Flag{cliflags.KnownHosts(),
					&cli.StringFlag{Name: "known-users", Usage: "known users `FILE` (default: known_users beside the known hosts file)", EnvVars: []string{"SECURECHAT_KNOWN_USERS"}}},
				Action: knownUsersRemove,
			},
		},
	}
	return cmd
}

func knownUsersRemove(c *cli.Context) error {
	if c.NArg() != 1 {
		return cmderr.Usagef("known-users remove wants exactly one NAME@HOST:PORT argument")
	}
	who := c.Args().First()
	name, hostport, _ := strings.Cut(who, "@")
	host, port, err := net.SplitHostPort(hostport)
	if !chat.ValidUser(name) || err != nil || host == "" || port == "" {
		return cmderr.Usagef("%q is not NAME@HOST:PORT, as in known_users (alice@chat.example.org:7000; IPv6 in brackets: alice@[::1]:7777)", who)
	}
	file := c.String("known-users")
	if file == "" {
		kh, err := cliflags.KnownHostsPath(c.String("known-hosts"))
		if err != nil {
			return err
		}
		file = filepath.Join(filepath.Dir(kh), "known_users")
	}
	removed, err := msgsig.RemoveKnownUser(file, who)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist", file)
	}
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		return fmt.Errorf("%s has no pinned key in %s", who, file)
	}
	for _, r := range removed {
		fmt.Fprintf(c.App.Writer, "removed %s:%d: %s\n", file, r.Line, tui.Sanitize(strings.TrimSpace(r.Text)))
	}
	return nil
}
