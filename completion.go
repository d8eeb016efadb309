package main

import (
	"embed"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// The completion scripts are generated from the command definitions by the
// hidden docs command and checked in; the binary embeds them, so that it
// prints them without carrying the generators.
//
//go:embed contrib/completion/securechat.bash contrib/completion/_securechat contrib/completion/securechat.fish
var completionFS embed.FS

var completionFiles = map[string]string{
	"bash": "contrib/completion/securechat.bash",
	"zsh":  "contrib/completion/_securechat",
	"fish": "contrib/completion/securechat.fish",
}

func completionCommand() *cli.Command {
	shells := slices.Sorted(maps.Keys(completionFiles))
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for " + strings.Join(shells[:len(shells)-1], ", ") + " or " + shells[len(shells)-1],
		ArgsUsage: strings.Join(shells, "|"),
		Description: `Prints a completion script on standard output. To use it at once:

   bash:  source <(securechat completion bash)
   zsh:   securechat completion zsh > "${fpath[1]}/_securechat"
   fish:  securechat completion fish | source`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError("completion needs one shell: %s", strings.Join(shells, ", "))
			}
			path, ok := completionFiles[c.Args().First()]
			if !ok {
				return usageError("no completion for %q; there is %s", c.Args().First(), strings.Join(shells, ", "))
			}
			script, err := completionFS.ReadFile(path)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.App.Writer, string(script))
			return err
		},
	}
}
