// Package usercmd is the command line of 'securechat user': the
// subcommands that manage accounts and their keys, their flags and help.
//
// Command line only: it reads flags and arguments, calls
// internal/accounts to change the creds and keys files, marks usage
// mistakes with cmderr, and never decides an exit code (package main
// does, from those marks). Nothing but package main imports it.
package usercmd
