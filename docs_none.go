//go:build urfave_cli_no_docs

package main

import "github.com/urfave/cli/v2"

// docsCommands: builds tagged urfave_cli_no_docs leave the docs command,
// and urfave/cli's man page generator, out (see docs.go and internal/clidoc).
func docsCommands() []*cli.Command { return nil }
