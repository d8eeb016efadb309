package main

import (
	"github.com/urfave/cli/v2"

	"securechat/bench/benchcmd"
)

// benchCommand is 'bench': the load tool's scenarios, built in
// bench/benchcmd.
func benchCommand() *cli.Command { return benchcmd.Command() }
