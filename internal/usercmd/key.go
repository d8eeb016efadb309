package usercmd

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"securechat/internal/accounts"
	"securechat/internal/cliflags"
	"securechat/internal/cmderr"
)

const userKeyHelp = `Keys for key logins live in an authorized keys file beside the creds file
(creds.keys for creds.txt; --keys names another), one per line:

   name ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA... comment

'add' takes the public key as OpenSSH writes it (a line of ~/.ssh/id_ed25519.pub
or of 'securechat keygen --user'): as arguments after NAME, from --file, or
as one line on standard input. Only Ed25519 keys are accepted. An account may
have keys, a password, or both; a name with keys and no line in the creds file
is an account that logs in by key only. 'del' takes the key's fingerprint
(SHA256:..., as 'list' and ssh-keygen -l show it) or the key itself, or --all.

The file is rewritten atomically under a lock, keeps its comments and line
order, and is left with mode 0600; the server refuses it when group or others
may write it. A running server picks up changes on SIGHUP, and ends the
sessions of an account that lost a key.`

func userKeyCommand() *cli.Command {
	flags := func(extra ...cli.Flag) []cli.Flag {
		return append([]cli.Flag{cliflags.Creds(), cliflags.Keys(), cliflags.StateDir()}, extra...)
	}
	return &cli.Command{
		Name:        "key",
		Usage:       "manage the Ed25519 keys an account may log in with",
		Description: userKeyHelp,
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "authorize a public key for an account",
				ArgsUsage: "NAME [ssh-ed25519 BASE64 [comment]]",
				Flags:     flags(&cli.StringFlag{Name: "file", Usage: "read the public key from `FILE` (such as ~/.ssh/id_ed25519.pub)"}),
				Action:    userKeyAdd,
			},
			{
				Name:      "del",
				Usage:     "remove a key, or all keys, of an account",
				ArgsUsage: "NAME SHA256:FINGERPRINT|KEY",
				Flags:     flags(&cli.BoolFlag{Name: "all", Usage: "remove every key of the account"}),
				Action:    userKeyDel,
			},
			{
				Name:      "list",
				Usage:     "list the keys of an account (of every account without NAME)",
				ArgsUsage: "[NAME]",
				Flags:     flags(),
				Action:    userKeyList,
			},
		},
	}
}

// userKeyName takes the NAME argument of a key subcommand and checks it.
func userKeyName(c *cli.Context) (string, error) {
	if c.NArg() < 1 {
		return "", cmderr.Usagef("%s wants a NAME (see 'securechat user key %s --help')", c.Command.Name, c.Command.Name)
	}
	name := c.Args().First()
	return name, accounts.CheckName(name)
}

func userKeyAdd(c *cli.Context) error {
	name, err := userKeyName(c)
	if err != nil {
		return err
	}
	var line string
	switch {
	case c.NArg() > 1 && c.String("file") != "":
		return cmderr.Usagef("give the key as arguments or with --file, not both")
	case c.NArg() > 1:
		line = strings.Join(c.Args().Slice()[1:], " ")
	case c.String("file") != "":
		if line, err = accounts.ReadKeyFile(c.String("file")); err != nil {
			return err
		}
	default:
		if StdinIsTTY() {
			fmt.Fprintln(c.App.ErrWriter, "securechat: paste the public key (ssh-ed25519 AAAA...), then Enter:")
		}
		sc := bufio.NewScanner(Stdin)
		if !sc.Scan() {
			return cmderr.Usagef("no public key given (arguments, --file or standard input)")
		}
		line = sc.Text()
	}
	files, err := userFiles(c, false)
	if err != nil {
		return err
	}
	return files.AddKey(name, line)
}

func userKeyDel(c *cli.Context) error {
	name, err := userKeyName(c)
	if err != nil {
		return err
	}
	match, err := accounts.KeyMatch(name, c.Bool("all"), c.Args().Slice()[1:])
	if err != nil {
		return err
	}
	files, err := userFiles(c, false)
	if err != nil {
		return err
	}
	return files.DeleteKeys(name, match)
}

func userKeyList(c *cli.Context) error {
	name := ""
	if c.NArg() > 1 {
		return cmderr.Usagef("list takes at most one NAME")
	}
	if c.NArg() == 1 {
		var err error
		if name, err = userKeyName(c); err != nil {
			return err
		}
	}
	files, err := userFiles(c, false)
	if err != nil {
		return err
	}
	return files.ListKeys(name)
}
