// Command securechat is a secure chat server and terminal client.
//
// The binary is a thin shell over the packages: transport (byte streams),
// handshake and cipher (the secure channel), credstore (accounts) and chat
// (rooms), client (the terminal client), bench (the load tool), and below
// internal/ what the commands do: serve, accounts, hostkeys. Each command
// has its own cmd_*.go file; the larger command trees are built in
// command-line packages (bench/benchcmd, internal/usercmd,
// internal/keyscmd) over those, with the flags they share in
// internal/cliflags. This file lists the commands, runs the app and maps
// errors to exit codes, in one place: packages mark usage mistakes and
// hints with cmderr and never pick a code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"securechat/chat"
	"securechat/client"
	"securechat/internal/cliargs"
	"securechat/internal/cmderr"
)

// Exit codes, documented in README.md.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitAuthFailed  = 3
	exitHostKey     = 4
	exitConnectLost = 5
	// exitInterrupted is the shell's code for a command ended by SIGINT
	// (128+2): Ctrl-C at a prompt ends the client with it, as ssh does.
	exitInterrupted = 130
)

// commands lists the subcommands, in the order --help shows them. Each
// has its own cmd_*.go file.
func commands() []*cli.Command {
	return append([]*cli.Command{
		benchCommand(),
		completionCommand(),
		connectCommand(),
		fingerprintCommand(),
		keygenCommand(),
		knownHostsCommand(),
		knownUsersCommand(),
		serveCommand(),
		userCommand(),
	}, docsCommands()...)
}

// usageError reports a usage mistake; it exits 2.
func usageError(format string, args ...any) error {
	return cmderr.Usagef(format, args...)
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                 "securechat",
		Usage:                "a secure chat server and terminal client",
		Version:              versionString(),
		Commands:             commands(),
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		Suggest:              true,
		HideHelpCommand:      true,
		// Errors are printed once, by run, in the house style.
		ExitErrHandler: func(*cli.Context, error) {},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageError("unknown command %q (see 'securechat --help')", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return cmderr.UsageHint(err, "")
		},
	}
	usageErrorsEverywhere(app.Commands)
	return app
}

// usageErrorsEverywhere gives every command, at any depth, what the app
// has: exit code 2 and one line for a flag mistake, and no help
// subcommand (--help is there).
func usageErrorsEverywhere(cmds []*cli.Command) {
	for _, cmd := range cmds {
		cmd.HideHelpCommand = true
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
				return cmderr.UsageHint(err, "")
			}
		}
		usageErrorsEverywhere(cmd.Subcommands)
	}
}

// run executes the app and returns the process exit code. Messages follow
// one rule: lower case, no trailing period, "securechat: error: " first.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	args, err := cliargs.Normalize(app, args)
	if err == nil {
		err = app.RunContext(ctx, args)
	}
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	// Error texts can carry what a server sent; whatever path they took,
	// nothing reaches the terminal that could drive it.
	if code == exitInterrupted {
		// The user asked to stop; as in ssh, nothing more to say.
		return code
	}
	if msg := chat.SanitizeMultiline(err.Error()); msg != "" {
		fmt.Fprintf(stderr, "securechat: error: %s\n", msg)
	}
	if hint := errorHint(err); hint != "" {
		fmt.Fprintf(stderr, "securechat: hint: %s\n", hint)
	}
	return code
}

// exitCode is the one place where errors become exit codes: a usage error
// or an error with a code of its own keeps it, the client's kinds of
// failure get theirs, and anything else is 1.
func exitCode(err error) int {
	var ec cli.ExitCoder
	switch {
	case err == nil:
		return exitOK
	case cmderr.IsUsage(err):
		return exitUsage
	case errors.Is(err, client.ErrInterrupted):
		return exitInterrupted
	case errors.Is(err, client.ErrServerNotAuthenticated):
		return exitHostKey
	case errors.Is(err, client.ErrAuthFailed):
		return exitAuthFailed
	case errors.Is(err, client.ErrConnectionLost):
		return exitConnectLost
	case errors.As(err, &ec):
		return ec.ExitCode()
	}
	return exitError
}

// errorHint is the hint line attached to err, if any.
func errorHint(err error) string {
	if hint := cmderr.Hint(err); hint != "" {
		return hint
	}
	return client.Hint(err)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
