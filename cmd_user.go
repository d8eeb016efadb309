package main

import (
	"github.com/urfave/cli/v2"

	"securechat/internal/usercmd"
)

// userCommand is 'user': accounts and their keys, built in
// internal/usercmd.
func userCommand() *cli.Command { return usercmd.Command() }
