package accounts

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"securechat/credstore"
	"securechat/internal/cmderr"
)

// ReadKeyFile reads the one public key line of a --file.
func ReadKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if strings.Count(strings.TrimSpace(string(b)), "\n") > 0 {
		return "", cmderr.WithHint(fmt.Errorf("%s has more than one line", path), "add one key at a time")
	}
	return string(b), nil
}

// AddKey authorizes the public key on line (as OpenSSH writes it) for the
// account name.
func (fs Files) AddKey(name, line string) error {
	if strings.Contains(line, "PRIVATE KEY") {
		return cmderr.WithHint(errors.New("that is a private key"), "give the public key: the .pub file beside it")
	}
	k, err := credstore.ParseAuthorizedKey(name, line)
	if err != nil {
		return cmderr.WithHint(fmt.Errorf("public key: %w", err), "give one line of an OpenSSH .pub file, such as ~/.ssh/id_ed25519.pub")
	}
	path := fs.Keys
	err = credstore.EditKeys(path, func(f *credstore.KeysFile) error { return f.Add(k) })
	if errors.Is(err, credstore.ErrKeyExists) {
		return fmt.Errorf("key %s is already authorized for %s in %s", k.Fingerprint(), name, path)
	}
	if err != nil {
		return err
	}
	fs.keyDone("authorized key %s for %s in %s", k.Fingerprint(), name, path)
	if _, ok, err := lookup(fs.Creds, name); err == nil && !ok {
		fmt.Fprintf(fs.Stderr, "securechat: %s has no password in %s: a key-only account\n", name, fs.Creds)
	}
	return nil
}

// KeyMatch reads which keys of name 'user key del' removes: all, the one
// with a SHA256:... fingerprint, or the one given as a key (args).
func KeyMatch(name string, all bool, args []string) (func(credstore.AuthorizedKey) bool, error) {
	switch {
	case all && len(args) == 0:
		return func(credstore.AuthorizedKey) bool { return true }, nil
	case all || len(args) == 0:
		return nil, cmderr.Usagef("del wants NAME and a key or its SHA256:... fingerprint, or --all NAME")
	case len(args) == 1 && strings.HasPrefix(args[0], "SHA256:"):
		fp := args[0]
		return func(k credstore.AuthorizedKey) bool { return k.Fingerprint() == fp }, nil
	}
	want, err := credstore.ParseAuthorizedKey(name, strings.Join(args, " "))
	if err != nil {
		return nil, cmderr.UsageHint(fmt.Errorf("public key: %w", err), "give the key's SHA256:... fingerprint ('securechat user key list "+name+"')")
	}
	return func(k credstore.AuthorizedKey) bool { return k.Key.Equal(want.Key) }, nil
}

// DeleteKeys removes the keys of name that match.
func (fs Files) DeleteKeys(name string, match func(credstore.AuthorizedKey) bool) error {
	path := fs.Keys
	var gone []credstore.AuthorizedKey
	err := credstore.EditKeys(path, func(f *credstore.KeysFile) error {
		var err error
		gone, err = f.Delete(name, match)
		return err
	})
	if errors.Is(err, credstore.ErrNoSuchKey) {
		return cmderr.WithHint(fmt.Errorf("no such key for %s in %s", name, path), "'securechat user key list "+name+"' shows the keys")
	}
	if err != nil {
		return err
	}
	for _, k := range gone {
		fs.keyDone("removed key %s of %s from %s", k.Fingerprint(), name, path)
	}
	return nil
}

// ListKeys prints the keys of name, or of every account for "".
func (fs Files) ListKeys(name string) error {
	f, err := credstore.ReadKeysFile(fs.Keys)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(fs.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFINGERPRINT\tCOMMENT")
	for _, k := range f.Keys(name) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.User, k.Fingerprint(), k.Comment)
	}
	return tw.Flush()
}

func (fs Files) keyDone(format string, args ...any) {
	fmt.Fprintf(fs.Stderr, "securechat: "+format+"\n", args...)
	fmt.Fprintf(fs.Stderr, "securechat: a running server picks this up on SIGHUP (kill -HUP PID)\n")
}
