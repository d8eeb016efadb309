package credstore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Errors of the edit operations on a [File].
var (
	ErrUserExists = errors.New("credstore: user already exists")
	ErrNoSuchUser = errors.New("credstore: no such user")
)

// ParseError is a malformed line, reported as "credstore: FILE:LINE: reason".
type ParseError struct {
	Path string
	Line int
	Err  error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("credstore: %s:%d: %v", e.Path, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// ModeError means creds.txt may be read by group or others. The server
// refuses such a file, as sshd's StrictModes does; rewriting the file with
// [Edit] sets mode 0600.
type ModeError struct {
	Path string
	Mode fs.FileMode
}

func (e *ModeError) Error() string {
	return fmt.Sprintf("credstore: %s: permissions %04o are too open (group and others must have no access; chmod 600 %s)",
		e.Path, e.Mode.Perm(), e.Path)
}

// File is the parsed text of a creds.txt: every line kept as written, in
// order, so that an edit changes only the lines it means to.
type File struct {
	lines []fileLine
	index map[string]int // account name -> position in lines
}

type fileLine struct {
	text    string
	account *Account // nil for comments and blank lines
}

// parseFile parses data completely. The first bad line is the error.
func parseFile(path string, data []byte, max Params) (*File, error) {
	text := string(data)
	text = strings.TrimSuffix(text, "\n")
	f := &File{index: make(map[string]int)}
	if len(data) == 0 {
		return f, nil
	}
	for i, line := range strings.Split(text, "\n") {
		fl := fileLine{text: line}
		if trimmed := strings.TrimLeft(line, " \t"); trimmed != "" && trimmed[0] != '#' {
			a, err := parseAccount(line, max)
			if err != nil {
				return nil, &ParseError{Path: path, Line: i + 1, Err: err}
			}
			if first, dup := f.index[a.Name]; dup {
				return nil, &ParseError{Path: path, Line: i + 1,
					Err: fmt.Errorf("duplicate user %s (first on line %d)", a.Name, first+1)}
			}
			f.index[a.Name] = len(f.lines)
			fl.account = &a
		}
		f.lines = append(f.lines, fl)
	}
	return f, nil
}

// Bytes returns the file text, each line ended by a line break.
func (f *File) Bytes() []byte {
	var b strings.Builder
	for _, l := range f.lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// Accounts returns the accounts in file order.
func (f *File) Accounts() []Account {
	var out []Account
	for _, l := range f.lines {
		if l.account != nil {
			out = append(out, *l.account)
		}
	}
	return out
}

// Lookup returns the account called name.
func (f *File) Lookup(name string) (Account, bool) {
	i, ok := f.index[name]
	if !ok {
		return Account{}, false
	}
	return *f.lines[i].account, true
}

// Add appends a as a new last line.
func (f *File) Add(a Account) error {
	if a.hash == nil {
		return errors.New("credstore: account has no password hash")
	}
	if _, ok := f.index[a.Name]; ok {
		return fmt.Errorf("%w: %s", ErrUserExists, a.Name)
	}
	f.index[a.Name] = len(f.lines)
	f.lines = append(f.lines, fileLine{text: a.String(), account: &a})
	return nil
}

// Replace rewrites the line of the account named a.Name in place.
func (f *File) Replace(a Account) error {
	if a.hash == nil {
		return errors.New("credstore: account has no password hash")
	}
	i, ok := f.index[a.Name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoSuchUser, a.Name)
	}
	f.lines[i] = fileLine{text: a.String(), account: &a}
	return nil
}

// Delete removes the line of the account called name.
func (f *File) Delete(name string) error {
	i, ok := f.index[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoSuchUser, name)
	}
	f.lines = append(f.lines[:i], f.lines[i+1:]...)
	for n, j := range f.index {
		if j > i {
			f.index[n] = j - 1
		}
	}
	delete(f.index, name)
	return nil
}

// ReadFile parses the creds file at path with the default ceiling. It does
// not check the file mode (see [Load]); a missing file is an error.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credstore: %w", err)
	}
	return parseFile(path, data, MaxParams)
}

// Edit changes the creds file at path under an exclusive lock. It reads and
// parses the file afresh once the lock is held, so edits by other processes
// are never lost, calls fn, and if fn succeeds replaces the file atomically:
// a crash at any moment leaves either the old or the new file. The new file
// has mode 0600 and keeps the owner of the old one. A missing file is
// created. A malformed file is not touched.
func Edit(path string, fn func(*File) error) error {
	return edit(path, MaxParams, fn)
}

