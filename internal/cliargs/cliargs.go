// Package cliargs rewrites a securechat command line into the form
// urfave/cli parses, so that arguments read the way git and ssh users
// expect.
//
// Its one rule: the rewrite never changes what an argument means. Flags
// move in front of the positional arguments of their own command, help
// requests become --help, and nothing after "--" moves.
package cliargs

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"securechat/internal/cmderr"
)

// Normalize rewrites a command line into the form urfave/cli parses,
// so that securechat reads arguments the way git and ssh users expect:
//
//   - flags may follow positional arguments ("user add alice --admin"):
//     urfave/cli stops at the first positional argument, so the flags of
//     the command that was reached are moved in front of its arguments;
//   - "help COMMAND [SUBCOMMAND]" becomes "COMMAND [SUBCOMMAND] --help";
//   - an unknown command or subcommand is a usage error that names the
//     closest known one, instead of urfave's help-topic error.
//
// Everything after a "--" is left as it is, in place.
func Normalize(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	out := []string{args[0]}
	rest := args[1:]

	// Global flags (only --help and --version) stand before the command.
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") && rest[0] != "--" {
		out = append(out, rest[0])
		rest = rest[1:]
	}
	if len(rest) == 0 || rest[0] == "--" {
		return append(out, rest...), nil
	}

	wantHelp := false
	if rest[0] == "help" {
		wantHelp = true
		rest = rest[1:]
		if len(rest) == 0 {
			return append(out, "--help"), nil
		}
	}

	cmds := app.Commands
	var cmd *cli.Command
	var path []string
	for len(rest) > 0 && len(cmds) > 0 {
		name := rest[0]
		if strings.HasPrefix(name, "-") {
			break
		}
		next := findCommand(cmds, name)
		if next == nil {
			return nil, unknownCommandError(path, name, cmds)
		}
		cmd = next
		path = append(path, cmd.Name)
		out = append(out, name)
		rest = rest[1:]
		cmds = visibleCommands(cmd.Subcommands)
	}
	if wantHelp {
		return append(out, "--help"), nil
	}
	if cmd == nil {
		return append(out, rest...), nil
	}

	flags, positional := splitFlags(cmd.Flags, rest)
	out = append(out, flags...)
	return append(out, positional...), nil
}

// splitFlags separates the flags (with the values they take) from the
// positional arguments, keeping each group's order. A "--" and all after
// it stay positional.
func splitFlags(defined []cli.Flag, args []string) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			// The terminator stays too, so urfave/cli stops there.
			positional = append(positional, args[i:]...)
			return flags, positional
		case len(a) > 1 && strings.HasPrefix(a, "-"):
			flags = append(flags, a)
			if !strings.Contains(a, "=") && takesValue(defined, a) && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	return flags, positional
}

// takesValue reports whether the flag spelled arg (with its dashes) is
// defined and takes a value. Unknown flags are treated as taking none, so
// urfave/cli reports them as undefined instead of swallowing an argument.
func takesValue(defined []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	for _, f := range defined {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if v, ok := f.(interface{ TakesValue() bool }); ok {
			return v.TakesValue()
		}
		return true
	}
	return false
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func visibleCommands(cmds []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range cmds {
		if c.Name != "help" {
			out = append(out, c)
		}
	}
	return out
}

func unknownCommandError(path []string, name string, cmds []*cli.Command) error {
	where := strings.Join(append([]string{"securechat"}, path...), " ")
	msg := fmt.Sprintf("unknown command %q", name)
	if len(path) > 0 {
		msg = fmt.Sprintf("%s has no command %q", where, name)
	}
	names := []string{}
	if len(path) == 0 {
		names = append(names, "help")
	}
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, c.Names()...)
		}
	}
	if s := closestName(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return cmderr.Usagef("%s (see '%s --help')", msg, where)
}

// closestName returns the name nearest to typed, or "" when none is near
// enough to be a likely typo.
func closestName(typed string, names []string) string {
	best, bestDist := "", len(typed)/2+2
	for _, n := range names {
		d := editDistance(typed, n)
		if strings.HasPrefix(n, typed) {
			d = min(d, 1)
		}
		if d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
