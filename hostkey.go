package main

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"securechat/handshake"
)

func init() { commands = append(commands, keygenCommand(), fingerprintCommand()) }

// hostKeyFile is the host key's name inside the state directory.
const hostKeyFile = "host_ed25519_key"

func hostKeyPath(c *cli.Context) (string, error) {
	dir, err := stateDir(c)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, hostKeyFile), nil
}

func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "create the server's host key (serve also does on first start)",
		Description: `Creates an Ed25519 host key in the state directory (mode 0600, never
overwriting one that exists) and prints its fingerprint, to publish to users
before they first connect.`,
		Flags: []cli.Flag{stateDirFlag()},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageError("keygen takes no arguments")
			}
			path, err := hostKeyPath(c)
			if err != nil {
				return err
			}
			key, created, err := handshake.LoadOrCreateHostKey(path)
			if err != nil {
				return err
			}
			if !created {
				return withCode(exitError, fmt.Errorf("%s already exists; refusing to overwrite it", path),
					"securechat fingerprint prints the fingerprint of the existing key")
			}
			fmt.Fprintf(c.App.ErrWriter, "securechat: wrote host key to %s\n", path)
			fmt.Fprintln(c.App.Writer, handshake.Fingerprint(key.Public().(ed25519.PublicKey)))
			return nil
		},
	}
}

func fingerprintCommand() *cli.Command {
	return &cli.Command{
		Name:        "fingerprint",
		Usage:       "print the server's host key fingerprint",
		Description: `Prints SHA256:... for the host key in the state directory, the value clients see on first contact and can pin with --fingerprint.`,
		Flags:       []cli.Flag{stateDirFlag()},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageError("fingerprint takes no arguments")
			}
			path, err := hostKeyPath(c)
			if err != nil {
				return err
			}
			key, created, err := handshake.LoadOrCreateHostKey(path)
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(c.App.ErrWriter, "securechat: there was no host key; created %s\n", path)
			}
			fmt.Fprintln(c.App.Writer, handshake.Fingerprint(key.Public().(ed25519.PublicKey)))
			return nil
		},
	}
}
