// Package accounts carries out the user command: it adds, changes, deletes
// and lists the accounts of a creds file and the keys of its authorized
// keys file, and tells the operator what it did and what to try when it
// cannot.
//
// Its one rule: every change goes through credstore.Edit or
// credstore.EditKeys (atomic, under a lock, leaving mode 0600), and a
// password never comes from an argument.
package accounts

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"securechat/credstore"
	"securechat/internal/cmderr"
	"securechat/store"
)

// Files are the files a user command works on, and where it reports.
type Files struct {
	Creds, Keys string
	// StateDir is the server's state directory, for the chat database;
	// asked for only when an account is deleted.
	StateDir func() (string, error)
	// CredsArg repeats --creds FILE in hints, "" when it was not given.
	CredsArg       string
	Stdout, Stderr io.Writer
}

// NameHint is the hint for a malformed user name.
const NameHint = "user names match " + credstore.NamePattern

// CheckName checks a NAME argument.
func CheckName(name string) error {
	if err := credstore.CheckName(name); err != nil {
		return cmderr.UsageHint(err, NameHint)
	}
	return nil
}

// Params reads --argon2-params: the cost for a new hash ("" for the
// default). Below the OWASP floor it warns on stderr.
func Params(s string, stderr io.Writer) (credstore.Params, error) {
	if s == "" {
		return credstore.DefaultParams, nil
	}
	p, err := credstore.ParseParams(s)
	if err == nil {
		err = p.Check(credstore.MaxParams)
	}
	if err != nil {
		return p, cmderr.UsageHint(fmt.Errorf("--argon2-params: %v", err), "for example --argon2-params "+credstore.DefaultParams.String())
	}
	min := credstore.MinParams
	if p.Memory < min.Memory || p.Time < min.Time {
		fmt.Fprintf(stderr, "securechat: warning: %s is below the OWASP minimum %s; the hash is upgraded at the next login\n", p, min)
	}
	return p, nil
}

// lookup reads the creds file, if there is one, so that a wrong name is
// reported before the password is asked for.
func lookup(path, name string) (credstore.Account, bool, error) {
	f, err := credstore.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return credstore.Account{}, false, nil
	}
	if err != nil {
		return credstore.Account{}, false, err
	}
	a, ok := f.Lookup(name)
	return a, ok, nil
}

// Add adds the account name, with the password newPassword gives.
func (fs Files) Add(name string, role credstore.Role, params credstore.Params, newPassword func() ([]byte, error)) error {
	path := fs.Creds
	if _, exists, err := lookup(path, name); err != nil {
		return err
	} else if exists {
		return existsError(path, name)
	}
	password, err := newPassword()
	if err != nil {
		return err
	}
	a, err := credstore.NewAccount(name, role, password, params)
	clear(password)
	if err != nil {
		return err
	}
	wasOpen := modeTooOpen(path)
	err = credstore.Edit(path, func(f *credstore.File) error { return f.Add(a) })
	if errors.Is(err, credstore.ErrUserExists) {
		return existsError(path, name)
	}
	if err != nil {
		return err
	}
	fs.done(wasOpen, "added %s %s (%s) to %s", role, name, a.Scheme(), path)
	return nil
}

// Passwd sets a new password for the account name, keeping its role.
func (fs Files) Passwd(name string, params credstore.Params, newPassword func() ([]byte, error)) error {
	path := fs.Creds
	if _, exists, err := lookup(path, name); err != nil {
		return err
	} else if !exists {
		return missingError(path, name)
	}
	password, err := newPassword()
	if err != nil {
		return err
	}
	a, err := credstore.NewAccount(name, credstore.RoleUser, password, params)
	clear(password)
	if err != nil {
		return err
	}
	wasOpen := modeTooOpen(path)
	err = credstore.Edit(path, func(f *credstore.File) error {
		cur, ok := f.Lookup(name)
		if !ok {
			return credstore.ErrNoSuchUser
		}
		a.Role = cur.Role
		return f.Replace(a)
	})
	if errors.Is(err, credstore.ErrNoSuchUser) {
		return missingError(path, name)
	}
	if err != nil {
		return err
	}
	fs.done(wasOpen, "changed the password of %s (%s) in %s", name, a.Scheme(), path)
	return nil
}

// Delete deletes the account name, its keys and what the chat database
// keeps of it.
func (fs Files) Delete(name string) error {
	path := fs.Creds
	wasOpen := modeTooOpen(path)
	err := credstore.Edit(path, func(f *credstore.File) error { return f.Delete(name) })
	if errors.Is(err, credstore.ErrNoSuchUser) {
		return missingError(path, name)
	}
	if err != nil {
		return err
	}
	fs.done(wasOpen, "deleted %s from %s", name, path)
	// A deleted account keeps no way in: its keys go too.
	if _, err := os.Stat(fs.Keys); err == nil {
		err := credstore.EditKeys(fs.Keys, func(f *credstore.KeysFile) error {
			_, err := f.Delete(name, func(credstore.AuthorizedKey) bool { return true })
			return err
		})
		switch {
		case err == nil:
			fmt.Fprintf(fs.Stderr, "securechat: removed the keys of %s from %s\n", name, fs.Keys)
		case !errors.Is(err, credstore.ErrNoSuchKey):
			return fmt.Errorf("the account is deleted but its keys are not: %w", err)
		}
	}
	// Its direct messages, sent and received (deleted, not anonymised),
	// its queue, its rooms and read positions go; its room messages stay.
	dir, err := fs.StateDir()
	if err != nil {
		return err
	}
	db := filepath.Join(dir, store.FileName)
	if deleted, err := store.DeleteUserFile(db, name); !deleted || err != nil {
		return err
	}
	fmt.Fprintf(fs.Stdout, "securechat: deleted the direct messages of %s from %s\n", name, db)
	return nil
}

