package main

import (
	"github.com/urfave/cli/v2"

	"securechat/internal/keyscmd"
)

// The commands about keys and the files that trust them, built in
// internal/keyscmd.

func keygenCommand() *cli.Command      { return keyscmd.Keygen() }
func fingerprintCommand() *cli.Command { return keyscmd.Fingerprint() }
func knownHostsCommand() *cli.Command  { return keyscmd.KnownHosts() }
func knownUsersCommand() *cli.Command  { return keyscmd.KnownUsers() }
