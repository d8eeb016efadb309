package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"securechat/client"
	"securechat/credstore"
	"securechat/internal/cmderr"
	"securechat/store"
)

// Replaced in tests: where a password comes from when no file is given.
var (
	userStdin        io.Reader = os.Stdin
	userStdinIsTTY             = func() bool { return term.IsTerminal(int(os.Stdin.Fd())) }
	userReadPassword           = client.ReadPassword
)

const userHelp = `Accounts live in a creds file (by default creds.txt in the state directory,
outside any source tree), one per line:

   name:$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>[:admin]

User names match ` + credstore.NamePattern + `. Passwords are at least 8 characters
(at most 1024 bytes of UTF-8, no control characters). On a terminal the password
is asked twice without echo; otherwise it is read from --password-file (one
trailing line break is removed) or as one line from standard input. It is
never taken from a command-line argument.

Bcrypt lines ($2a$, $2b$, $2y$) from other systems may be pasted in; they, and
argon2id lines weaker than the defaults, are rehashed at the next login.

The file is rewritten atomically under a lock (creds.txt.lock), keeps its
comments and line order, and is always left with mode 0600. The server refuses
to start on a creds file that group or others may read. A running server
picks up changes on SIGHUP.`

func userCommand() *cli.Command {
	passwordFileFlag := func() cli.Flag {
		return &cli.StringFlag{
			Name:  "password-file",
			Usage: "read the new password from `FILE` (one trailing line break is removed)",
		}
	}
	paramsFlag := func() cli.Flag {
		return &cli.StringFlag{
			Name: "argon2-params",
			Usage: "for tests and benchmarks only: Argon2id cost of the new hash, `PARAMS` = m=<KiB>,t=<passes>,p=<lanes> (default " +
				credstore.DefaultParams.String() + ")",
		}
	}
	cmd := &cli.Command{
		Name:            "user",
		Usage:           "manage the accounts in the creds file",
		Description:     userHelp,
		HideHelpCommand: true,
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "add an account",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					credsFlag(), stateDirFlag(),
					&cli.BoolFlag{Name: "admin", Usage: "allow the moderation commands"},
					passwordFileFlag(),
					paramsFlag(),
				},
				Action: userAdd,
			},
			{
				Name:      "passwd",
				Usage:     "set a new password for an account",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{credsFlag(), stateDirFlag(), passwordFileFlag(), paramsFlag()},
				Action:    userPasswd,
			},
			{
				Name:      "del",
				Usage:     "delete an account (and its keys)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{credsFlag(), keysFlag(), stateDirFlag()},
				Action:    userDel,
			},
			{
				Name:      "role",
				Usage:     "make an account an admin or a plain user",
				ArgsUsage: "NAME admin|user",
				Flags:     []cli.Flag{credsFlag(), stateDirFlag()},
				Action:    userRole,
			},
			{
				Name:   "list",
				Usage:  "list the accounts: names, roles and hash schemes",
				Flags:  []cli.Flag{credsFlag(), stateDirFlag()},
				Action: userList,
			},
			userKeyCommand(),
		},
	}
	// newApp gives top-level commands exit code 2 for usage errors; the
	// subcommands need the same.
	var usage func(subs []*cli.Command)
	usage = func(subs []*cli.Command) {
		for _, sub := range subs {
			sub.HideHelpCommand = true
			sub.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
				return cmderr.UsageHint(err, "")
			}
			usage(sub.Subcommands)
		}
	}
	usage(cmd.Subcommands)
	return cmd
}

// userName takes the one NAME argument and checks it.
func userName(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", usageError("%s wants exactly one NAME argument (see 'securechat user %s --help')", c.Command.Name, c.Command.Name)
	}
	name := c.Args().First()
	if err := credstore.CheckName(name); err != nil {
		return "", withCode(exitUsage, err, "user names match "+credstore.NamePattern)
	}
	return name, nil
}

// userParams returns the cost for a new hash and warns below the OWASP floor.
func userParams(c *cli.Context) (credstore.Params, error) {
	s := c.String("argon2-params")
	if s == "" {
		return credstore.DefaultParams, nil
	}
	p, err := credstore.ParseParams(s)
	if err == nil {
		err = p.Check(credstore.MaxParams)
	}
	if err != nil {
		return p, withCode(exitUsage, fmt.Errorf("--argon2-params: %v", err), "for example --argon2-params "+credstore.DefaultParams.String())
	}
	min := credstore.MinParams
	if p.Memory < min.Memory || p.Time < min.Time {
		fmt.Fprintf(c.App.ErrWriter, "securechat: warning: %s is below the OWASP minimum %s; the hash is upgraded at the next login\n", p, min)
	}
	return p, nil
}

