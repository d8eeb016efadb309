package usercmd

import (
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"securechat/client"
	"securechat/credstore"
	"securechat/internal/accounts"
	"securechat/internal/cliflags"
	"securechat/internal/cmderr"
)

// Where a new password or public key comes from when no file is given:
// standard input, read without echo on a terminal. Tests replace them.
var (
	Stdin        io.Reader = os.Stdin
	StdinIsTTY             = func() bool { return cliflags.IsTerminal(os.Stdin) }
	ReadPassword           = client.ReadPassword
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

// Command is 'user' and its subcommands, key included.
func Command() *cli.Command {
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
					cliflags.Creds(), cliflags.StateDir(),
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
				Flags:     []cli.Flag{cliflags.Creds(), cliflags.StateDir(), passwordFileFlag(), paramsFlag()},
				Action:    userPasswd,
			},
			{
				Name:      "del",
				Usage:     "delete an account (and its keys)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{cliflags.Creds(), cliflags.Keys(), cliflags.StateDir()},
				Action:    userDel,
			},
			{
				Name:      "role",
				Usage:     "make an account an admin or a plain user",
				ArgsUsage: "NAME admin|user",
				Flags:     []cli.Flag{cliflags.Creds(), cliflags.StateDir()},
				Action:    userRole,
			},
			{
				Name:   "list",
				Usage:  "list the accounts: names, roles and hash schemes",
				Flags:  []cli.Flag{cliflags.Creds(), cliflags.StateDir()},
				Action: userList,
			},
			userKeyCommand(),
		},
	}
	return cmd
}

// userName takes the one NAME argument and checks it.
func userName(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", cmderr.Usagef("%s wants exactly one NAME argument (see 'securechat user %s --help')", c.Command.Name, c.Command.Name)
	}
	name := c.Args().First()
	return name, accounts.CheckName(name)
}

// userFiles are the files a user command works on; create makes the state
// directory for a new creds file.
func userFiles(c *cli.Context, create bool) (accounts.Files, error) {
	creds, err := cliflags.CredsPath(c, create)
	if err != nil {
		return accounts.Files{}, err
	}
	return accounts.Files{
		Creds: creds, Keys: cliflags.KeysPath(c, creds), StateDir: func() (string, error) { return cliflags.StateDirPath(c) },
		CredsArg: cliflags.CredsArg(c), Stdout: c.App.Writer, Stderr: c.App.ErrWriter,
	}, nil
}

// userNewPassword gets the new password from --password-file, the
// terminal (asked twice) or one line of standard input, and checks it.
func userNewPassword(c *cli.Context, name string) func() ([]byte, error) {
	return func() ([]byte, error) {
		src := accounts.PasswordSource{File: c.String("password-file"), Stdin: Stdin, IsTTY: StdinIsTTY(), ReadPassword: ReadPassword}
		return src.NewPassword(c.Context, name)
	}
}

func userAdd(c *cli.Context) error { return userSetPassword(c, true) }

func userPasswd(c *cli.Context) error { return userSetPassword(c, false) }

// userSetPassword is user add (a new account) and user passwd.
func userSetPassword(c *cli.Context, add bool) error {
	name, err := userName(c)
	if err != nil {
		return err
	}
	params, err := accounts.Params(c.String("argon2-params"), c.App.ErrWriter)
	if err != nil {
		return err
	}
	files, err := userFiles(c, add)
	if err != nil {
		return err
	}
	if !add {
		return files.Passwd(name, params, userNewPassword(c, name))
	}
	role := credstore.RoleUser
	if c.Bool("admin") {
		role = credstore.RoleAdmin
	}
	return files.Add(name, role, params, userNewPassword(c, name))
}

func userDel(c *cli.Context) error {
	name, err := userName(c)
	if err != nil {
		return err
	}
	files, err := userFiles(c, false)
	if err != nil {
		return err
	}
	return files.Delete(name)
}

func userRole(c *cli.Context) error {
	if c.NArg() != 2 {
		return cmderr.Usagef("role wants NAME and admin or user (see 'securechat user role --help')")
	}
	name := c.Args().Get(0)
	if err := accounts.CheckName(name); err != nil {
		return err
	}
	var role credstore.Role
	switch c.Args().Get(1) {
	case "admin":
		role = credstore.RoleAdmin
	case "user":
		role = credstore.RoleUser
	default:
		return cmderr.Usagef("unknown role %q: want admin or user", c.Args().Get(1))
	}
	files, err := userFiles(c, false)
	if err != nil {
		return err
	}
	return files.SetRole(name, role)
}

func userList(c *cli.Context) error {
	if c.NArg() != 0 {
		return cmderr.Usagef("list takes no arguments")
	}
	files, err := userFiles(c, false)
	if err != nil {
		return err
	}
	return files.List()
}
