//go:build !urfave_cli_no_docs

package main

import (
	"github.com/urfave/cli/v2"

	"securechat/internal/clidoc"
)

// docsCommands is the hidden docs command (package clidoc); builds without
// the generators have none (docs_none.go).
func docsCommands() []*cli.Command { return []*cli.Command{clidoc.Command(completionFiles)} }