// userLookup reads the creds file, if there is one, so that a wrong name
// is reported before the password is asked for.
func userLookup(path, name string) (credstore.Account, bool, error) {
	f, err := credstore.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return credstore.Account{}, false, nil
	}
	if err != nil {
		return credstore.Account{}, false, err
	}
	a, ok := f.Lookup(name)
	return a, ok, nil
}

func userAdd(c *cli.Context) error {
	name, err := userName(c)
	if err != nil {
		return err
	}
	params, err := userParams(c)
	if err != nil {
		return err
	}
	path, err := credsPath(c, true)
	if err != nil {
		return err
	}
	if _, exists, err := userLookup(path, name); err != nil {
		return err
	} else if exists {
		return userExistsError(path, name)
	}
	password, err := userNewPassword(c, name)
	if err != nil {
		return err
	}
	role := credstore.RoleUser
	if c.Bool("admin") {
		role = credstore.RoleAdmin
	}
	a, err := credstore.NewAccount(name, role, password, params)
	clear(password)
	if err != nil {
		return err
	}
	wasOpen := userModeTooOpen(path)
	err = credstore.Edit(path, func(f *credstore.File) error { return f.Add(a) })
	if errors.Is(err, credstore.ErrUserExists) {
		return userExistsError(path, name)
	}
	if err != nil {
		return err
	}
	userDone(c, path, wasOpen, "added %s %s (%s) to %s", role, name, a.Scheme(), path)
	return nil
}

func userPasswd(c *cli.Context) error {
	name, err := userName(c)
	if err != nil {
		return err
	}
	params, err := userParams(c)
	if err != nil {
		return err
	}
	path, err := credsPath(c, false)
	if err != nil {
		return err
	}
	if _, exists, err := userLookup(path, name); err != nil {
		return err
	} else if !exists {
		return userMissingError(path, name)
	}
	password, err := userNewPassword(c, name)
	if err != nil {
		return err
	}
	a, err := credstore.NewAccount(name, credstore.RoleUser, password, params)
	clear(password)
	if err != nil {
		return err
	}
	wasOpen := userModeTooOpen(path)
	err = credstore.Edit(path, func(f *credstore.File) error {
		cur, ok := f.Lookup(name)
		if !ok {
			return credstore.ErrNoSuchUser
		}
		a.Role = cur.Role
		return f.Replace(a)
	})
	if errors.Is(err, credstore.ErrNoSuchUser) {
		return userMissingError(path, name)
	}
	if err != nil {
		return err
	}
	userDone(c, path, wasOpen, "changed the password of %s (%s) in %s", name, a.Scheme(), path)
	return nil
}

func userDel(c *cli.Context) error {
	name, err := userName(c)
	if err != nil {
		return err
	}
	path, err := credsPath(c, false)
	if err != nil {
		return err
	}
	wasOpen := userModeTooOpen(path)
	err = credstore.Edit(path, func(f *credstore.File) error { return f.Delete(name) })
	if errors.Is(err, credstore.ErrNoSuchUser) {
		return userMissingError(path, name)
	}
	if err != nil {
		return err
	}
	userDone(c, path, wasOpen, "deleted %s from %s", name, path)
	// A deleted account keeps no way in: its keys go too.
	keys := keysPath(c, path)
	if _, err := os.Stat(keys); err == nil {
		err := credstore.EditKeys(keys, func(f *credstore.KeysFile) error {
			_, err := f.Delete(name, func(credstore.AuthorizedKey) bool { return true })
			return err
		})
		switch {
		case err == nil:
			fmt.Fprintf(c.App.ErrWriter, "securechat: removed the keys of %s from %s\n", name, keys)
		case !errors.Is(err, credstore.ErrNoSuchKey):
			return fmt.Errorf("the account is deleted but its keys are not: %w", err)
		}
	}
	return deleteStoredUser(c, name)
}

func userRole(c *cli.Context) error {
	if c.NArg() != 2 {
		return usageError("role wants NAME and admin or user (see 'securechat user role --help')")
	}
	name := c.Args().Get(0)
	if err := credstore.CheckName(name); err != nil {
		return withCode(exitUsage, err, "user names match "+credstore.NamePattern)
	}
	var role credstore.Role
	switch c.Args().Get(1) {
	case "admin":
		role = credstore.RoleAdmin
	case "user":
		role = credstore.RoleUser
	default:
		return usageError("unknown role %q: want admin or user", c.Args().Get(1))
	}
	path, err := credsPath(c, false)
	if err != nil {
		return err
	}
	wasOpen := userModeTooOpen(path)
	unchanged := false
	err = credstore.Edit(path, func(f *credstore.File) error {
		a, ok := f.Lookup(name)
		if !ok {
			return credstore.ErrNoSuchUser
		}
		if a.Role == role {
			unchanged = true
			return nil
		}
		a.Role = role
		return f.Replace(a)
	})
	if errors.Is(err, credstore.ErrNoSuchUser) {
		return userMissingError(path, name)
	}
	if err != nil {
		return err
	}
	if unchanged {
		fmt.Fprintf(c.App.ErrWriter, "securechat: %s is already %s in %s\n", name, role, path)
		return nil
	}
	userDone(c, path, wasOpen, "%s is now %s in %s", name, role, path)
	return nil
}

