package main

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"securechat/chat"
	"securechat/client"
	"securechat/client/identity"
	"securechat/client/tui"
	"securechat/handshake"
	"securechat/internal/cliflags"
	"securechat/msgsig"
	"securechat/transport"
)

func connectCommand() *cli.Command {
	return &cli.Command{
		Name:      "connect",
		Usage:     "chat on a securechat server",
		ArgsUsage: "HOST:PORT[,HOST:PORT...]",
		Description: `Connects, checks the server's host key against known_hosts, logs in and
joins #general (or --room). On a terminal it is an interactive client with
history, Tab completion of nicks and commands, and reconnects on its own.
With standard input not a terminal it is a script client: each line is sent
to the current room (lines starting with / are commands), every event is
printed as one line (or one JSON object with --json), and at the end of
input it waits until the server has acknowledged every message, then closes
cleanly. A line that cannot be sent (too long, a bad command) is refused
with an error naming its line number; the lines after it are still sent and
the exit code is 1. PROTOCOL.md §17 specifies this output. Script mode
never prompts.

Several comma-separated addresses name the nodes of one server: they are
tried in order, the next one when an address cannot be reached, and after
a lost connection the client starts with a random other address and tries
the lost one last.
A key known for one of them is trusted for all; an address with another
key is refused as a changed key (exit 4), and a failed login is not
retried at the next address.

Exit codes: 0 clean end, 1 error, 2 usage, 3 authentication failed,
4 the server could not be authenticated (host key, signature or FINISHED;
never retried), 5 connection lost or refused, 130 Ctrl-C at the host key
question or at Password:.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "transport", Value: "tcp", Usage: "transport: " + strings.Join(transport.Names(), "|"), EnvVars: []string{"SECURECHAT_TRANSPORT"}},
			&cli.StringFlag{Name: "user", Usage: "account `NAME` (default: the local user name)", EnvVars: []string{"SECURECHAT_USER"}},
			&cli.StringFlag{Name: "password-file", Usage: "read the password from `FILE` (one trailing newline is removed); $SECURECHAT_PASSWORD also works", EnvVars: []string{"SECURECHAT_PASSWORD_FILE"}},
			&cli.StringFlag{Name: "identity", Usage: "log in with this Ed25519 key `FILE` (OpenSSH format) only, or none: no key; default: the keys of ssh-agent, then ~/.ssh/id_ed25519 and the key of keygen --user, then the password", EnvVars: []string{"SECURECHAT_IDENTITY"}},
			&cli.StringFlag{Name: "passphrase-file", Usage: "read the passphrase of the --identity key from `FILE` (one trailing newline is removed); on a terminal it is asked", EnvVars: []string{"SECURECHAT_PASSPHRASE_FILE"}},
			cliflags.KnownHosts(),
			&cli.StringFlag{Name: "host-key-check", Value: "ask", Usage: "unknown host keys: ask|accept-new|strict (script mode never asks)", EnvVars: []string{"SECURECHAT_HOST_KEY_CHECK"}},
			&cli.StringFlag{Name: "known-users", Usage: "known users `FILE`, pinning users' signing keys (default: known_users beside the known hosts file; the highest counters seen are kept in counters there too)", EnvVars: []string{"SECURECHAT_KNOWN_USERS"}},
			&cli.StringFlag{Name: "user-key-check", Value: "accept-new", Usage: "signing keys of users not yet in known users: accept-new|strict|ask (ask: the interactive client asks above its prompt; script mode never asks: ask means strict)", EnvVars: []string{"SECURECHAT_USER_KEY_CHECK"}},
			&cli.StringFlag{Name: "fingerprint", Usage: "expect this host key, `SHA256:...`, and trust it without asking", EnvVars: []string{"SECURECHAT_FINGERPRINT"}},
			&cli.StringFlag{Name: "room", Usage: "room to join instead of #general", EnvVars: []string{"SECURECHAT_ROOM"}},
			&cli.BoolFlag{Name: "json", Usage: "script mode: print one JSON object per event", EnvVars: []string{"SECURECHAT_JSON"}},
			&cli.StringFlag{Name: "kex", Usage: "key exchange groups to offer, comma-separated (default: mlkem768x25519,x25519)", EnvVars: []string{"SECURECHAT_KEX"}},
			&cli.BoolFlag{Name: "no-reconnect", Usage: "exit with code 5 when the connection is lost instead of reconnecting", EnvVars: []string{"SECURECHAT_NO_RECONNECT"}},
			&cli.BoolFlag{Name: "no-color", Usage: "no colours (so does a non-empty $NO_COLOR)", EnvVars: []string{"SECURECHAT_NO_COLOR"}},
			&cli.BoolFlag{Name: "no-timestamps", Usage: "no HH:MM before each line", EnvVars: []string{"SECURECHAT_NO_TIMESTAMPS"}},
			&cli.BoolFlag{Name: "no-bell", Usage: "no terminal bell on mentions", EnvVars: []string{"SECURECHAT_NO_BELL"}},
		},
		Action: runConnect,
	}
}

func runConnect(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("connect needs exactly one HOST:PORT argument (several addresses: HOST:PORT,HOST:PORT)")
	}
	addrs, err := client.ParseAddrs(c.Args().First())
	if err != nil {
		return usageError("%v", err)
	}
	tr, err := transport.Lookup(c.String("transport"))
	if err != nil {
		return usageError("--transport %q: want one of %s", c.String("transport"), strings.Join(transport.Names(), ", "))
	}
	groups, err := cliflags.ParseGroups(c.String("kex"))
	if err != nil {
		return err
	}
	name, err := accountName(c.String("user"))
	if err != nil {
		return err
	}
	policy, err := handshake.ParseHostKeyPolicy(c.String("host-key-check"))
	if err != nil {
		return usageError("--host-key-check: %v", err)
	}
	userKeyPolicy, err := msgsig.ParsePolicy(c.String("user-key-check"))
	if err != nil {
		return usageError("--user-key-check: %v", err)
	}
	var rooms []string
	if r := c.String("room"); r != "" {
		if !strings.HasPrefix(r, "#") {
			r = "#" + r
		}
		if !chat.ValidRoom(r) {
			return usageError("--room %q is not a valid room name", c.String("room"))
		}
		rooms = []string{r}
	}
	interactive := cliflags.IsTerminal(os.Stdin) && !c.Bool("json")

	keys, err := identity.LoginKeys(c.String("identity"), identity.Passphrase{File: c.String("passphrase-file"), Interactive: interactive}, c.App.ErrWriter)
	if err != nil {
		return err
	}
	var pw func(int) ([]byte, error)
	if len(keys) == 0 || interactive || c.String("password-file") != "" || os.Getenv("SECURECHAT_PASSWORD") != "" {
		// Without a terminal or a password file, keys alone may do.
		if pw, err = client.PasswordSource(c.Context, c.String("password-file"), interactive); err != nil {
			return err
		}
	}
	khFile, err := cliflags.KnownHostsPath(c.String("known-hosts"))
	if err != nil {
		return err
	}
	var ask func(hostport, fingerprint string) (bool, error)
	if interactive {
		ask = client.AskOnTTY(c.Context)
	} else if policy == handshake.PolicyAsk {
		// Script mode never prompts: an unknown key is a verification
		// failure unless accept-new or --fingerprint says otherwise.
		policy = handshake.PolicyStrict
	}
	if userKeyPolicy == msgsig.PolicyAsk && !interactive {
		// Script mode never prompts, as for host keys (OpenSSH's
		// BatchMode): a key not pinned fails.
		userKeyPolicy = msgsig.PolicyStrict
	}
	knownUsers := c.String("known-users")
	if knownUsers == "" {
		knownUsers = filepath.Join(filepath.Dir(khFile), "known_users")
	}
	trustFor, err := client.KnownHostsGroupTrust(khFile, addrs, policy, c.String("fingerprint"), ask, c.App.ErrWriter)
	if err != nil {
		return usageError("%v", err)
	}

	cfg := &client.Config{
		Addr: addrs[0], Addrs: addrs, Transport: tr, User: name, Groups: groups, TrustFor: trustFor,
		Password: pw, Keys: keys, Rooms: rooms, Reconnect: !c.Bool("no-reconnect"),
		ClientName: "securechat " + moduleVersion(),
		KnownUsers: knownUsers, Counters: filepath.Join(filepath.Dir(knownUsers), "counters"), UserKeyPolicy: userKeyPolicy,
	}
	if interactive {
		return client.RunInteractive(c.Context, cfg, tui.Options{
			Self:         name,
			NoColor:      c.Bool("no-color"),
			NoTimestamps: c.Bool("no-timestamps"),
			NoBell:       c.Bool("no-bell"),
		})
	}
	return client.RunScript(c.Context, cfg, os.Stdin, c.App.Writer, c.App.ErrWriter, c.Bool("json"))
}

// accountName picks the login name: --user, or the local user name if it
// is a valid account name.
func accountName(flag string) (string, error) {
	if flag != "" {
		if !chat.ValidUser(flag) {
			return "", usageError("--user %q: names are 1 to 32 characters from a-z, 0-9, _ . -", flag)
		}
		return flag, nil
	}
	u, err := user.Current()
	if err != nil || !chat.ValidUser(strings.ToLower(u.Username)) {
		return "", usageError("cannot use the local user name as an account name; give --user NAME")
	}
	return strings.ToLower(u.Username), nil
}