func edit(path string, max Params, fn func(*File) error) error {
	return lockedEdit(path, func(data []byte) (*File, error) { return parseFile(path, data, max) }, fn)
}

// lockedEdit is what Edit and EditKeys share: under the lock, read and
// parse the file afresh (a missing one is empty), call fn, and replace the
// file atomically, keeping its owner, if fn succeeds.
func lockedEdit[F interface{ Bytes() []byte }](path string, parse func([]byte) (F, error), fn func(F) error) error {
	real, err := resolve(path)
	if err != nil {
		return err
	}
	unlock, err := lock(real)
	if err != nil {
		return err
	}
	defer unlock()
	removeStaleTemps(real)

	data, err := os.ReadFile(real)
	var info fs.FileInfo
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	case err != nil:
		return fmt.Errorf("credstore: %w", err)
	default:
		if info, err = os.Stat(real); err != nil {
			return fmt.Errorf("credstore: %w", err)
		}
	}
	f, err := parse(data)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		return err
	}
	return writeAtomic(real, f.Bytes(), info)
}

// resolve follows symbolic links so that the rename replaces the file the
// link points to, not the link.
func resolve(path string) (string, error) {
	real, err := filepath.EvalSymlinks(path)
	switch {
	case err == nil:
		return real, nil
	case errors.Is(err, fs.ErrNotExist):
		if _, lerr := os.Lstat(path); lerr == nil {
			return "", fmt.Errorf("credstore: %s is a dangling symbolic link", path)
		}
		return path, nil
	}
	return "", fmt.Errorf("credstore: %w", err)
}

// lock takes the advisory lock that serializes writers: flock on
// path+".lock", a file that is never removed (removing it would let two
// writers lock two different files).
func lock(path string) (unlock func(), err error) {
	lf, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("credstore: lock: %w", err)
	}
	// The server may run as another user than the admin who edits, and
	// it must be able to take the same lock for rehashing.
	if info, err := os.Stat(path); err == nil {
		matchOwner(lf, info)
	}
	for {
		err = unix.Flock(int(lf.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("credstore: lock %s: %w", lf.Name(), err)
	}
	return func() { lf.Close() }, nil
}

// matchOwner gives f the owner and group of info if they differ, which
// only root can do; for anyone else it is a no-op or fails harmlessly.
func matchOwner(f *os.File, info fs.FileInfo) error {
	want, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	have, err := f.Stat()
	if err != nil {
		return err
	}
	if h, ok := have.Sys().(*syscall.Stat_t); ok && h.Uid == want.Uid && h.Gid == want.Gid {
		return nil
	}
	return f.Chown(int(want.Uid), int(want.Gid))
}

// tempPattern names the temporary files of writeAtomic.
func tempPattern(path string) string {
	return "." + filepath.Base(path) + ".tmp-*"
}

// removeStaleTemps deletes temporary files left by a writer that was
// killed mid-write. Only called under the lock, when no writer is active.
func removeStaleTemps(path string) {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), tempPattern(path)))
	for _, name := range stale {
		os.Remove(name)
	}
}

// testHookWritePhase, if set, is called as writeAtomic reaches each step.
var testHookWritePhase func(phase string)

func writePhase(phase string) {
	if testHookWritePhase != nil {
		testHookWritePhase(phase)
	}
}

// writeAtomic replaces path with data: write a temporary file in the same
// directory, fsync it, rename it over path, fsync the directory. old is the
// replaced file's info (nil if there was none); its owner is kept.
func writeAtomic(path string, data []byte, old fs.FileInfo) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	if old != nil {
		if err := matchOwner(tmp, old); err != nil {
			return fmt.Errorf("credstore: keep owner of %s: %w", path, err)
		}
	}
	writePhase("created")
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	writePhase("written")
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	writePhase("synced")
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	writePhase("renamed")
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("credstore: sync %s: %w", dir, err)
	}
	return nil
}

// TrimLineBreak removes one trailing "\n" or "\r\n" from a password read
// from a file or a pipe, as shells and editors add, and nothing else: the
// rest of the line is the password.
func TrimLineBreak(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b[:len(b)-2]
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}