func userList(c *cli.Context) error {
	if c.NArg() != 0 {
		return usageError("list takes no arguments")
	}
	path, err := credsPath(c, false)
	if err != nil {
		return err
	}
	f, err := credstore.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return withCode(exitError, err, "create it with 'securechat user add NAME"+credsArg(c)+"'")
	}
	if err != nil {
		return err
	}
	if userModeTooOpen(path) {
		fmt.Fprintf(c.App.ErrWriter, "securechat: warning: %s may be read by group or others; the server refuses it (chmod 600 %s)\n", path, path)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tHASH")
	for _, a := range f.Accounts() {
		note := ""
		if a.NeedsRehash(credstore.DefaultParams) {
			note = " (upgraded at next login)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s%s\n", a.Name, a.Role, a.Scheme(), note)
	}
	return tw.Flush()
}

func userExistsError(path, name string) error {
	return withCode(exitError, fmt.Errorf("user %s already exists in %s", name, path),
		"'securechat user passwd "+name+"' sets a new password")
}

func userMissingError(path, name string) error {
	return withCode(exitError, fmt.Errorf("no user %s in %s", name, path),
		"'securechat user list' shows the accounts")
}

// userModeTooOpen reports whether the creds file exists with group or
// other permission bits; Edit will leave it at 0600.
func userModeTooOpen(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().Perm()&0o077 != 0
}

func userDone(c *cli.Context, path string, wasOpen bool, format string, args ...any) {
	w := c.App.ErrWriter
	fmt.Fprintf(w, "securechat: "+format+"\n", args...)
	if wasOpen {
		fmt.Fprintf(w, "securechat: %s was readable by group or others; it is now mode 0600\n", path)
	}
	if top := gitWorkTree(path); top != "" {
		fmt.Fprintf(w, "securechat: warning: %s is inside the git work tree %s; a creds file must never be committed (the default, without --creds, is the state directory)\n", path, top)
	}
	fmt.Fprintf(w, "securechat: a running server picks this up on SIGHUP (kill -HUP PID)\n")
}

// credsArg repeats the --creds flag for a hint, when it was given.
func credsArg(c *cli.Context) string {
	if p := c.String("creds"); p != "" {
		return " --creds " + p
	}
	return ""
}

// userNewPassword gets the new password from --password-file, the
// terminal (asked twice) or one line of standard input, and checks it.
func userNewPassword(c *cli.Context, name string) ([]byte, error) {
	var password []byte
	switch file := c.String("password-file"); {
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--password-file: %w", err)
		}
		password = credstore.TrimLineBreak(data)
	case userStdinIsTTY():
		first, err := userReadPassword(c.Context, "New password for "+name+": ")
		if err != nil {
			return nil, err
		}
		second, err := userReadPassword(c.Context, "Retype the new password: ")
		if err != nil {
			clear(first)
			return nil, err
		}
		same := bytes.Equal(first, second)
		clear(second)
		if !same {
			clear(first)
			return nil, errors.New("the passwords do not match")
		}
		password = first
	default:
		line, err := readPasswordLine(userStdin)
		if err != nil {
			return nil, err
		}
		password = line
	}
	if err := credstore.CheckPassword(password); err != nil {
		clear(password)
		return nil, withCode(exitError, err, fmt.Sprintf("passwords need at least %d characters", credstore.MinPasswordLength))
	}
	return password, nil
}

// readPasswordLine reads the first line of r without its line break.
func readPasswordLine(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(io.LimitReader(r, credstore.MaxPasswordLength+2))
	line, err := br.ReadBytes('\n')
	switch {
	case err == io.EOF && len(line) == 0:
		return nil, errors.New("no password on standard input (give one line, or use --password-file)")
	case err == io.EOF && len(line) > credstore.MaxPasswordLength:
		return nil, fmt.Errorf("password is longer than %d bytes", credstore.MaxPasswordLength)
	case err != nil && err != io.EOF:
		return nil, fmt.Errorf("reading the password: %w", err)
	}
	return credstore.TrimLineBreak(line), nil
}

// deleteStoredUser deletes what the chat database keeps of an account that
// was just deleted: its direct messages, sent and received (deleted, not
// anonymised), its queue, its rooms and read positions. Its room messages
// stay. A state directory without a database has nothing to delete.
func deleteStoredUser(c *cli.Context, name string) error {
	dir, err := stateDir(c)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, store.FileName)
	if deleted, err := store.DeleteUserFile(path, name); !deleted || err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "securechat: deleted the direct messages of %s from %s\n", name, path)
	return nil
}
