// Package hostkeys carries out the commands on host key files: keygen and
// fingerprint on the server's own key in its state directory (and its
// rotation: the next key beside it, the replaced one kept as .old), and
// known-hosts on the client's file of trusted keys.
//
// Its one rule: no command overwrites or silently creates a key the
// operator did not ask for; each prints what it wrote or changed.
package hostkeys

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"

	"securechat/client/tui"
	"securechat/handshake"
	"securechat/internal/cmderr"
)

// OldSuffix names the host key a promotion replaced, kept for a rollback.
const OldSuffix = ".old"

// Server is the server's host key at Path (with the next key of a
// rotation at Path+handshake.NextHostKeySuffix). Fingerprints go to
// Stdout, what was done to Stderr.
type Server struct {
	Path           string
	Stdout, Stderr io.Writer
}

func (s Server) printFingerprint(key ed25519.PrivateKey) {
	fmt.Fprintln(s.Stdout, handshake.Fingerprint(key.Public().(ed25519.PublicKey)))
}

// Create creates the host key; one that exists is an error.
func (s Server) Create() error {
	key, created, err := handshake.LoadOrCreateHostKey(s.Path)
	if err != nil {
		return err
	}
	if !created {
		return cmderr.WithHint(fmt.Errorf("%s already exists; refusing to overwrite it", s.Path),
			"securechat fingerprint prints the fingerprint of the existing key; keygen --next starts a rotation")
	}
	fmt.Fprintf(s.Stderr, "securechat: wrote host key to %s\n", s.Path)
	s.printFingerprint(key)
	return nil
}

// Next creates the next host key beside the current one.
func (s Server) Next() error {
	if _, err := handshake.LoadHostKey(s.Path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return cmderr.WithHint(fmt.Errorf("there is no current host key %s to rotate", s.Path),
				"securechat keygen creates the first one")
		}
		return err
	}
	next := s.Path + handshake.NextHostKeySuffix
	key, err := handshake.CreateHostKey(next)
	if errors.Is(err, fs.ErrExist) {
		return cmderr.WithHint(fmt.Errorf("%s already exists; refusing to overwrite it", next),
			"securechat keygen --promote makes it current; delete it to start over")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Stderr, "securechat: wrote the next host key to %s; send SIGHUP to a running server to announce it\n", next)
	s.printFingerprint(key)
	return nil
}

// Promote makes the next host key current.
func (s Server) Promote() error {
	next, old := s.Path+handshake.NextHostKeySuffix, s.Path+OldSuffix
	if _, err := os.Stat(next); errors.Is(err, fs.ErrNotExist) {
		return cmderr.WithHint(fmt.Errorf("there is no next host key %s to promote", next),
			"securechat keygen --next creates it; let clients learn it before promoting")
	}
	if err := handshake.PromoteHostKey(s.Path, next, old); err != nil {
		return err
	}
	key, err := handshake.LoadHostKey(s.Path)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Stderr, "securechat: %s is now the host key; the previous one is kept as %s; "+
		"send SIGHUP to a running server (or restart it) to switch\n", s.Path, old)
	s.printFingerprint(key)
	return nil
}

// Fingerprint prints the host key's fingerprint, creating the key when
// there is none, or with next that of the next key, which must exist.
func (s Server) Fingerprint(next bool) error {
	if next {
		key, err := handshake.LoadHostKey(s.Path + handshake.NextHostKeySuffix)
		if err != nil {
			return err
		}
		s.printFingerprint(key)
		return nil
	}
	key, created, err := handshake.LoadOrCreateHostKey(s.Path)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(s.Stderr, "securechat: there was no host key; created %s\n", s.Path)
	}
	s.printFingerprint(key)
	return nil
}

// RemoveKnownHost removes every line for hostport from the known_hosts
// file and prints each one on stdout.
func RemoveKnownHost(file, hostport string, stdout io.Writer) error {
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return cmderr.Usagef("%q is not HOST:PORT (IPv6 addresses go in brackets: [::1]:7777)", hostport)
	}
	removed, err := handshake.RemoveKnownHost(file, hostport)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist", file)
	}
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		return fmt.Errorf("%s is not in %s", hostport, file)
	}
	for _, r := range removed {
		fmt.Fprintf(stdout, "removed %s:%d: %s\n", file, r.Line, tui.Sanitize(strings.TrimSpace(r.Text)))
	}
	return nil
}
