// Package keyscmd is the command line of the commands about keys and the
// files that trust them: keygen, fingerprint, known-hosts and known-users.
//
// Command line only: it reads flags and arguments, calls internal/hostkeys,
// client/identity and msgsig to do the work, marks usage mistakes with
// cmderr, and never decides an exit code (package main does, from those
// marks). Nothing but package main imports it.
package keyscmd
