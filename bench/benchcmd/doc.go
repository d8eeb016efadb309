// Package benchcmd is the command line of 'securechat bench': its
// subcommands, their flags and help.
//
// Command line only: it reads flags, calls package bench to run the
// scenarios, marks usage mistakes with cmderr, and never decides an exit
// code (package main does, from those marks). Nothing but package main
// imports it.
package benchcmd
