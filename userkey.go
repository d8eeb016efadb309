package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"securechat/credstore"
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
		return append([]cli.Flag{credsFlag(), keysFlag(), stateDirFlag()}, extra...)
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

// userKeysFile resolves the keys file from --keys or --creds.
func userKeysFile(c *cli.Context) (string, error) {
	creds, err := credsPath(c, false)
	if err != nil {
		return "", err
	}
	return keysPath(c, creds), nil
}

func userKeyName(c *cli.Context) (string, error) {
	if c.NArg() < 1 {
		return "", usageError("%s wants a NAME (see 'securechat user key %s --help')", c.Command.Name, c.Command.Name)
	}
	name := c.Args().First()
	if err := credstore.CheckName(name); err != nil {
		return "", withCode(exitUsage, err, "user names match "+credstore.NamePattern)
	}
	return name, nil
}

func userKeyAdd(c *cli.Context) error {
	name, err := userKeyName(c)
	if err != nil {
		return err
	}
	var line string
	switch {
	case c.NArg() > 1 && c.String("file") != "":
		return usageError("give the key as arguments or with --file, not both")
	case c.NArg() > 1:
		line = strings.Join(c.Args().Slice()[1:], " ")
	case c.String("file") != "":
		b, err := os.ReadFile(c.String("file"))
		if err != nil {
			return withCode(exitError, err, "")
		}
		line = string(b)
		if strings.Count(strings.TrimSpace(line), "\n") > 0 {
			return withCode(exitError, fmt.Errorf("%s has more than one line", c.String("file")), "add one key at a time")
		}
	default:
		if userStdinIsTTY() {
			fmt.Fprintln(c.App.ErrWriter, "securechat: paste the public key (ssh-ed25519 AAAA...), then Enter:")
		}
		sc := bufio.NewScanner(userStdin)
		if !sc.Scan() {
			return usageError("no public key given (arguments, --file or standard input)")
		}
		line = sc.Text()
	}
	if strings.Contains(line, "PRIVATE KEY") {
		return withCode(exitError, errors.New("that is a private key"), "give the public key: the .pub file beside it")
	}
	k, err := credstore.ParseAuthorizedKey(name, line)
	if err != nil {
		return withCode(exitError, fmt.Errorf("public key: %w", err), "give one line of an OpenSSH .pub file, such as ~/.ssh/id_ed25519.pub")
	}
	path, err := userKeysFile(c)
	if err != nil {
		return err
	}
	err = credstore.EditKeys(path, func(f *credstore.KeysFile) error { return f.Add(k) })
	if errors.Is(err, credstore.ErrKeyExists) {
		return withCode(exitError, fmt.Errorf("key %s is already authorized for %s in %s", k.Fingerprint(), name, path), "")
	}
	if err != nil {
		return err
	}
	userKeyDone(c, "authorized key %s for %s in %s", k.Fingerprint(), name, path)
	if creds, err := credsPath(c, false); err == nil {
		if _, ok, err := userLookup(creds, name); err == nil && !ok {
			fmt.Fprintf(c.App.ErrWriter, "securechat: %s has no password in %s: a key-only account\n", name, creds)
		}
	}
	return nil
}

func userKeyDel(c *cli.Context) error {
	name, err := userKeyName(c)
	if err != nil {
		return err
	}
	var match func(credstore.AuthorizedKey) bool
	switch {
	case c.Bool("all") && c.NArg() == 1:
		match = func(credstore.AuthorizedKey) bool { return true }
	case c.Bool("all") || c.NArg() < 2:
		return usageError("del wants NAME and a key or its SHA256:... fingerprint, or --all NAME")
	case c.NArg() == 2 && strings.HasPrefix(c.Args().Get(1), "SHA256:"):
		fp := c.Args().Get(1)
		match = func(k credstore.AuthorizedKey) bool { return k.Fingerprint() == fp }
	default:
		want, err := credstore.ParseAuthorizedKey(name, strings.Join(c.Args().Slice()[1:], " "))
		if err != nil {
			return withCode(exitUsage, fmt.Errorf("public key: %w", err), "give the key's SHA256:... fingerprint ('securechat user key list "+name+"')")
		}
		match = func(k credstore.AuthorizedKey) bool { return k.Key.Equal(want.Key) }
	}
	path, err := userKeysFile(c)
	if err != nil {
		return err
	}
	var gone []credstore.AuthorizedKey
	err = credstore.EditKeys(path, func(f *credstore.KeysFile) error {
		var err error
		gone, err = f.Delete(name, match)
		return err
	})
	if errors.Is(err, credstore.ErrNoSuchKey) {
		return withCode(exitError, fmt.Errorf("no such key for %s in %s", name, path), "'securechat user key list "+name+"' shows the keys")
	}
	if err != nil {
		return err
	}
	for _, k := range gone {
		userKeyDone(c, "removed key %s of %s from %s", k.Fingerprint(), name, path)
	}
	return nil
}

func userKeyList(c *cli.Context) error {
	name := ""
	if c.NArg() > 1 {
		return usageError("list takes at most one NAME")
	}
	if c.NArg() == 1 {
		var err error
		if name, err = userKeyName(c); err != nil {
			return err
		}
	}
	path, err := userKeysFile(c)
	if err != nil {
		return err
	}
	f, err := credstore.ReadKeysFile(path)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFINGERPRINT\tCOMMENT")
	for _, k := range f.Keys(name) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.User, k.Fingerprint(), k.Comment)
	}
	return tw.Flush()
}

func userKeyDone(c *cli.Context, format string, args ...any) {
	fmt.Fprintf(c.App.ErrWriter, "securechat: "+format+"\n", args...)
	fmt.Fprintf(c.App.ErrWriter, "securechat: a running server picks this up on SIGHUP (kill -HUP PID)\n")
}