// SetRole makes the account name an admin or a plain user.
func (fs Files) SetRole(name string, role credstore.Role) error {
	path := fs.Creds
	wasOpen := modeTooOpen(path)
	unchanged := false
	err := credstore.Edit(path, func(f *credstore.File) error {
		a, ok := f.Lookup(name)
		if !ok {
			return credstore.ErrNoSuchUser
		}
		if a.Role == role {
			unchanged = true
			return nil
		}
		a.Role = role
		return f.Replace(a)
	})
	if errors.Is(err, credstore.ErrNoSuchUser) {
		return missingError(path, name)
	}
	if err != nil {
		return err
	}
	if unchanged {
		fmt.Fprintf(fs.Stderr, "securechat: %s is already %s in %s\n", name, role, path)
		return nil
	}
	fs.done(wasOpen, "%s is now %s in %s", name, role, path)
	return nil
}

// List prints the accounts: names, roles and hash schemes.
func (fs Files) List() error {
	path := fs.Creds
	f, err := credstore.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cmderr.WithHint(err, fs.CreateHint())
	}
	if err != nil {
		return err
	}
	if modeTooOpen(path) {
		fmt.Fprintf(fs.Stderr, "securechat: warning: %s may be read by group or others; the server refuses it (chmod 600 %s)\n", path, path)
	}
	tw := tabwriter.NewWriter(fs.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tHASH")
	for _, a := range f.Accounts() {
		note := ""
		if a.NeedsRehash(credstore.DefaultParams) {
			note = " (upgraded at next login)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s%s\n", a.Name, a.Role, a.Scheme(), note)
	}
	return tw.Flush()
}

// CreateHint is the hint for a creds file that does not exist.
func (fs Files) CreateHint() string {
	return "create it with 'securechat user add NAME" + fs.CredsArg + "'"
}

func existsError(path, name string) error {
	return cmderr.WithHint(fmt.Errorf("user %s already exists in %s", name, path),
		"'securechat user passwd "+name+"' sets a new password")
}

func missingError(path, name string) error {
	return cmderr.WithHint(fmt.Errorf("no user %s in %s", name, path),
		"'securechat user list' shows the accounts")
}

// modeTooOpen reports whether the creds file exists with group or other
// permission bits; Edit will leave it at 0600.
func modeTooOpen(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().Perm()&0o077 != 0
}

func (fs Files) done(wasOpen bool, format string, args ...any) {
	w := fs.Stderr
	fmt.Fprintf(w, "securechat: "+format+"\n", args...)
	if wasOpen {
		fmt.Fprintf(w, "securechat: %s was readable by group or others; it is now mode 0600\n", fs.Creds)
	}
	if top := gitWorkTree(fs.Creds); top != "" {
		fmt.Fprintf(w, "securechat: warning: %s is inside the git work tree %s; a creds file must never be committed (the default, without --creds, is the state directory)\n", fs.Creds, top)
	}
	fmt.Fprintf(w, "securechat: a running server picks this up on SIGHUP (kill -HUP PID)\n")
}

// gitWorkTree returns the top of the git work tree that holds path, or ""
// when there is none.
func gitWorkTree(path string) string {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// PasswordSource is where a new password comes from: File, else the
// terminal (asked twice) when IsTTY, else one line of Stdin.
type PasswordSource struct {
	File         string
	Stdin        io.Reader
	IsTTY        bool
	ReadPassword func(ctx context.Context, prompt string) ([]byte, error)
}

// NewPassword gets the new password of name and checks it.
func (src PasswordSource) NewPassword(ctx context.Context, name string) ([]byte, error) {
	var password []byte
	switch {
	case src.File != "":
		data, err := os.ReadFile(src.File)
		if err != nil {
			return nil, fmt.Errorf("--password-file: %w", err)
		}
		password = credstore.TrimLineBreak(data)
	case src.IsTTY:
		first, err := src.ReadPassword(ctx, "New password for "+name+": ")
		if err != nil {
			return nil, err
		}
		second, err := src.ReadPassword(ctx, "Retype the new password: ")
		if err != nil {
			clear(first)
			return nil, err
		}
		same := bytes.Equal(first, second)
		clear(second)
		if !same {
			clear(first)
			return nil, errors.New("the passwords do not match")
		}
		password = first
	default:
		line, err := readPasswordLine(src.Stdin)
		if err != nil {
			return nil, err
		}
		password = line
	}
	if err := credstore.CheckPassword(password); err != nil {
		clear(password)
		return nil, cmderr.WithHint(err, fmt.Sprintf("passwords need at least %d characters", credstore.MinPasswordLength))
	}
	return password, nil
}

// readPasswordLine reads the first line of r without its line break.
func readPasswordLine(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(io.LimitReader(r, credstore.MaxPasswordLength+2))
	line, err := br.ReadBytes('\n')
	switch {
	case err == io.EOF && len(line) == 0:
		return nil, errors.New("no password on standard input (give one line, or use --password-file)")
	case err == io.EOF && len(line) > credstore.MaxPasswordLength:
		return nil, fmt.Errorf("password is longer than %d bytes", credstore.MaxPasswordLength)
	case err != nil && err != io.EOF:
		return nil, fmt.Errorf("reading the password: %w", err)
	}
	return credstore.TrimLineBreak(line), nil
}
