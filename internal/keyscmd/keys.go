package keyscmd

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"securechat/client/identity"
	"securechat/handshake"
	"securechat/internal/cliflags"
	"securechat/internal/cmderr"
	"securechat/internal/hostkeys"
)

// hostKey is the server's host key in the state directory.
func hostKey(c *cli.Context) (hostkeys.Server, error) {
	dir, err := cliflags.StateDirPath(c)
	if err != nil {
		return hostkeys.Server{}, err
	}
	return hostkeys.Server{Path: filepath.Join(dir, handshake.HostKeyFile), Stdout: c.App.Writer, Stderr: c.App.ErrWriter}, nil
}

// Keygen is 'keygen': host keys, their rotation, and user keys.
func Keygen() *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "create the server's host key, or rotate it with --next and --promote; --user makes a user key",
		Description: `Creates an Ed25519 host key in the state directory (mode 0600, never
overwriting one that exists) and prints its fingerprint, to publish to users
before they first connect.

Rotation, in two steps:
  keygen --next     creates host_ed25519_key.next beside the current key. A
                    running server picks it up on SIGHUP (or at restart) and
                    from then on proves it to every client that logs in;
                    clients that trust the current key record the next one.
  keygen --promote  makes the next key current, keeping the replaced one as
                    host_ed25519_key.old for a rollback. The server switches
                    on SIGHUP or restart. Clients that connected since the
                    announcement see no warning; others see a changed key.

With --user it makes a key for logging in instead of a password: an Ed25519
key in OpenSSH format (ssh and ssh-agent take it too) at --out, by default
<user config dir>/securechat/id_ed25519, which connect tries by default, and
the public key in FILE.pub, to give to the server's operator for
'securechat user key add NAME'.`,
		Flags: []cli.Flag{cliflags.StateDir(),
			&cli.BoolFlag{Name: "next", Usage: "create the next host key for a rotation"},
			&cli.BoolFlag{Name: "promote", Usage: "make the next host key current (the old one is kept as .old)"},
			&cli.BoolFlag{Name: "user", Usage: "create a user key for key logins instead (OpenSSH format, with FILE.pub beside it)"},
			&cli.StringFlag{Name: "out", Usage: "with --user: write the key to `FILE` (default: <user config dir>/securechat/id_ed25519)"},
			&cli.StringFlag{Name: "passphrase-file", Usage: "with --user: encrypt the key with the passphrase in `FILE` (on a terminal it is asked; empty: none)"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cmderr.Usagef("keygen takes no arguments")
			}
			key, err := hostKey(c)
			if err != nil {
				return err
			}
			if c.Bool("user") {
				if c.Bool("next") || c.Bool("promote") {
					return cmderr.Usagef("--user makes a user key; --next and --promote are for host keys")
				}
				return keygenUser(c)
			}
			switch {
			case c.Bool("next") && c.Bool("promote"):
				return cmderr.Usagef("--next and --promote are two steps; give one")
			case c.Bool("next"):
				return key.Next()
			case c.Bool("promote"):
				return key.Promote()
			}
			return key.Create()
		},
	}
}

// Fingerprint is 'fingerprint': the host key's, or the next one's.
func Fingerprint() *cli.Command {
	return &cli.Command{
		Name:        "fingerprint",
		Usage:       "print the server's host key fingerprint",
		Description: `Prints SHA256:... for the host key in the state directory, the value clients see on first contact and can pin with --fingerprint. With --next, that of the next key of a rotation.`,
		Flags: []cli.Flag{cliflags.StateDir(),
			&cli.BoolFlag{Name: "next", Usage: "the next host key's (keygen --next), which must exist"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cmderr.Usagef("fingerprint takes no arguments")
			}
			key, err := hostKey(c)
			if err != nil {
				return err
			}
			return key.Fingerprint(c.Bool("next"))
		},
	}
}

// KnownHosts is 'known-hosts': the client's pinned host keys.
func KnownHosts() *cli.Command {
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
				Flags:  []cli.Flag{cliflags.KnownHosts()},
				Action: knownHostsRemove,
			},
		},
	}
	return cmd
}

func knownHostsRemove(c *cli.Context) error {
	if c.NArg() != 1 {
		return cmderr.Usagef("known-hosts remove wants exactly one HOST:PORT argument")
	}
	file, err := cliflags.KnownHostsPath(c.String("known-hosts"))
	if err != nil {
		return err
	}
	return hostkeys.RemoveKnownHost(file, c.Args().First(), c.App.Writer)
}

// keygenUser is keygen --user: a new key to log in with.
func keygenUser(c *cli.Context) error {
	path := c.String("out")
	if path == "" {
		var err error
		if path, err = identity.DefaultFile(); err != nil {
			return err
		}
	}
	line, err := identity.Generate(path, func() ([]byte, error) {
		return identity.NewPassphrase(c.String("passphrase-file"), cliflags.IsTerminal(os.Stdin))
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "securechat: wrote user key to %s and its public key to %s.pub\n", path, path)
	fmt.Fprintf(c.App.ErrWriter, "securechat: the server's operator authorizes it with 'securechat user key add NAME --file %s.pub'\n", path)
	fmt.Fprint(c.App.Writer, line)
	return nil
}
